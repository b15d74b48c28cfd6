# The cold-start index: every catalog track embedded by a trained embedding (a TL system, or the auto-tagger's
# trunk: at_trunk), one job per feature shard, merged into one index searched by `trackrank`.

from trackrank.coldstart.settings import indexable
from trackrank.workflow_settings import default_index_settings, index_part_settings, index_settings

# index.system "best" indexes every trained embedding and names the best by val nDCG@k the default; the test
# split is not read for that choice.
INDEX_SYSTEM = lookup(dpath="index/system", within=config)
INDEXABLE = [s for s in SYSTEMS if indexable(s)] + [TRUNK_SYSTEM] * (TRUNK_SYSTEM in REFERENCES)
INDEXED = INDEXABLE if INDEX_SYSTEM == "best" else [INDEX_SYSTEM]
if INDEX_SYSTEM not in ("best", *INDEXABLE):
    raise WorkflowError(
        f"index.system: '{INDEX_SYSTEM}' is not an embedding this run trains ({', '.join(INDEXABLE) or 'none'})"
    )


rule embed_val:
    input:
        model=index_model,
        cache_index=expand(rules.cache_features.output.index, shard=SHARDS),
        cache_data=expand(rules.cache_features.output.data, shard=SHARDS),
        tracks=rules.ingest_catalog.output.tracks,
    output:
        embeddings="results/val/embeddings/{system}.parquet",
    log:
        "results/logs/embed_val/{system}.log",
    benchmark:
        "results/benchmarks/embed_val/{system}.tsv"
    wildcard_constraints:
        system="|".join(INDEXED) or "^$",
    conda:
        "../../envs/trackrank.yaml"
    threads: lookup(dpath="train/threads", within=config)
    params:
        settings=embedding_settings(config),
    script:
        "../scripts/embed_val.py"


rule evaluate_val:
    input:
        embeddings=[rules.embed_val.output.embeddings],  # a list, as evaluate_system's (random has none)
        rankings=ranking_parts("val"),
        cache_index=expand(rules.cache_features.output.index, shard=SHARDS),
        tracks=rules.ingest_catalog.output.tracks,
        tags=rules.ingest_catalog.output.tags,
        taxonomy=rules.ingest_catalog.output.taxonomy,
    output:
        predictions="results/val/predictions/{system}.parquet",
        summary="results/val/metrics/{system}.json",
        per_query="results/val/metrics/{system}.per_query.parquet",
    log:
        "results/logs/evaluate_val/{system}.log",
    wildcard_constraints:
        system="|".join(INDEXED) or "^$",
    conda:
        "../../envs/trackrank.yaml"
    params:
        split="val",
        similarity=similarity_settings(config),
        settings=evaluation_settings(config),
    script:
        "../scripts/evaluate_system.py"


rule index_part:
    input:
        model=index_model,
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
        model=index_model,
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
        val_metrics=expand(rules.evaluate_val.output.summary, system=INDEXED),
        test_metrics=expand(rules.evaluate_system.output.summary, system=INDEXED),
        identities=expand(rules.index.output.identity, system=INDEXED),
    output:
        default="results/index/default.json",
        served=report("results/report/served.md", caption="../report/served.rst", category="Results"),
    log:
        "results/logs/index_default/index_default.log",
    conda:
        "../../envs/trackrank.yaml"
    params:
        systems=INDEXED,
        settings=default_index_settings(config),
    script:
        "../scripts/index_default.py"
