# Snakemake step: name the index `trackrank recommend` and `serve` use by default (trackrank.coldstart.index).
from trackrank.coldstart.index import write_default
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    metrics = dict(zip(snakemake.params.systems, snakemake.input.metrics))
    write_default(metrics, snakemake.output[0], **snakemake.params.settings)
