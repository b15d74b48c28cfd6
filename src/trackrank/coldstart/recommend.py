"""Catalog tracks that sound like a new audio file: the cold-start query (paper §1).

The file is decoded and turned into a CQT exactly as the feature stage does (44.1 kHz mono,
:func:`trackrank.data.features.track_cqt`, stored precision float16), embedded from patches spread
evenly over the whole track by the model the index was built with, and searched in the index.
A file that cannot serve as a query (missing, a folder, not audio, undecodable, longer than the
allowed duration, digital silence, shorter than one patch unless padding is asked for) raises
:class:`QueryError` naming the file and the reason. The work a query can cause is bounded: its
duration is read from the header before anything is decoded, and counted again while decoding.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch

from trackrank.coldstart.explain import TagEstimator, shared, tagger_beside
from trackrank.coldstart.filters import NO_FILTERS, Filters
from trackrank.coldstart.search import CatalogIndex, Neighbour
from trackrank.coldstart.settings import MAX_CHANNELS, MAX_DURATION_S, SAMPLE_RATES
from trackrank.coldstart.track_embeddings import embed_tracks, load_embedding_model
from trackrank.data.audio import starts_like_audio
from trackrank.data.features import PATCH_FRAMES, min_duration_s, track_cqt
from trackrank.errors import AudioError, QueryError
from trackrank.learn.embedding import choose_device
from trackrank.learn.settings import TRUNK_SYSTEM


def check_query_file(path: str | Path) -> Path:
    """``path`` when it can be a query file to decode; else the :class:`QueryError` that says why (missing,
    a symlink loop, a folder, a pipe or device, unreadable, empty, or content that is no audio container),
    before any decoder or model is touched. Only a regular file is opened: reading a FIFO would wait forever
    and ``/dev/zero`` never ends."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise QueryError(f"{path}: a folder, not an audio file")
        if not stat.S_ISREG(mode):
            raise QueryError(f"{path}: not a regular file ({_file_kind(mode)}), not an audio file")
        with open(path, "rb") as stream:
            head = stream.read(16)
    except OSError as error:
        raise QueryError(f"{path}: {_unreachable(path, error)}") from None
    if not head:  # st_size says 0 for /proc files that hold text: read, do not trust it
        raise QueryError(f"{path}: empty file (0 bytes)")
    if not starts_like_audio(head):
        raise QueryError(
            f"{path}: not an audio file (its first bytes are no WAV, FLAC, Ogg, MP3, AAC, M4A, AIFF or AU header)"
        )
    return path


