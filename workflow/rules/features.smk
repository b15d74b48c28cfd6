# CQT features: one job per shard; a track's shard is a hash of its id.

from trackrank.workflow_settings import shard_settings


rule cqt_shard:
    input:
        audio=shard_audio,
    output:
        shard="results/features/shard-{shard}.parquet",
        rejected="results/features/shard-{shard}.rejected.csv",
    log:
        "results/logs/cqt_shard/shard-{shard}.log",
    benchmark:
        "results/benchmarks/cqt_shard/shard-{shard}.tsv"
    conda:
        "../../envs/trackrank.yaml"
    threads: lookup(dpath="features/threads", within=config)
    params:
        tracks=shard_rows,
        settings=shard_settings(config),
    script:
        "../scripts/cqt_shard.py"


rule features:
    input:
        expand(rules.cqt_shard.output.shard, shard=SHARDS),


rule rejected_tracks:
    input:
        validation=rules.ingest_catalog.output.rejected,
        shards=expand(rules.cqt_shard.output.rejected, shard=SHARDS),
    output:
        "results/report/rejected_tracks.csv",
    log:
        "results/logs/rejected_tracks/rejected_tracks.log",
    conda:
        "../../envs/trackrank.yaml"
    params:
        shards=SHARDS,
    script:
        "../scripts/rejected_tracks.py"
