# Snakemake step: the at_trunk reference, the test tracks embedded by the auto-tagger's trunk
# (trackrank.evaluate.references.at_trunk).
import pandas as pd
import torch

from trackrank.data.feature_cache import cache_parts
from trackrank.evaluate.references.at_trunk import write_trunk_embeddings
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    tracks = pd.read_parquet(snakemake.input.tracks)
    write_trunk_embeddings(
        snakemake.input.model,
        cache_parts(snakemake.input.cache_index, snakemake.input.cache_data),
        track_ids=tracks.loc[tracks.split == "test", "track_id"].tolist(),
        output=snakemake.output.embeddings,
        **snakemake.params.settings,
    )
