# Snakemake step: render one shard of the scores catalog (trackrank.data.scores.render).
from pathlib import Path

from trackrank.data.scores.render import render_shard
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    render_shard(
        snakemake.params.plan,
        snakemake.params.settings,
        folder=Path(snakemake.output.tags).parents[1],
        tags=snakemake.output.tags,
        arrangements=snakemake.output.arrangements,
    )
