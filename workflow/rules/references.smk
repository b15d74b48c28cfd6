# Reference rows beside random (evaluate.references): embeddings made without ranking training (MFCC
# statistics, the auto-tagger's trunk, the TL network at its initialisation),
# evaluated by evaluate_system like a TL system (Euclidean distance).

from trackrank.workflow_settings import embedding_settings, untrained_settings


rule mfcc_stats:
    input:
        tracks=rules.ingest_catalog.output.tracks,
        audio=catalog_audio,
    output:
        stats="results/features/mfcc_stats.parquet",
    log:
        "results/logs/mfcc_stats/mfcc_stats.log",
    benchmark:
        "results/benchmarks/mfcc_stats/mfcc_stats.tsv"
    conda:
        "../../envs/trackrank.yaml"
    threads: lookup(dpath="features/threads", within=config)
    params:
        tracks=catalog_rows,
    script:
        "../scripts/mfcc_stats.py"


rule embed_mfcc_stats:
    input:
        stats=rules.mfcc_stats.output.stats,
        cache_index=expand(rules.cache_features.output.index, shard=SHARDS),
        tracks=rules.ingest_catalog.output.tracks,
    output:
        embeddings="results/embeddings/mfcc_stats.parquet",
    log:
        "results/logs/embed_mfcc_stats/mfcc_stats.log",
    conda:
        "../../envs/trackrank.yaml"
    script:
        "../scripts/embed_mfcc_stats.py"


rule embed_at_trunk:
    input:
        model=tagger_model,
        cache_index=expand(rules.cache_features.output.index, shard=SHARDS),
        cache_data=expand(rules.cache_features.output.data, shard=SHARDS),
        tracks=rules.ingest_catalog.output.tracks,
    output:
        embeddings="results/embeddings/at_trunk.parquet",
    log:
        "results/logs/embed_at_trunk/at_trunk.log",
    benchmark:
        "results/benchmarks/embed_at_trunk/at_trunk.tsv"
    conda:
        "../../envs/trackrank.yaml"
    threads: lookup(dpath="train/threads", within=config)
    params:
        settings=embedding_settings(config),
    script:
        "../scripts/embed_at_trunk.py"


rule embed_untrained:
    input:
        cache_index=expand(rules.cache_features.output.index, shard=SHARDS),
        cache_data=expand(rules.cache_features.output.data, shard=SHARDS),
        tracks=rules.ingest_catalog.output.tracks,
    output:
        embeddings="results/embeddings/untrained.parquet",
    log:
        "results/logs/embed_untrained/untrained.log",
    benchmark:
        "results/benchmarks/embed_untrained/untrained.tsv"
    conda:
        "../../envs/trackrank.yaml"
    threads: lookup(dpath="train/threads", within=config)
    params:
        settings=untrained_settings(config),
    script:
        "../scripts/embed_untrained.py"
