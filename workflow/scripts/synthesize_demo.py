# Snakemake step: synthesise the demo catalog (trackrank.data.demo.catalog).
from trackrank.data.demo.catalog import write_demo_catalog
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    write_demo_catalog(
        snakemake.params.settings,
        tags=snakemake.output.tags,
        meta=snakemake.output.meta,
        untagged=snakemake.output.untagged,
        workers=snakemake.threads,
    )
