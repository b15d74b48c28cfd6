# Snakemake step: the paper's Fig. 1 (top) for the train split (trackrank.evaluate.figures).
from trackrank.evaluate.figures import plot_similarity_vs_rank
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    plot_similarity_vs_rank(list(snakemake.input.curve), snakemake.output[0])
