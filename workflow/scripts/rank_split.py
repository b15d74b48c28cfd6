# Snakemake step: rank every track of one split by the oracle S (trackrank.ranking).
from trackrank.catalog import CatalogFiles
from trackrank.logs import log_to
from trackrank.ranking import write_curve, write_rankings
from trackrank.similarity import SimilarityError, split_oracle

log_to(snakemake.log[0])
similarity = snakemake.params.similarity
try:
    track_ids, oracle = split_oracle(
        CatalogFiles(snakemake.input.tracks, snakemake.input.tags, snakemake.input.taxonomy),
        snakemake.wildcards.split,
        name=similarity["name"],
        function=similarity["function"],
        category_weights=similarity["category_weights"],
    )
    summary = write_rankings(oracle, track_ids, snakemake.output.rankings, top_k=snakemake.params.top_k)
except SimilarityError as error:
    raise SystemExit(f"trackrank: {error}") from None
write_curve(summary, snakemake.output.curve)
