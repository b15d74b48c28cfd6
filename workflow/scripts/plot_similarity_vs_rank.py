# Snakemake step: the paper's Fig. 1 (top) for the train split (trackrank.report).
from trackrank.logs import log_to
from trackrank.report import plot_similarity_vs_rank

log_to(snakemake.log[0])
plot_similarity_vs_rank(snakemake.input.curve, snakemake.output[0])
