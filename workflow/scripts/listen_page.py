# Snakemake step: the listening page, test queries with the oracle's and each system's first tracks.
from trackrank.evaluate.listen import write_listening_page
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    write_listening_page(
        snakemake.input.tracks,
        snakemake.input.tags,
        snakemake.input.rankings,
        snakemake.input.predictions,
        snakemake.output[0],
        **snakemake.params.settings,
    )
