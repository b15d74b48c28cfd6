# Snakemake step: unpack the CQT shards into the memory-mapped training cache (trackrank.feature_cache).
from trackrank.feature_cache import CacheFiles, build_cache
from trackrank.logs import log_to

log_to(snakemake.log[0])
build_cache(snakemake.input, CacheFiles(index=snakemake.output.index, data=snakemake.output.data))
