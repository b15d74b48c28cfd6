# Snakemake step: rank every track of one split by the oracle S (trackrank.rank.oracle).
from trackrank.data.catalog import CatalogFiles
from trackrank.logs import workflow_step
from trackrank.rank.oracle import write_curve, write_rankings
from trackrank.rank.similarity import split_oracle

with workflow_step(snakemake.log[0]):
    p = snakemake.params
    track_ids, oracle = split_oracle(
        CatalogFiles(snakemake.input.tracks, snakemake.input.tags, snakemake.input.taxonomy),
        snakemake.wildcards.split,
        **p.similarity,
    )
    summary = write_rankings(oracle, track_ids, snakemake.output.rankings, **p.settings)
    write_curve(summary, snakemake.output.curve)
