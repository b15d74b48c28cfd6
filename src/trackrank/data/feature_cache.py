"""A memory-mapped float16 cache of every track's CQT, for training and embedding.

Why: training draws random 96 x 512 patches from random tracks, thousands per second
on a GPU. Reading them from the zstd Parquet shards would decompress a whole row group
per patch; holding the catalog in RAM does not scale (the paper's 14,246 tracks are
~20 GB of float16 CQT, more than many hosts have). So each feature shard is unpacked
once into a flat file of shape (frames, 96) (``shard-NNN.f16.npy``) plus its index
(``shard-NNN.index.parquet``: ``track_id``, ``offset``, ``n_frames``). A patch is then one
contiguous 98 KB slice of a memory map: the OS page cache keeps what fits in RAM and reads
the rest from disk, and every DataLoader worker process maps the same files without copying
them. One cache part per shard, so a new track rewrites one shard's part, and a catalog of
millions of tracks is unpacked by as many jobs as it has shards; :class:`PatchCache` reads
the parts as one cache, tracks numbered in part order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from trackrank.atomic import atomic_output
from trackrank.data.feature_store import cqt_from_list
from trackrank.data.features import N_BINS, PATCH_FRAMES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheFiles:
    """The cache's two files by path: ``data`` (the frames) and ``index`` (where each track's frames are)."""

    index: Path
    data: Path

    @classmethod
    def in_folder(cls, folder: str | Path) -> CacheFiles:
        """A cache of one part as ``folder/index.parquet`` and ``folder/cqt.f16.npy``."""
        return cls(Path(folder) / "index.parquet", Path(folder) / "cqt.f16.npy")


#: A cache: one part, or its parts in order (the workflow's: one per feature shard).
Cache = CacheFiles | Sequence[CacheFiles]


def cache_parts(indexes: Sequence[str | Path], data: Sequence[str | Path]) -> list[CacheFiles]:
    """The parts of a cache from its index files and data files, paired in the order given (a job's inputs)."""
    if len(indexes) != len(data):
        raise ValueError(f"a cache needs one data file per index file: {len(indexes)} index(es), {len(data)} data")
    return [CacheFiles(Path(i), Path(d)) for i, d in zip(indexes, data)]


def cache_in_folder(folder: str | Path) -> list[CacheFiles]:
    """The cache parts in a finished run's cache folder (``shard-NNN.index.parquet`` with ``shard-NNN.f16.npy``,
    in shard order; or one ``index.parquet`` with ``cqt.f16.npy``): for scripts that read a run."""
    folder = Path(folder)
    indexes = sorted(folder.glob("shard-*.index.parquet"))
    if indexes:
        return cache_parts(indexes, [i.with_name(i.name.replace(".index.parquet", ".f16.npy")) for i in indexes])
    whole = CacheFiles.in_folder(folder)
    if not whole.index.exists():
        raise FileNotFoundError(f"no feature cache in {folder} (shard-*.index.parquet or index.parquet)")
    return [whole]


def parts_of(cache: Cache) -> list[CacheFiles]:
    """A cache's parts as a list (a cache of one part given alone is a list of one)."""
    return [cache] if isinstance(cache, CacheFiles) else list(cache)


def cached_track_ids(cache_index: str | Path | Sequence[str | Path]) -> list[str]:
    """The track ids a cache holds, in its order, from its index file(s) alone."""
    paths = [cache_index] if isinstance(cache_index, (str, Path)) else list(cache_index)
    return [t for path in paths for t in pd.read_parquet(path, columns=["track_id"])["track_id"]]


def build_cache(shards: list[str | Path], cache: CacheFiles) -> pd.DataFrame:
    """Unpack the shards into one cache part, ``cache.data`` (float16 frames) and ``cache.index``; returns the
    index. The workflow builds one part per shard."""
    files = [pq.ParquetFile(s) for s in shards]
    total = sum(int(pq.read_table(s, columns=["n_frames"]).column(0).to_numpy().sum()) for s in shards)
    with atomic_output(cache.data) as tmp:
        rows = _unpack(files, np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(total, N_BINS)))
    index = pd.DataFrame(rows, columns=["track_id", "offset", "n_frames"])
    with atomic_output(cache.index) as tmp:
        index.to_parquet(tmp, index=False)
    log.info("cached %d tracks, %d frames (%.1f MiB) in %s", len(index), total, total * N_BINS * 2 / 2**20, cache.data)
    return index


