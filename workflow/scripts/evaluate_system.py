# Snakemake step: retrieval on the test split and its metrics, for one system or 'random' (trackrank.evaluation).
from pathlib import Path

from trackrank.evaluation import evaluate, test_tracks
from trackrank.logs import log_to

log_to(snakemake.log[0])
p, similarity = snakemake.params, snakemake.params.similarity
test_ids, oracle = test_tracks(Path(snakemake.input.tracks).parent, Path(snakemake.input.cache).parent,
                               name=similarity["name"], function=similarity["function"],
                               category_weights=similarity["category_weights"])
evaluate(snakemake.wildcards.system, test_ids, oracle, snakemake.input.rankings,
         Path(snakemake.output.summary).parent.parent, embeddings=(snakemake.input.embeddings or [None])[0],
         k=p.k, n_relevant=p.n_relevant, seed=p.seed)
