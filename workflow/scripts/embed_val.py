# Snakemake step: the val tracks embedded by one indexed system (a TL system, or the auto-tagger's trunk for
# at_trunk), which index.system "best" chooses by (trackrank.learn.embedding).
import pandas as pd
import torch

from trackrank.data.feature_cache import cache_parts
from trackrank.evaluate.references.at_trunk import write_trunk_embeddings
from trackrank.learn.embedding import write_embeddings
from trackrank.learn.settings import TRUNK_SYSTEM
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    tracks = pd.read_parquet(snakemake.input.tracks)
    embed = write_trunk_embeddings if snakemake.wildcards.system == TRUNK_SYSTEM else write_embeddings
    embed(
        snakemake.input.model,
        cache_parts(snakemake.input.cache_index, snakemake.input.cache_data),
        track_ids=tracks.loc[tracks.split == "val", "track_id"].tolist(),
        output=snakemake.output.embeddings,
        **snakemake.params.settings,
    )
