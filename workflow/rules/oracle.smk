# Oracle rankings per split (paper §3.1) and triplet mining per strategy (§3.2).
# Both score with S themselves, so a mining parameter never reruns the rankings.

from trackrank.rank.mining import mining_settings
from trackrank.rank.oracle import ranking_settings
from trackrank.rank.similarity import similarity_settings


rule rank_split:
    input:
        tracks=rules.ingest_catalog.output.tracks,
        tags=rules.ingest_catalog.output.tags,
        taxonomy=rules.ingest_catalog.output.taxonomy,
    output:
        rankings="results/rankings/{split}.parquet",
        curve="results/rankings/{split}.curve.csv",
    log:
        "results/logs/rank_split/{split}.log",
    benchmark:
        "results/benchmarks/rank_split/{split}.tsv"
    conda:
        "../../envs/trackrank.yaml"
    params:
        similarity=similarity_settings(config),
        settings=ranking_settings(config),
    script:
        "../scripts/rank_split.py"


rule mine_triplets:
    input:
        tracks=rules.ingest_catalog.output.tracks,
        tags=rules.ingest_catalog.output.tags,
        taxonomy=rules.ingest_catalog.output.taxonomy,
    output:
        triplets="results/triplets/{strategy}.parquet",
    log:
        "results/logs/mine_triplets/{strategy}.log",
    benchmark:
        "results/benchmarks/mine_triplets/{strategy}.tsv"
    conda:
        "../../envs/trackrank.yaml"
    params:
        similarity=similarity_settings(config),
        settings=mining_settings(config),
    script:
        "../scripts/mine_triplets.py"


rule plot_similarity_vs_rank:
    input:
        curve=rules.rank_split.output.curve.format(split="train"),
    output:
        report(
            "results/plots/similarity_vs_rank.png",
            caption="../report/similarity_vs_rank.rst",
            category="Oracle",
        ),
    log:
        "results/logs/plot_similarity_vs_rank/plot.log",
    conda:
        "../../envs/trackrank.yaml"
    script:
        "../scripts/plot_similarity_vs_rank.py"


rule oracle:
    input:
        expand(rules.rank_split.output.rankings, split=["train", "val", "test"]),
        expand(rules.mine_triplets.output.triplets, strategy=lookup(dpath="mining/strategies", within=config)),
        rules.plot_similarity_vs_rank.output,
