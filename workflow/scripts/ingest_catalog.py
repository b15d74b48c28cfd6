# Snakemake step: validate the catalog and split it by artist (trackrank.data.catalog).

from trackrank.data.catalog import ingest
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    p = snakemake.params
    ingest(
        p.catalog,
        tracks=snakemake.output.tracks,
        tags=snakemake.output.tags,
        taxonomy=snakemake.output.taxonomy,
        rejected=snakemake.output.rejected,
        **p.settings,
    )
