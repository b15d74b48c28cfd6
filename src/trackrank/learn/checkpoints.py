"""Loading checkpoints safely: tensors and plain data only, or a clear refusal.

Why: a ``.pt`` file is a pickle, and unpickling runs code. trackrank loads every checkpoint with
``weights_only=True`` (PyTorch's restricted unpickler), so a file carrying any other object is
refused before anything in it runs; this module turns PyTorch's refusals and a truncated file into
one error that names the file and says why.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from trackrank.errors import CheckpointError


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
