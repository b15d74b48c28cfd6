"""Read CQT matrices and random 96 x 512 patches back from the feature shards.

Opening a store reads only the ``track_id`` column of each shard and the row-group
layout; a track's matrix is then read from its own row group, so looking up one
track never loads a whole shard.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from trackrank.data.features import PATCH_FRAMES, pad_to_patch


def cqt_from_list(value) -> np.ndarray:
    """(n_frames, n_bins) numpy matrix from one Arrow ``list<fixed_size_list>`` cell."""
    frames = value.values  # FixedSizeListArray
    return frames.flatten().to_numpy(zero_copy_only=False).reshape(len(frames), frames.type.list_size)


class FeatureStore:
    """Index of the tracks in a set of shards.

    Parameters
    ----------
    shards : paths of ``shard-NNN.parquet`` files (or a folder holding them).
    """

    def __init__(self, shards):
        if isinstance(shards, (str, Path)) and Path(shards).is_dir():
            shards = sorted(Path(shards).glob("shard-*.parquet"))
        self._files: list[pq.ParquetFile] = []
        self._where: dict[str, tuple[int, int, int]] = {}  # track_id -> (file, row group, row)
        for f, path in enumerate(shards):
            parquet = pq.ParquetFile(path)
            self._files.append(parquet)
            for g in range(parquet.num_row_groups):
                ids = parquet.read_row_group(g, columns=["track_id"]).column(0).to_pylist()
                for r, track_id in enumerate(ids):
                    self._where[track_id] = (f, g, r)

    @property
    def track_ids(self) -> list[str]:
        return list(self._where)

    def __contains__(self, track_id: str) -> bool:
        return track_id in self._where

    def __len__(self) -> int:
        return len(self._where)

    def cqt(self, track_id: str) -> np.ndarray:
        """The track's CQT, shape (n_frames, 96), dB, float32."""
        try:
            f, g, r = self._where[track_id]
        except KeyError:
            raise KeyError(f"track '{track_id}' is in no feature shard") from None
        row_group = self._files[f].read_row_group(g, columns=["cqt"])
        return cqt_from_list(row_group.column("cqt")[r]).astype(np.float32)

    def random_patch(self, track_id: str, rng: np.random.Generator, n_frames: int = PATCH_FRAMES) -> np.ndarray:
        """A random patch of the track, shape (96, n_frames): bins x frames, as the CNN sees it."""
        return random_patch(self.cqt(track_id), rng, n_frames=n_frames)


def random_patch(cqt: np.ndarray, rng: np.random.Generator, *, n_frames: int = PATCH_FRAMES) -> np.ndarray:
    """A random ``n_frames`` window of a (frames, bins) matrix, transposed to (bins, n_frames)."""
    cqt = pad_to_patch(cqt, n_frames)
    start = int(rng.integers(0, len(cqt) - n_frames + 1))
    return np.ascontiguousarray(cqt[start : start + n_frames].T)
