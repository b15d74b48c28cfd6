# Snakemake step: name the index `trackrank recommend` and `serve` use by default, chosen on the val split, and
# say in the report which system serves (trackrank.coldstart.served).
from trackrank.coldstart.served import write_default
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    systems = snakemake.params.systems
    write_default(
        dict(zip(systems, snakemake.input.val_metrics)),
        dict(zip(systems, snakemake.input.test_metrics)),
        snakemake.output.default,
        snakemake.output.served,
        **snakemake.params.settings,
    )
