# Snakemake step: mine the train split's triplets with one strategy (trackrank.mining).
from trackrank.catalog import CatalogFiles
from trackrank.logs import log_to
from trackrank.mining import write_triplets
from trackrank.similarity import SimilarityError, split_oracle

log_to(snakemake.log[0])
p = snakemake.params
try:
    track_ids, oracle = split_oracle(
        CatalogFiles(snakemake.input.tracks, snakemake.input.tags, snakemake.input.taxonomy), "train", **p.similarity
    )
    write_triplets(oracle, track_ids, snakemake.output.triplets, snakemake.wildcards.strategy, **p.settings)
except SimilarityError as error:
    raise SystemExit(f"trackrank: {error}") from None
