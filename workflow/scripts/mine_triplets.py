# Snakemake step: mine the train split's triplets with one strategy (trackrank.rank.mining).
from trackrank.data.catalog import CatalogFiles
from trackrank.logs import workflow_step
from trackrank.rank.mining import write_triplets
from trackrank.rank.similarity import split_oracle

with workflow_step(snakemake.log[0]):
    p = snakemake.params
    track_ids, oracle = split_oracle(
        CatalogFiles(snakemake.input.tracks, snakemake.input.tags, snakemake.input.taxonomy), "train", **p.similarity
    )
    write_triplets(oracle, track_ids, snakemake.output.triplets, snakemake.wildcards.strategy, **p.settings)
