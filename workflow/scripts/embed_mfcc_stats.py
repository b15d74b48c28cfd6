# Snakemake step: the mfcc_stats reference's test embeddings, standardised on the train split
# (trackrank.evaluate.references.mfcc_stats).
from trackrank.evaluate.references.mfcc_stats import write_reference_embeddings
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    write_reference_embeddings(
        snakemake.input.stats,
        tracks=snakemake.input.tracks,
        cache_index=snakemake.input.cache_index,
        output=snakemake.output.embeddings,
    )
