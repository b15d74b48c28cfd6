# Snakemake step: MFCC mean/std of every catalog track, for the mfcc_stats reference
# (trackrank.evaluate.references.mfcc_stats).
import pandas as pd

from trackrank.evaluate.references.mfcc_stats import write_stats
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    tracks = pd.DataFrame(snakemake.params.tracks, columns=["track_id", "path"])
    write_stats(tracks, snakemake.output.stats, workers=snakemake.threads)
