# Snakemake step: rank one block of a split's tracks against the whole split by the oracle S
# (trackrank.rank.oracle); the block is one part of the split's rankings (trackrank.rank.parts).
from trackrank.data.catalog import CatalogFiles
from trackrank.logs import workflow_step
from trackrank.rank.oracle import write_curve, write_rankings
from trackrank.rank.parts import part_anchors
from trackrank.rank.similarity import split_oracle

with workflow_step(snakemake.log[0]):
    p = snakemake.params
    track_ids, oracle = split_oracle(
        CatalogFiles(snakemake.input.tracks, snakemake.input.tags, snakemake.input.taxonomy),
        snakemake.wildcards.split,
        **p.similarity,
    )
    anchors = part_anchors(p.part, anchors_per_job=p.anchors_per_job, n_anchors=len(track_ids))
    summary = write_rankings(oracle, track_ids, output=snakemake.output.rankings, anchors=anchors, **p.settings)
    write_curve(summary, snakemake.output.curve)
