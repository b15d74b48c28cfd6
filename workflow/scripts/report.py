# Snakemake step: the Table-2-style table, the paired differences to at_baseline, the plots and the
# paper's table (trackrank.report).
from pathlib import Path

from trackrank.logs import log_to
from trackrank.report import write_report

log_to(snakemake.log[0])
write_report(
    snakemake.input.summaries,
    snakemake.input.histories,
    Path(snakemake.output.table).parent,
    per_query_files=snakemake.input.per_query,
)
