# Snakemake step: the Table-2-style table, the paired differences to at_baseline, the plots and the
# paper's table (trackrank.evaluate.report).
from trackrank.evaluate.report import write_report
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    out = snakemake.output
    p = snakemake.params
    write_report(
        snakemake.input.summaries,
        dict(zip(p.trained, snakemake.input.histories)),
        table_csv=out.table_csv,
        table_md=out.table_md,
        paper_md=out.paper_md,
        bars=out.bars,
        curves=out.curves,
        per_query_files=dict(zip(p.evaluated, snakemake.input.per_query)),
        paired_csv=out.paired_csv,
        paired_md=out.paired_md,
    )
