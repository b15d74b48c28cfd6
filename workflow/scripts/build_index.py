# Snakemake step: the cold-start index of one TL system from its parts (trackrank.coldstart.index).
import faiss

from trackrank.coldstart.index import build_index
from trackrank.logs import workflow_step

with workflow_step(snakemake.log[0]):
    faiss.omp_set_num_threads(snakemake.threads)
    build_index(
        model=snakemake.input.model,
        parts=snakemake.input.parts,
        tracks=snakemake.input.tracks,
        tags=snakemake.input.tags,
        taxonomy=snakemake.input.taxonomy,
        catalog_dir=snakemake.params.catalog,
        out_tracks=snakemake.output.tracks,
        out_vectors=snakemake.output.vectors,
        out_identity=snakemake.output.identity,
        **snakemake.params.settings,
    )
