"""Catalog tracks that sound like a new audio file: the cold-start query (paper §1).

The file is decoded and turned into a CQT exactly as the feature stage does (44.1 kHz mono,
:func:`trackrank.data.features.track_cqt`, stored precision float16), embedded from patches spread
evenly over the whole track by the model the index was built with, and searched in the index.
A file that cannot serve as a query (missing, undecodable, digital silence, shorter than one
patch unless padding is asked for) raises :class:`QueryError` naming the file and the reason.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from trackrank.coldstart.index import CatalogIndex, Neighbour, embed_tracks, load_embedding_model
from trackrank.data.features import PATCH_FRAMES, min_duration_s, track_cqt
from trackrank.errors import AudioError, QueryError
from trackrank.learn.embedding import choose_device


def query_cqt(path: str | Path, pad: bool = False) -> np.ndarray:
    """The feature stage's CQT of one file, (n_frames, 96), at the stored precision (float16 values)."""
    path = Path(path)
    if not path.is_file():
        raise QueryError(f"{path}: no such file")
    try:
        cqt = track_cqt(path).astype(np.float16).astype(np.float32)
    except AudioError as error:
        raise QueryError(str(error)) from error
    if len(cqt) < PATCH_FRAMES and not pad:
        raise QueryError(
            f"{path}: shorter than one patch ({len(cqt)} < {PATCH_FRAMES} frames, {min_duration_s():.2f} s); "
            "pass --pad to loop it"
        )
    return cqt


class Recommender:
    """An index with the model that built it, ready for queries from any thread."""

    def __init__(
        self,
        index_folder: str | Path,
        model: str | Path | None = None,
        device: str = "auto",
        n_patches: int | None = None,
    ):
        self.index = CatalogIndex(index_folder)
        self.device = choose_device(device)
        model_path = Path(model or self.index.identity["model_path"])
        if not model_path.is_file():
            raise FileNotFoundError(f"{model_path}: model of index {self.index.folder} not found (pass --model)")
        self.model, identity = load_embedding_model(model_path, self.device)
        self.index.check_model(model_path, identity)
        self.n_patches = n_patches or self.index.identity["n_patches"]
        self._lock = threading.Lock()  # one forward pass at a time: requests of a server share the model

    def embed(self, cqt: np.ndarray) -> np.ndarray:
        with self._lock, torch.inference_mode():
            return embed_tracks(self.model, [cqt], n_patches=self.n_patches, device=self.device)

    def recommend(self, path: str | Path, k: int = 10, pad: bool = False) -> list[Neighbour]:
        """The ``k`` catalog tracks nearest to the audio file ``path``; raises :class:`QueryError`."""
        return self.index.search(self.embed(query_cqt(path, pad=pad)), k)[0]

    def similar(self, track_id: str, k: int = 10) -> list[Neighbour]:
        """The ``k`` catalog tracks nearest to a catalog track, itself left out (KeyError: unknown id)."""
        vector = self.index.vector(track_id)[None, :]
        return self.index.search(vector, k, exclude=[track_id])[0]

    def describe(self) -> dict:
        """What answers: the system, its checkpoint and the index (the header of every JSON answer)."""
        identity = self.index.identity
        return {
            "system": identity["system"],
            "model_sha256": identity["model_sha256"],
            "index": str(self.index.folder),
            "kind": identity["kind"],
            "n_tracks": identity["n_tracks"],
        }


def answer(file: str, neighbours: list[Neighbour]) -> dict:
    """One file's answer as JSON-ready data."""
    return {"file": file, "neighbours": [asdict(n) for n in neighbours]}
