# Snakemake step: retrieval on the test split and its metrics, for one system or 'random'
# (trackrank.evaluate.evaluation).
from trackrank.data.catalog import CatalogFiles
from trackrank.evaluate.evaluation import evaluate, test_tracks
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    p, out = snakemake.params, snakemake.output
    catalog = CatalogFiles(snakemake.input.tracks, snakemake.input.tags, snakemake.input.taxonomy)
    test_ids, oracle = test_tracks(catalog, snakemake.input.cache_index, **p.similarity)
    evaluate(
        snakemake.wildcards.system,
        test_ids=test_ids,
        oracle=oracle,
        test_rankings=snakemake.input.rankings,
        predictions=out.predictions,
        summary=out.summary,
        per_query=out.per_query,
        embeddings=(snakemake.input.embeddings or [None])[0],
        **p.settings,
    )
