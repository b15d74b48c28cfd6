# Snakemake step: the mfcc_stats reference's test embeddings, standardised on the train split (trackrank.mfcc).
from trackrank.logs import log_to
from trackrank.mfcc import write_reference_embeddings

log_to(snakemake.log[0])
write_reference_embeddings(
    snakemake.input.stats, snakemake.input.tracks, snakemake.input.cache_index, snakemake.output.embeddings
)
