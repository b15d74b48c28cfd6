# Snakemake step: one feature shard's catalog tracks embedded for the cold-start index (trackrank.coldstart.index).
import torch

from trackrank.coldstart.index import embed_catalog_part
from trackrank.data.feature_cache import CacheFiles
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    embed_catalog_part(
        model=snakemake.input.model,
        cache=CacheFiles(index=snakemake.input.cache_index, data=snakemake.input.cache_data),
        tracks=snakemake.input.tracks,
        output=snakemake.output[0],
        **snakemake.params.settings,
    )
