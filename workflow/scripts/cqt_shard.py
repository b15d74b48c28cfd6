# Snakemake step: compute one CQT feature shard (trackrank.data.features).
import pandas as pd

from trackrank.data.features import extract_shard, write_rejected
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    tracks = pd.DataFrame(snakemake.params.tracks, columns=["track_id", "path"])
    rejected = extract_shard(tracks, snakemake.output.shard, workers=snakemake.threads, **snakemake.params.settings)
    write_rejected(rejected, snakemake.output.rejected)
