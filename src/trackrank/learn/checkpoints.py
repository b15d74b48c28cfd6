"""Checkpoints: loading them safely, and resuming a run from its ``last.pt`` when its settings
(:func:`fingerprint`) and inputs are the same.

Why: a ``.pt`` file is a pickle, and unpickling runs code. trackrank loads every checkpoint with
``weights_only=True`` (PyTorch's restricted unpickler), so a file carrying any other object is
refused before anything in it runs; this module turns PyTorch's refusals and a truncated file into
one error that names the file and says why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import pickle
import zipfile
from pathlib import Path

import torch

from trackrank.atomic import atomic_output
from trackrank.digests import file_sha256
from trackrank.errors import CheckpointError
from trackrank.learn.settings import RETIRED, TrainSettings, without_as_before

log = logging.getLogger(__name__)


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu", keys: tuple[str, ...] = ()) -> dict:
    """The checkpoint at ``path`` as plain data, with every key of ``keys`` present.

    Raises :class:`CheckpointError` for a file that holds Python objects beyond tensors and plain
    data (tampered with, or not written by trackrank), that is not a complete checkpoint, or that
    lacks one of ``keys``.
    """
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path}: refused: it holds Python objects beyond tensors and plain data, so it was not written by "
            f"trackrank or was tampered with; nothing in it was run ({first})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path}: not a complete checkpoint (truncated or corrupt): {error}") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not a trackrank checkpoint (a {type(checkpoint).__name__}, not a dict)")
    missing = [key for key in keys if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: not a trackrank checkpoint: no {', '.join(missing)}")
    return checkpoint


def fingerprint(settings: TrainSettings) -> str:
    """Hash of the settings a checkpoint depends on (not the stopping rule's, ``epochs`` among them, workers,
    device): a longer budget continues a run. With ``init_trunk``, of that checkpoint's bytes rather than its
    path, so a retrained tagger restarts. An option at the value that trains as before it existed
    (``TRAINS_AS_BEFORE``) is left out, so adding it restarts no run; an option removed since (``RETIRED``)
    is hashed at the value every run had, so removing it restarts none."""
    stopping = ("epochs", "patience", "budget_tracks", "workers", "device")
    kept = {k: v for k, v in without_as_before(dataclasses.asdict(settings)).items() if k not in stopping}
    kept.update(RETIRED)  # as every run had them: the fingerprints of before their removal
    if settings.init_trunk:
        kept["init_trunk"] = file_sha256(settings.init_trunk)
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def resume(last: Path, states: dict, *, system: str, fingerprint: str, digest: str, device) -> dict | None:
    """Load ``last`` (``last.pt``) into ``states`` (the run's model, optimiser, scaler and weight average
    or None, by key) and torch's RNG, and return the run's state, when it was written by these settings
    (``fingerprint``) on these inputs (``digest``, ``TrainingData.digest``); else None, logged why.

    Why both: a rerun because an input changed (new triplets, rankings, tags, S or features) or a setting
    changed must start over, not keep weights trained and selected on the old ones."""
    if not last.exists():
        return None
    checkpoint = load_checkpoint(last, device=device)
    same_data = checkpoint.get("data") == digest
    if checkpoint.get("fingerprint") == fingerprint and same_data and "kept_checkpoint" in checkpoint["state"]:
        for key, target in states.items():
            if target is not None:
                target.load_state_dict(checkpoint[key])
        torch.set_rng_state(checkpoint["torch_rng"])
        state = checkpoint["state"]
        log.info("resuming %s from epoch %d (step %d)", system, state["epoch"], state["step"])
        return state
    if not same_data:
        log.info("%s was written for other inputs (triplets, rankings, tags, S or features): starting over", last)
    else:
        log.info("%s exists but was written with other settings (or by an older trackrank): starting over", last)
    return None


def save_last(last: Path, states: dict, *, state: dict, fingerprint: str, digest: str) -> None:
    """Write ``last`` (atomically): what :func:`resume` needs to go on from this epoch."""
    with atomic_output(last) as tmp:
        torch.save(
            {
                **{key: target.state_dict() if target is not None else None for key, target in states.items()},
                "torch_rng": torch.get_rng_state(),
                "state": state,
                "fingerprint": fingerprint,
                "data": digest,
            },
            tmp,
        )
