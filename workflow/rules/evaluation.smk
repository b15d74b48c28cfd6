# Test-set embeddings, retrieval metrics and the reports (paper §4).

from trackrank.workflow_settings import evaluation_settings
from trackrank.workflow_settings import listen_settings
from trackrank.workflow_settings import embedding_settings

SYSTEMS = lookup(dpath="train/systems", within=config)
# Reference rows beside random (references.smk makes their embeddings); at_trunk reads the
# trained auto-tagger, so it is made only where at_baseline is trained.
REFERENCES = [
    r for r in lookup(dpath="evaluate/references", within=config) if r != "at_trunk" or "at_baseline" in SYSTEMS
]
EVALUATED = ["random", *REFERENCES, *SYSTEMS]


wildcard_constraints:
    system="|".join(EVALUATED),


rule embed:
    input:
        model=trained_model,
        cache_index=expand(rules.cache_features.output.index, shard=SHARDS),
        cache_data=expand(rules.cache_features.output.data, shard=SHARDS),
        tracks=rules.ingest_catalog.output.tracks,
    output:
        embeddings="results/embeddings/{system}.parquet",
    log:
        "results/logs/embed/{system}.log",
    benchmark:
        "results/benchmarks/embed/{system}.tsv"
    wildcard_constraints:
        system="|".join(SYSTEMS),  # trained systems only: the references have their own rules
    conda:
        "../../envs/trackrank.yaml"
    threads: lookup(dpath="train/threads", within=config)
    params:
        settings=embedding_settings(config),
    script:
        "../scripts/embed.py"


rule evaluate_system:
    input:
        embeddings=system_embeddings,
        rankings=ranking_parts("test"),
        cache_index=expand(rules.cache_features.output.index, shard=SHARDS),
        tracks=rules.ingest_catalog.output.tracks,
        tags=rules.ingest_catalog.output.tags,
        taxonomy=rules.ingest_catalog.output.taxonomy,
    output:
        predictions="results/predictions/{system}.parquet",
        summary="results/metrics/{system}.json",
        per_query="results/metrics/{system}.per_query.parquet",
    log:
        "results/logs/evaluate_system/{system}.log",
    benchmark:
        "results/benchmarks/evaluate_system/{system}.tsv"
    conda:
        "../../envs/trackrank.yaml"
    params:
        split="test",
        similarity=similarity_settings(config),
        settings=evaluation_settings(config),
    script:
        "../scripts/evaluate_system.py"


rule report:
    input:
        summaries=expand(rules.evaluate_system.output.summary, system=EVALUATED),
        per_query=expand(rules.evaluate_system.output.per_query, system=EVALUATED),
        histories=[trained(system, "history") for system in SYSTEMS],
    output:
        table_csv=report("results/report/table.csv", caption="../report/table.rst", category="Results"),
        table_md="results/report/table.md",
        paired_csv=report("results/report/paired.csv", caption="../report/paired.rst", category="Results"),
        paired_md="results/report/paired.md",
        paper_md="results/report/table_paper.md",
        bars=report("results/report/metrics.png", caption="../report/metrics.rst", category="Results"),
        curves=report(
            "results/report/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
        ),
    log:
        "results/logs/report/report.log",
    conda:
        "../../envs/trackrank.yaml"
    params:
        evaluated=EVALUATED,
        trained=SYSTEMS,
    script:
        "../scripts/report.py"


rule listen_page:
    input:
        predictions=expand(rules.evaluate_system.output.predictions, system=EVALUATED),
        rankings=ranking_parts("test"),
        tracks=rules.ingest_catalog.output.tracks,
        tags=rules.ingest_catalog.output.tags,
    output:
        report("results/report/listen.html", caption="../report/listen.rst", category="Listening"),
    log:
        "results/logs/listen_page/listen_page.log",
    conda:
        "../../envs/trackrank.yaml"
    params:
        systems=EVALUATED,
        settings=listen_settings(config),
    script:
        "../scripts/listen_page.py"
