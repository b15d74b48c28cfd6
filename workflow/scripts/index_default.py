# Snakemake step: name the index `trackrank recommend` and `serve` use by default (trackrank.index).
from trackrank.index import write_default
from trackrank.logs import log_to

log_to(snakemake.log[0])
write_default(
    dict(zip(snakemake.params.systems, snakemake.input.metrics)), snakemake.output[0], system=snakemake.params.system
)
