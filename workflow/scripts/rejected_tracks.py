# Snakemake step: every skipped track, from validation and from the feature shards, in one table.
from trackrank.catalog import merge_rejected
from trackrank.logs import log_to

log_to(snakemake.log[0])
merge_rejected([snakemake.input.validation, *snakemake.input.shards], snakemake.output[0])
