# Validate the catalog and split it by artist (a checkpoint: the shard jobs read its table).


checkpoint ingest_catalog:
    input:
        tags=catalog_tags_file,
        meta=f"{CATALOG_DIR}/tags_meta.csv",
    output:
        tracks="results/catalog/tracks.parquet",
        tags="results/catalog/tags.parquet",
        taxonomy="results/catalog/taxonomy.csv",
        rejected="results/catalog/rejected.csv",
    params:
        catalog=CATALOG_DIR,
        seed=config["seed"],
        fractions=[lookup(dpath=f"split/{s}", within=config) for s in ("train", "val", "test")],
        short_tracks=lookup(dpath="features/short_tracks", within=config),
    log:
        "results/logs/ingest_catalog/ingest_catalog.log",
    benchmark:
        "results/benchmarks/ingest_catalog/ingest_catalog.tsv"
    conda:
        "../../envs/trackrank.yaml"
    script:
        "../scripts/ingest_catalog.py"
