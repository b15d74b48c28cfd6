# Snakemake step: validate the catalog and split it by artist (trackrank.catalog).
import logging
from pathlib import Path

from trackrank.catalog import CatalogError, ingest
from trackrank.logs import log_to

log_to(snakemake.log[0])
p = snakemake.params
try:
    ingest(
        p.catalog,
        Path(snakemake.output.tracks).parent,
        **p.settings,
    )
except CatalogError as error:
    logging.getLogger("trackrank.catalog").error("%s", error)
    raise SystemExit(f"trackrank: {error}") from None
