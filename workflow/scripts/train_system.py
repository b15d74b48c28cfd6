# Snakemake step: train one system, resuming from its last checkpoint if any (trackrank.training).
from pathlib import Path

import torch

from trackrank.logs import log_to
from trackrank.training import TrainSettings, load_training_data, train

log_to(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
settings = TrainSettings(system=snakemake.params.system, **snakemake.params.settings,
                         init_trunk=snakemake.input.tagger[0] if snakemake.input.tagger else "")
data = load_training_data(settings, Path(snakemake.input.cache).parent, Path(snakemake.input.tracks).parent,
                          snakemake.input.val_rankings, snakemake.input.triplets[0] if snakemake.input.triplets else None,
                          snakemake.input.train_rankings[0] if snakemake.input.train_rankings else None,
                          snakemake.params.similarity)
train(settings, data, Path(snakemake.output.model).parent)
