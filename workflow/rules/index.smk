# The cold-start index: every catalog track embedded by a trained TL system, one job per feature shard,
# merged into one index searched by `trackrank`.

from trackrank.coldstart.settings import default_index_settings, index_part_settings, index_settings, indexable

# index.system "best" indexes every trained TL system and names the best by test MAP@k the default.
INDEX_SYSTEM = lookup(dpath="index/system", within=config)
INDEXED = [s for s in SYSTEMS if indexable(s)] if INDEX_SYSTEM == "best" else [INDEX_SYSTEM]
if INDEX_SYSTEM != "best" and (INDEX_SYSTEM not in SYSTEMS or not indexable(INDEX_SYSTEM)):
    raise WorkflowError(f"index.system: '{INDEX_SYSTEM}' is not a TL system of train.systems ({', '.join(SYSTEMS)})")


rule index_part:
    input:
        model=trained_model,
        cache_index=rules.cache_features.output.index,
        cache_data=rules.cache_features.output.data,
        tracks=rules.ingest_catalog.output.tracks,
    output:
        "results/index_parts/{system}/shard-{shard}.parquet",
    log:
        "results/logs/index_part/{system}/shard-{shard}.log",
    benchmark:
        "results/benchmarks/index_part/{system}/shard-{shard}.tsv"
    wildcard_constraints:
        system="|".join(INDEXED) or "^$",
    conda:
        "../../envs/trackrank.yaml"
    threads: lookup(dpath="train/threads", within=config)
    params:
        settings=index_part_settings(config),
    script:
        "../scripts/embed_index_part.py"


rule index:
    input:
        model=trained_model,
        parts=expand(rules.index_part.output[0], shard=SHARDS, allow_missing=True),
        tracks=rules.ingest_catalog.output.tracks,
        tags=rules.ingest_catalog.output.tags,
        taxonomy=rules.ingest_catalog.output.taxonomy,
    output:
        tracks="results/index/{system}/tracks.parquet",
        vectors="results/index/{system}/vectors.faiss",
        identity="results/index/{system}/identity.json",
    log:
        "results/logs/index/{system}.log",
    benchmark:
        "results/benchmarks/index/{system}.tsv"
    wildcard_constraints:
        system="|".join(INDEXED) or "^$",
    conda:
        "../../envs/trackrank.yaml"
    threads: lookup(dpath="train/threads", within=config)
    params:
        catalog=CATALOG_DIR,
        settings=index_settings(config),
    script:
        "../scripts/build_index.py"


rule index_default:
    input:
        metrics=expand(rules.evaluate_system.output.summary, system=INDEXED),
        identities=expand(rules.index.output.identity, system=INDEXED),
    output:
        "results/index/default.json",
    log:
        "results/logs/index_default/index_default.log",
    conda:
        "../../envs/trackrank.yaml"
    params:
        systems=INDEXED,
        settings=default_index_settings(config),
    script:
        "../scripts/index_default.py"
