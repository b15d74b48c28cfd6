# Snakemake step: the untrained reference, the test tracks embedded by the TL network at its initialisation
# (trackrank.evaluate.references.untrained).
import pandas as pd
import torch

from trackrank.data.feature_cache import cache_parts
from trackrank.evaluate.references.untrained import write_untrained_embeddings
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    tracks = pd.read_parquet(snakemake.input.tracks)
    write_untrained_embeddings(
        cache_parts(snakemake.input.cache_index, snakemake.input.cache_data),
        tracks.loc[tracks.split == "test", "track_id"].tolist(),
        output=snakemake.output.embeddings,
        **snakemake.params.settings,
    )
