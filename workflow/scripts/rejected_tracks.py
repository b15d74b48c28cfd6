# Snakemake step: every skipped track, from validation and from the feature shards, in one table.
from trackrank.data.catalog import merge_rejected
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    shards = {f"shard-{shard}": path for shard, path in zip(snakemake.params.shards, snakemake.input.shards)}
    merge_rejected({"validation": snakemake.input.validation, **shards}, snakemake.output[0])
