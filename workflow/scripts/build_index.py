# Snakemake step: the cold-start index of one TL system (trackrank.index).
import faiss
import torch

from trackrank.feature_cache import CacheFiles
from trackrank.index import build_index
from trackrank.logs import log_to

log_to(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
faiss.omp_set_num_threads(snakemake.threads)
build_index(
    model=snakemake.input.model,
    cache=CacheFiles(index=snakemake.input.cache_index, data=snakemake.input.cache_data),
    tracks=snakemake.input.tracks,
    catalog_dir=snakemake.params.catalog,
    out_tracks=snakemake.output.tracks,
    out_vectors=snakemake.output.vectors,
    out_identity=snakemake.output.identity,
    **snakemake.params.settings,
)
