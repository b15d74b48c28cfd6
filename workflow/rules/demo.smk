# The built-in demo catalog, synthesised in the user catalog format.

from trackrank.data.demo.catalog import catalog_tags, DemoSettings

DEMO_SETTINGS = DemoSettings.from_config(config)


rule synthesize_demo:
    output:
        tags=f"{DEMO_DIR}/tags.csv",
        meta=f"{DEMO_DIR}/tags_meta.csv",
        untagged=f"{DEMO_DIR}/untagged.csv",  # demo.untagged_share of the tracks, their tags withheld
        # Listed file by file (the tag table is cheap to draw), so that replacing
        # one demo track reruns only its feature shard.
        audio=[f"{DEMO_DIR}/{path}" for path in catalog_tags(DEMO_SETTINGS)["path"]],
    log:
        "results/logs/synthesize_demo/synthesize_demo.log",
    benchmark:
        "results/benchmarks/synthesize_demo/synthesize_demo.tsv"
    conda:
        "../../envs/trackrank.yaml"
    threads: 2
    params:
        settings=DEMO_SETTINGS,
    script:
        "../scripts/synthesize_demo.py"
