"""What an index's vectors depend on: the embedding model and the feature parameters.

Why: a query embedded with another model, or from other features, lands elsewhere in the space; an index
records both (``identity.json``) so that such a query is refused instead of answered with noise.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from trackrank.data.audio import SAMPLE_RATE
from trackrank.data.features import AMIN, BINS_PER_OCTAVE, FMIN, HOP_LENGTH, N_BINS, PATCH_FRAMES
from trackrank.digests import file_sha256
from trackrank.learn.checkpoints import load_checkpoint
from trackrank.learn.settings import embedding_system

#: What a CQT patch depends on; an index built with other values cannot take this code's queries.
FEATURES = {
    "sample_rate": SAMPLE_RATE,
    "n_bins": N_BINS,
    "bins_per_octave": BINS_PER_OCTAVE,
    "fmin": FMIN,
    "hop_length": HOP_LENGTH,
    "patch_frames": PATCH_FRAMES,
    "amin": AMIN,
    "dtype": "float16",
}


def model_identity(model_path: str | Path, checkpoint: dict, system: str | None = None) -> dict:
    """The embedding's system (``system``, else the checkpoint's), checkpoint hash and settings fingerprint."""
    settings = checkpoint["settings"]
    fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {
        "system": system or settings["system"],
        "model_sha256": file_sha256(model_path),
        "settings_fingerprint": fingerprint,
    }


def trained_embedding(model_path: str | Path) -> str:
    """The system name of the embedding a trained model.pt gives (``at_trunk`` for the auto-tagger): the
    name of its index folder."""
    return embedding_system(load_checkpoint(model_path, keys=("settings",))["settings"]["system"])
