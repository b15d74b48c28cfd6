# Snakemake step: rank every track of one split by the oracle S (trackrank.ranking).
from trackrank.catalog import CatalogFiles
from trackrank.logs import log_to
from trackrank.ranking import write_curve, write_rankings
from trackrank.similarity import SimilarityError, split_oracle

log_to(snakemake.log[0])
p = snakemake.params
try:
    track_ids, oracle = split_oracle(
        CatalogFiles(snakemake.input.tracks, snakemake.input.tags, snakemake.input.taxonomy),
        snakemake.wildcards.split,
        **p.similarity,
    )
    summary = write_rankings(oracle, track_ids, snakemake.output.rankings, **p.settings)
except SimilarityError as error:
    raise SystemExit(f"trackrank: {error}") from None
write_curve(summary, snakemake.output.curve)