def _file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words."""
    kinds = {stat.S_ISFIFO: "a named pipe", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    return next((name for test, name in kinds.items() if test(mode)), "a socket" if stat.S_ISSOCK(mode) else "")


def _unreachable(path: Path, error: OSError) -> str:
    """Why a path cannot be opened, in words: a loop of symlinks and a dangling one are not "no such file"."""
    if error.errno == errno.ELOOP:
        return "a symlink loop (its links lead back to themselves), not an audio file"
    if error.errno == errno.ENOENT and path.is_symlink():
        return f"a symlink to {os.readlink(path)}, which does not exist"
    if error.errno == errno.ENOENT:
        return "no such file"
    if error.errno == errno.EACCES:
        return "permission denied (not readable by this user)"
    return error.strerror or str(error)


def query_cqt(path: str | Path, pad: bool = False, *, max_duration_s: float | None = MAX_DURATION_S) -> np.ndarray:
    """The feature stage's CQT of one file, (n_frames, 96), at the stored precision (float16 values).

    A sample rate outside :data:`~trackrank.coldstart.settings.SAMPLE_RATES` or more than
    :data:`~trackrank.coldstart.settings.MAX_CHANNELS` channels is refused from the header.
    ``max_duration_s``: the longest file accepted (None: any); ``pad``: loop a file shorter than one patch.
    """
    path = check_query_file(path)
    try:
        cqt = track_cqt(path, max_duration_s=max_duration_s, sample_rates=SAMPLE_RATES, max_channels=MAX_CHANNELS)
        cqt = cqt.astype(np.float16).astype(np.float32)
    except AudioError as error:
        raise QueryError(str(error)) from error
    if len(cqt) < PATCH_FRAMES and not pad:
        raise QueryError(
            f"{path}: shorter than one patch ({len(cqt)} < {PATCH_FRAMES} frames, {min_duration_s():.2f} s); "
            "ask for padding to loop it (recommend --pad, or pad=true over HTTP)"
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
        max_duration_s: float | None = MAX_DURATION_S,
        tagger: str | Path | None = "beside",
    ):
        """``tagger``: the auto-tagger that estimates a new file's tags; ``"beside"``: the index's own model
        when it is the auto-tagger (an ``at_trunk`` index), else the run's ``at_baseline`` beside the index's
        model when it was trained; None: no estimated tags."""
        self.index = CatalogIndex(index_folder)
        self.device = choose_device(device)
        model_path = Path(model or self.index.identity["model_path"])
        if not model_path.is_file():
            raise FileNotFoundError(f"{model_path}: model of index {self.index.folder} not found (pass --model)")
        self.model, identity = load_embedding_model(model_path, self.device)
        self.index.check_model(model_path, identity)
        self.n_patches = n_patches or self.index.identity["n_patches"]
        self.max_duration_s = max_duration_s
        if tagger == "beside":
            tagger = model_path if identity["system"] == TRUNK_SYSTEM else tagger_beside(model_path)
        self.tagger = TagEstimator(tagger, self.device) if tagger else None
        self._lock = threading.Lock()  # one forward pass at a time: requests of a server share the model

    def embed(self, cqt: np.ndarray) -> np.ndarray:
        with self._lock, torch.inference_mode():
            return embed_tracks(self.model, [cqt], n_patches=self.n_patches, device=self.device)

    def warm_up(self) -> None:
        """A query's whole path but the search, on 2 s of synthesised stereo at 22.05 kHz: decoding,
        resampling, the CQT (librosa's first call costs seconds), the model and the tagger, so that the
        first request pays none of their first-call costs."""
        with tempfile.TemporaryDirectory(prefix="trackrank-warm-up-") as folder:
            path = Path(folder) / "warm-up.wav"
            tone = 0.1 * np.sin(2 * np.pi * 440.0 * np.arange(2 * 22050) / 22050)
            soundfile.write(path, np.stack([tone, tone], axis=1), 22050)
            cqt = query_cqt(path, pad=True, max_duration_s=self.max_duration_s)
        self.embed(cqt)
        if self.tagger is not None:
            with self._lock:
                self.tagger.estimate(cqt, self.n_patches)

    def recommend(self, path: str | Path, *, k: int = 10, pad: bool = False, filters: Filters = NO_FILTERS) -> Found:
        """The ``k`` catalog tracks nearest to the audio file ``path`` that pass ``filters``, with the
        file's estimated tags where there is a tagger; raises :class:`QueryError`.

        Parameters
        ----------
        path : an audio file (wav, flac, ogg, mp3; any rate and channel count), at least one patch long
            (11.87 s) unless ``pad``; only its first ``max_duration_s`` seconds are decoded.
        k : neighbours returned, >= 1 (fewer when fewer tracks pass ``filters``).
        pad : loop a file shorter than one patch instead of refusing it.
        filters : tags the neighbours must have or must not have, and a cap per artist.
        """
        allowed = filters.allowed(self.index)  # an unknown tag is refused before the file is decoded
        cqt = query_cqt(path, pad=pad, max_duration_s=self.max_duration_s)
        vector = self.embed(cqt)
        if not np.isfinite(vector).all():
            raise QueryError(f"{path}: its embedding is not finite (the audio's values are out of range)")
        found = self.index.search(vector, k, allowed=allowed, max_per_artist=filters.max_per_artist)[0]
        if self.tagger is None:
            return explained(found, {}, None)
        with self._lock:
            estimated = self.tagger.estimate(cqt, self.n_patches)
        return explained(found, estimated, "estimated by at_baseline")

    def similar(self, track_id: str, *, k: int = 10, filters: Filters = NO_FILTERS) -> Found:
        """The ``k`` catalog tracks nearest to a catalog track that pass ``filters``, itself left out
        (KeyError: unknown id).

        Parameters
        ----------
        track_id : a track of the index.
        k : neighbours returned, >= 1.
        filters : as :meth:`recommend`'s.
        """
        vector = self.index.vector(track_id)[None, :]
        own = self.index.tracks.tags.iat[self.index.position[track_id]]
        found = self.index.search(
            vector, k, exclude=[track_id], allowed=filters.allowed(self.index), max_per_artist=filters.max_per_artist
        )[0]
        return explained(found, dict.fromkeys(own), "catalog")

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


@dataclass
class Found:
    """A query's neighbours with what explains them: the query's strong tags (tag -> likelihood where
    estimated, None where from the catalog), where those come from, and per neighbour the shared ones."""

    neighbours: list[Neighbour]
    query_tags: dict[str, float | None]
    tags_from: str | None  # "estimated by at_baseline", "catalog", or None (no tagger: no query tags)


def explained(neighbours: list[Neighbour], query_tags: dict[str, float | None], tags_from: str | None) -> Found:
    for neighbour in neighbours:
        neighbour.shared_tags = shared(list(query_tags), neighbour.tags)
    return Found(neighbours, query_tags, tags_from)


def answer(file: str, found: Found) -> dict:
    """One file's answer as JSON-ready data."""
    return {
        "file": file,
        "query_tags": found.query_tags,
        "query_tags_from": found.tags_from,
        "neighbours": [asdict(n) for n in found.neighbours],
    }
