# Snakemake step: unpack one CQT shard into its part of the memory-mapped cache (trackrank.data.feature_cache).
from trackrank.data.feature_cache import CacheFiles, build_cache
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    build_cache([snakemake.input.shard], CacheFiles(index=snakemake.output.index, data=snakemake.output.data))
