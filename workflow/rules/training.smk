# Training (paper §3.4): one rule per system, each declaring the resources a cluster job needs.
# A killed or preempted job resumes from results/models/{system}/last.pt when it reruns.

from trackrank.systems import system_spec


rule cache_features:
    input:
        expand(rules.cqt_shard.output.shard, shard=SHARDS),
    output:
        data="results/cache/cqt.f16.npy",
        index="results/cache/index.parquet",
    log:
        "results/logs/cache_features/cache_features.log",
    benchmark:
        "results/benchmarks/cache_features/cache_features.tsv"
    conda:
        "../../envs/trackrank.yaml"
    script:
        "../scripts/cache_features.py"


def train_settings(system):
    """The TrainSettings fields of one system, from config (they are the rule's params)."""
    train = config["train"]
    keys = ("width", "dim", "margin", "batch_size", "epochs", "batches_per_epoch", "patience",
            "tag_threshold", "val_patches", "workers", "device")
    settings = {key: train[key] for key in keys}
    architecture, _ = system_spec(system)
    settings["lr"] = train["lr_tagger"] if architecture == "fcn5_tagger" else train["lr_triplet"]
    settings["k"] = train["val_k"]
    settings["n_relevant"] = train["val_relevant"]
    settings["seed"] = config["seed"]
    return settings


for system in lookup(dpath="train/systems", within=config):
    strategy = system_spec(system)[1]

    rule:
        name:
            f"train_{system}"
        input:
            cache=rules.cache_features.output.index,
            tracks=rules.ingest_catalog.output.tracks,
            val_rankings="results/rankings/val.parquet",
            triplets=[f"results/triplets/{strategy}.parquet"] if strategy else [],
        output:
            model=f"results/models/{system}/model.pt",
            history=f"results/models/{system}/history.csv",
        params:
            system=system,
            settings=train_settings(system),
        threads: lookup(dpath="train/threads", within=config)
        resources:
            gpu=lookup(dpath="train/resources/gpu", within=config),
            mem_mb=lookup(dpath="train/resources/mem_mb", within=config),
            runtime=lookup(dpath="train/resources/runtime", within=config),
        log:
            f"results/logs/train/{system}.log",
        benchmark:
            f"results/benchmarks/train/{system}.tsv"
        conda:
            "../../envs/trackrank.yaml"
        script:
            "../scripts/train_system.py"


rule train:
    input:
        expand("results/models/{system}/model.pt", system=lookup(dpath="train/systems", within=config)),
