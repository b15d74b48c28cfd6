# Snakemake step: the untrained reference, the test tracks embedded by the TL network at its initialisation
# (trackrank.untrained).
import pandas as pd
import torch

from trackrank.feature_cache import CacheFiles
from trackrank.logs import log_to
from trackrank.untrained import write_untrained_embeddings

log_to(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
tracks = pd.read_parquet(snakemake.input.tracks)
write_untrained_embeddings(
    CacheFiles(index=snakemake.input.cache_index, data=snakemake.input.cache_data),
    tracks.loc[tracks.split == "test", "track_id"].tolist(),
    snakemake.output.embeddings,
    **snakemake.params.settings,
)
