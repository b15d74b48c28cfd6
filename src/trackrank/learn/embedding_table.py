"""The embeddings table: one row per track, its id and its vector, whatever produced it.

A trained system, the tagger's trunk, the untrained network and ``mfcc_stats`` all write this one
format and the evaluation reads it; it lives apart from the networks so that reading it (every
evaluation job) needs no torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from trackrank.atomic import atomic_output


def save_embeddings(
    track_ids: list[str], matrix: np.ndarray, *, output: str | Path, column: str = "embedding"
) -> pa.Table:
    """Write one row per track, ``track_id`` and ``column`` (fixed_size_list<float32, d>), to Parquet.

    The one format :func:`read_embeddings` reads, whatever produced the vectors (a trained
    system, a reference without training): the evaluation treats them all alike.
    """
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or len(matrix) != len(track_ids):
        raise ValueError(f"{output}: {len(track_ids)} track ids for a matrix of shape {matrix.shape}")
    values = pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), matrix.shape[1])
    table = pa.table({"track_id": pa.array(track_ids, pa.string()), column: values})
    with atomic_output(output) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return table


def read_embeddings(path: str | Path) -> tuple[list[str], np.ndarray, str]:
    """(track ids, (n, d or m) matrix, column name) from an embeddings table."""
    table = pq.read_table(path)
    column = "tags" if "tags" in table.column_names else "embedding"
    values = table.column(column).combine_chunks()
    matrix = values.flatten().to_numpy().reshape(len(values), values.type.list_size)
    return table.column("track_id").to_pylist(), matrix, column
