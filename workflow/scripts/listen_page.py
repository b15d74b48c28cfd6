# Snakemake step: the listening page, test queries with the oracle's and each system's first tracks.
from trackrank.evaluate.listen import write_listening_page
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    write_listening_page(
        snakemake.input.tracks,
        tags_file=snakemake.input.tags,
        test_rankings_file=snakemake.input.rankings,
        prediction_files=dict(zip(snakemake.params.systems, snakemake.input.predictions)),
        output=snakemake.output[0],
        **snakemake.params.settings,
    )
