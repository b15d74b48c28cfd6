# Snakemake step: every skipped track, from validation and from the feature shards, in one table.
from trackrank.data.catalog import merge_rejected
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    merge_rejected([snakemake.input.validation, *snakemake.input.shards], snakemake.output[0])
