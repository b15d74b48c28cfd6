# Snakemake step: retrieval on one split (test: the report's; val: what choices read) and its metrics, for one
# system or 'random' (trackrank.evaluate.evaluation).
from trackrank.data.catalog import CatalogFiles
from trackrank.evaluate.evaluation import evaluate, evaluated_tracks
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    p, out = snakemake.params, snakemake.output
    catalog = CatalogFiles(snakemake.input.tracks, snakemake.input.tags, snakemake.input.taxonomy)
    track_ids, oracle = evaluated_tracks(catalog, snakemake.input.cache_index, split=p.split, **p.similarity)
    evaluate(
        snakemake.wildcards.system,
        track_ids=track_ids,
        oracle=oracle,
        rankings=snakemake.input.rankings,
        predictions=out.predictions,
        summary=out.summary,
        per_query=out.per_query,
        embeddings=(snakemake.input.embeddings or [None])[0],
        **p.settings,
    )
