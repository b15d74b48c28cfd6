# Oracle rankings per split (paper §3.1) and triplet mining (§3.2), one job per block of
# ranking.anchors_per_job anchors (trackrank.rank.parts): the parts, read in order, are the whole table.
# Both score with S themselves, so a mining parameter never reruns the rankings; a mining job scores its
# anchors once for every strategy (scoring is most of mining's cost at scale).

from trackrank.workflow_settings import mining_settings
from trackrank.workflow_settings import ranking_settings
from trackrank.workflow_settings import similarity_settings


rule rank_split:
    input:
        tracks=rules.ingest_catalog.output.tracks,
        tags=rules.ingest_catalog.output.tags,
        taxonomy=rules.ingest_catalog.output.taxonomy,
    output:
        rankings="results/rankings/{split}/part-{part}.parquet",
        curve="results/rankings/{split}/part-{part}.curve.csv",
    log:
        "results/logs/rank_split/{split}/part-{part}.log",
    benchmark:
        "results/benchmarks/rank_split/{split}/part-{part}.tsv"
    conda:
        "../../envs/trackrank.yaml"
    params:
        similarity=similarity_settings(config),
        settings=ranking_settings(config),
        part=lambda wildcards: int(wildcards.part),
        anchors_per_job=ANCHORS_PER_JOB,
    script:
        "../scripts/rank_split.py"


rule mine_triplets:
    input:
        tracks=rules.ingest_catalog.output.tracks,
        tags=rules.ingest_catalog.output.tags,
        taxonomy=rules.ingest_catalog.output.taxonomy,
    output:
        **{strategy: f"results/triplets/{strategy}/part-{{part}}.parquet" for strategy in STRATEGIES},
    log:
        "results/logs/mine_triplets/part-{part}.log",
    benchmark:
        "results/benchmarks/mine_triplets/part-{part}.tsv"
    conda:
        "../../envs/trackrank.yaml"
    params:
        similarity=similarity_settings(config),
        settings=mining_settings(config),
        part=lambda wildcards: int(wildcards.part),
        anchors_per_job=ANCHORS_PER_JOB,
    script:
        "../scripts/mine_triplets.py"


rule plot_similarity_vs_rank:
    input:
        curve=ranking_parts("train", "curve"),
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
        [ranking_parts(split) for split in ("train", "val", "test")],
        [triplet_parts(strategy) for strategy in lookup(dpath="mining/strategies", within=config)],
        rules.plot_similarity_vs_rank.output,
