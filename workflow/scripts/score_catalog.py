# Snakemake step: gather the render shards into the scores catalog's tables (trackrank.data.scores.render).
from trackrank.data.scores.render import merge_shards
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    merge_shards(
        snakemake.input.tags,
        snakemake.input.arrangements,
        tags=snakemake.output.tags,
        meta=snakemake.output.meta,
        arrangements=snakemake.output.arrangements,
        untagged=snakemake.output.untagged,
        untagged_share=snakemake.params.settings.untagged_share,
        seed=snakemake.params.settings.seed,
    )
