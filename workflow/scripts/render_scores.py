# Snakemake step: render one shard of the scores catalog (trackrank.score_render).
from pathlib import Path

from trackrank.logs import log_to
from trackrank.score_render import render_shard

log_to(snakemake.log[0])
render_shard(
    snakemake.params.plan,
    snakemake.params.settings,
    folder=Path(snakemake.output.tags).parents[1],
    tags=snakemake.output.tags,
    arrangements=snakemake.output.arrangements,
)
