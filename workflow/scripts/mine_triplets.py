# Snakemake step: mine one block of the train split's anchors with every strategy (trackrank.rank.mining);
# the block is one part of each strategy's triplet table (trackrank.rank.parts).
from trackrank.data.catalog import CatalogFiles
from trackrank.logs import workflow_step
from trackrank.rank.mining import write_triplet_tables
from trackrank.rank.parts import part_anchors
from trackrank.rank.similarity import split_oracle

with workflow_step(snakemake.log[0]):
    p = snakemake.params
    track_ids, oracle = split_oracle(
        CatalogFiles(snakemake.input.tracks, snakemake.input.tags, snakemake.input.taxonomy), "train", **p.similarity
    )
    write_triplet_tables(
        oracle,
        track_ids,
        outputs=dict(snakemake.output.items()),  # strategy -> its table's part
        anchors=part_anchors(p.part, anchors_per_job=p.anchors_per_job, n_anchors=len(track_ids)),
        **p.settings,
    )
