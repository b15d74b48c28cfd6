# Training (paper §3.4): one rule per system, each declaring the resources a cluster job needs.
# A killed or preempted job resumes from results/models/{system}/last.pt when it reruns.

from trackrank.workflow_settings import similarity_settings
from trackrank.learn.settings import TrainSettings, mines_offline, starts_from, system_spec, train_settings


rule cache_features:
    input:
        shard=rules.cqt_shard.output.shard,
    output:
        data="results/cache/shard-{shard}.f16.npy",
        index="results/cache/shard-{shard}.index.parquet",
    log:
        "results/logs/cache_features/shard-{shard}.log",
    benchmark:
        "results/benchmarks/cache_features/shard-{shard}.tsv"
    conda:
        "../../envs/trackrank.yaml"
    script:
        "../scripts/cache_features.py"


for system in lookup(dpath="train/systems", within=config):
    strategy = system_spec(system)[1]
    offline = mines_offline(strategy)  # trains on a mined triplet table
    system_settings = train_settings(system, config)

    rule:
        name:
            f"train_{system}"
        input:
            cache_index=expand(rules.cache_features.output.index, shard=SHARDS),
            cache_data=expand(rules.cache_features.output.data, shard=SHARDS),
            tracks=rules.ingest_catalog.output.tracks,
            tags=rules.ingest_catalog.output.tags,
            taxonomy=rules.ingest_catalog.output.taxonomy,
            val_rankings=ranking_parts("val"),
            triplets=triplet_parts(strategy) if offline else [],
            train_rankings=(
                ranking_parts("train") if TrainSettings.from_params(system, system_settings).ranks_batches else []
            ),
            # the trained network it starts from: at_baseline's trunk (*_from_at), tl_ssl's (*_from_ssl)
            # (an input function: that system's rule may be defined after this one)
            start=(lambda wildcards, start=starts_from(system): trained(start)) if starts_from(system) else [],
        output:
            model=f"results/models/{system}/model.pt",
            history=f"results/models/{system}/history.csv",
        log:
            f"results/logs/train/{system}.log",
        benchmark:
            f"results/benchmarks/train/{system}.tsv"
        # An offline TL step embeds 3 patches per triplet (126 a batch), 3x the others' 42: start those
        # jobs first, so the longest training is not the last to begin.
        priority: 1 if offline else 0
        conda:
            "../../envs/trackrank.yaml"
        threads: lookup(dpath="train/threads", within=config)
        resources:
            gpu=lookup(dpath="train/resources/gpu", within=config),
            mem_mb=lookup(dpath="train/resources/mem_mb", within=config),
            runtime=lookup(dpath="train/resources/runtime", within=config),
        params:
            system=system,
            settings=system_settings,
            # not an output: Snakemake deletes a job's outputs before it reruns it, and a rerun resumes from it
            last=f"results/models/{system}/last.pt",
            similarity=similarity_settings(config),  # the auto-tagger validates by S of its estimated tags
        script:
            "../scripts/train_system.py"


rule train:
    input:
        [trained(system) for system in lookup(dpath="train/systems", within=config)],
