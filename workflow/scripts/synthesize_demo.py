# Snakemake step: synthesise the demo catalog (trackrank.demo).
from trackrank.demo import write_demo_catalog
from trackrank.logs import log_to

log_to(snakemake.log[0])
write_demo_catalog(
    snakemake.params.settings, tags=snakemake.output.tags, meta=snakemake.output.meta, workers=snakemake.threads
)