def _unpack(files: list[pq.ParquetFile], data: np.ndarray) -> list[tuple[str, int, int]]:
    """Copy every track's frames into ``data`` (a writable memory map); (track_id, offset, n_frames) rows."""
    rows, offset = [], 0
    for parquet in files:
        for g in range(parquet.num_row_groups):  # one row group in memory at a time
            group = parquet.read_row_group(g, columns=["track_id", "cqt"])
            for track_id, cell in zip(group.column("track_id").to_pylist(), group.column("cqt")):
                matrix = cqt_from_list(cell)
                data[offset : offset + len(matrix)] = matrix
                rows.append((track_id, offset, len(matrix)))
                offset += len(matrix)
    data.flush()
    return rows


class PatchCache:
    """Random patches from the memory-mapped cache, its parts read as one (tracks numbered in part order).

    Opens lazily, so an instance can be sent to DataLoader worker processes, each of
    which maps the files itself.
    """

    def __init__(self, files: Cache):
        self.files = parts_of(files)
        if not self.files:
            raise ValueError("a feature cache needs at least one part")
        indexes = [pd.read_parquet(part.index) for part in self.files]
        index = pd.concat(indexes, ignore_index=True)
        self.track_ids: list[str] = index["track_id"].tolist()
        self.position = {t: i for i, t in enumerate(self.track_ids)}
        if len(self.position) < len(self.track_ids):
            twice = index.loc[index["track_id"].duplicated(), "track_id"].iloc[0]
            parts = ", ".join(str(part.data) for part in self.files)
            raise ValueError(f"track '{twice}' is in more than one cache part ({parts})")
        self.part = np.repeat(np.arange(len(self.files)), [len(i) for i in indexes])
        self.offsets = index["offset"].to_numpy(np.int64)
        self.n_frames = index["n_frames"].to_numpy(np.int64)
        self._data: list[np.ndarray] | None = None

    @property
    def data(self) -> list[np.ndarray]:
        """Each part's frames, memory-mapped on first use in this process."""
        if self._data is None:
            self._data = [np.load(part.data, mmap_mode="r") for part in self.files]
        return self._data

    def __getstate__(self):
        return {**self.__dict__, "_data": None}

    def indices(self, track_ids) -> np.ndarray:
        """Cache positions of ``track_ids``; a missing id is an error naming it."""
        missing = [t for t in track_ids if t not in self.position]
        if missing:
            raise KeyError(f"{len(missing)} track(s) have no features, e.g. '{missing[0]}'")
        return np.array([self.position[t] for t in track_ids], dtype=np.int64)

    def with_features(self, track_ids: list[str]) -> list[str]:
        """The ``track_ids`` that have features, in their order; how many do not is logged."""
        kept = [t for t in track_ids if t in self.position]
        if len(kept) < len(track_ids):
            log.warning("%d of %d tracks have no features and are left out", len(track_ids) - len(kept), len(track_ids))
        return kept

    def frames(self, track: int) -> np.ndarray:
        """One track's whole CQT (cache position ``track``): (n_frames, 96), float32."""
        first = self.offsets[track]
        return np.asarray(self.data[self.part[track]][first : first + self.n_frames[track]], dtype=np.float32)

    def patches(self, tracks: np.ndarray, rng: np.random.Generator, n_frames: int = PATCH_FRAMES) -> np.ndarray:
        """One random patch per entry of ``tracks`` (cache positions): (len, 96, n_frames), float32."""
        out = np.empty((len(tracks), N_BINS, n_frames), dtype=np.float32)
        lengths = self.n_frames[tracks]
        starts = (rng.random(len(tracks)) * np.maximum(lengths - n_frames + 1, 1)).astype(np.int64)
        data, parts, firsts = self.data, self.part[tracks], self.offsets[tracks] + starts
        for k, (part, first) in enumerate(zip(parts, firsts)):
            window = data[part][first : first + min(n_frames, lengths[k])]
            if len(window) < n_frames:  # only for tracks kept shorter than a patch: loop them
                window = np.resize(window, (n_frames, N_BINS))
            out[k] = window.T
        return out
