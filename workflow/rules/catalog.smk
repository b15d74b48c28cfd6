# Validate the catalog and split it by artist (a checkpoint: the shard jobs read its table).

from trackrank.workflow_settings import ingest_settings


# The audio files whose headers validation reads (durations) are deliberately not inputs: replacing
# one track must rerun its feature shard only, not the split and everything downstream.
checkpoint ingest_catalog:
    input:
        tags=catalog_tags_file,
        meta=f"{CATALOG_DIR}/tags_meta.csv",
        untagged=catalog_untagged_file,  # optional: audio without tags (self-supervised pretraining)
    output:
        tracks="results/catalog/tracks.parquet",
        tags="results/catalog/tags.parquet",
        taxonomy="results/catalog/taxonomy.csv",
        rejected="results/catalog/rejected.csv",
    log:
        "results/logs/ingest_catalog/ingest_catalog.log",
    benchmark:
        "results/benchmarks/ingest_catalog/ingest_catalog.tsv"
    conda:
        "../../envs/trackrank.yaml"
    params:
        catalog=lambda wildcards, input: str(Path(input.meta).parent),  # the folder the tables name audio in
        settings=ingest_settings(config),
    script:
        "../scripts/ingest_catalog.py"
