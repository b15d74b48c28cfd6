# Snakemake step: unpack the CQT shards into the memory-mapped training cache (trackrank.feature_cache).
from pathlib import Path

from trackrank.feature_cache import build_cache
from trackrank.logs import log_to

log_to(snakemake.log[0])
build_cache(snakemake.input, Path(snakemake.output.index).parent)
