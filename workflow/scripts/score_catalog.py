# Snakemake step: gather the render shards into the scores catalog's tables (trackrank.score_render).
from trackrank.logs import log_to
from trackrank.score_render import merge_shards

log_to(snakemake.log[0])
merge_shards(
    snakemake.input.tags,
    snakemake.input.arrangements,
    tags=snakemake.output.tags,
    meta=snakemake.output.meta,
    arrangements=snakemake.output.arrangements,
)
