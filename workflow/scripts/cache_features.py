# Snakemake step: unpack the CQT shards into the memory-mapped training cache (trackrank.data.feature_cache).
from trackrank.data.feature_cache import CacheFiles, build_cache
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    build_cache(snakemake.input, CacheFiles(index=snakemake.output.index, data=snakemake.output.data))
