"""Identities of files by their bytes, wherever they were copied to.

Why one place: an index names the model it was built with, a TL network's resume key names the tagger
checkpoint its trunk starts from, and a training run's resume key names the tables it trains on; all
three must hash a file the same way, in blocks, so that a large triplet table or checkpoint is never
read into memory whole.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
