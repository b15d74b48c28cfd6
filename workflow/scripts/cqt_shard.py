# Snakemake step: compute one CQT feature shard (trackrank.features).
import pandas as pd

from trackrank.features import extract_shard, write_rejected
from trackrank.logs import log_to

log_to(snakemake.log[0])
tracks = pd.DataFrame(snakemake.params.tracks, columns=["track_id", "path"])
rejected = extract_shard(tracks, snakemake.output.shard, workers=snakemake.threads, **snakemake.params.settings)
write_rejected(rejected, snakemake.output.rejected)
