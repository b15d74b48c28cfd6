# Snakemake step: synthesise the demo catalog (trackrank.demo).
from pathlib import Path

from trackrank.demo import write_demo_catalog
from trackrank.logs import log_to

log_to(snakemake.log[0])
write_demo_catalog(Path(snakemake.output.tags).parent, snakemake.params.settings, workers=snakemake.threads)
