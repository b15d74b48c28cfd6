# Snakemake step: validate the catalog and split it by artist (trackrank.catalog).
import logging

from trackrank.catalog import CatalogError, ingest
from trackrank.logs import log_to

log_to(snakemake.log[0])
p = snakemake.params
try:
    ingest(
        p.catalog,
        tracks=snakemake.output.tracks,
        tags=snakemake.output.tags,
        taxonomy=snakemake.output.taxonomy,
        rejected=snakemake.output.rejected,
        **p.settings,
    )
except CatalogError as error:
    logging.getLogger("trackrank.catalog").error("%s", error)
    raise SystemExit(f"trackrank: {error}") from None
