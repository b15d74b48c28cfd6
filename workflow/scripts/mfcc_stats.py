# Snakemake step: MFCC mean/std of every catalog track, for the mfcc_stats reference (trackrank.mfcc).
import pandas as pd

from trackrank.logs import log_to
from trackrank.mfcc import write_stats

log_to(snakemake.log[0])
tracks = pd.DataFrame(snakemake.params.tracks, columns=["track_id", "path"])
write_stats(tracks, snakemake.output.stats, workers=snakemake.threads)
