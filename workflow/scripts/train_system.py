# Snakemake step: train one system, resuming from its last checkpoint if any (trackrank.learn.training).
import torch

from trackrank.data.catalog import CatalogFiles
from trackrank.data.feature_cache import cache_parts
from trackrank.learn.loading import load_training_data
from trackrank.learn.settings import TrainSettings
from trackrank.learn.training import train
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    settings = TrainSettings.from_params(
        snakemake.params.system,
        snakemake.params.settings,
        init_trunk=snakemake.input.start or "",  # the model.pt of the system it starts from (*_from_at, *_from_ssl)
    )
    cache = cache_parts(snakemake.input.cache_index, snakemake.input.cache_data)
    catalog = CatalogFiles(snakemake.input.tracks, snakemake.input.tags, snakemake.input.taxonomy)
    data = load_training_data(
        settings,
        cache,
        catalog=catalog,
        val_rankings=snakemake.input.val_rankings,
        triplets=list(snakemake.input.triplets) or None,  # its parts; none for the others
        train_rankings=list(snakemake.input.train_rankings) or None,
        similarity=snakemake.params.similarity,
    )
    train(
        settings,
        data,
        model_file=snakemake.output.model,
        history_file=snakemake.output.history,
        last_file=snakemake.params.last,
    )
