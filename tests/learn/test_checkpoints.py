"""Checkpoints load as tensors and plain data only; anything else is refused, naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from builders import checkpoint
from trackrank.errors import CheckpointError
from trackrank.learn.embedding import load_model
from trackrank.learn.models import TripletNet

WIDTH = 1 / 16


class Payload:
    """Runs code when unpickled: what an attacker would slip into a shared checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_trackrank_checkpoint_loads(tmp_path):
    torch.save(checkpoint(TripletNet(dim=16, width=WIDTH), width=WIDTH), tmp_path / "model.pt")
    model, loaded = load_model(tmp_path / "model.pt")
    assert isinstance(model, TripletNet) and loaded["settings"]["system"] == "tl_online"


def test_a_checkpoint_carrying_a_python_object_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "the payload ran"
    torch.save(
        {**checkpoint(TripletNet(dim=16, width=WIDTH), width=WIDTH), "extra": Payload(marker)}, tmp_path / "model.pt"
    )
    with pytest.raises(CheckpointError, match=r"model\.pt: refused: it holds Python objects"):
        load_model(tmp_path / "model.pt")
    assert not marker.exists()


def test_tampered_weights_or_settings_are_refused_naming_the_file(tmp_path):
    tampered = checkpoint(TripletNet(dim=16, width=WIDTH), width=WIDTH)
    tampered["model"]["output.weight"] = torch.zeros(3, 3)
    torch.save(tampered, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match=r"weights\.pt: its weights and settings do not make"):
        load_model(tmp_path / "weights.pt")
    torch.save(checkpoint(TripletNet(dim=16, width=WIDTH), width=WIDTH, system="rm -rf /"), tmp_path / "settings.pt")
    with pytest.raises(CheckpointError, match=r"settings\.pt: .*unknown system"):
        load_model(tmp_path / "settings.pt")


def test_a_truncated_or_foreign_file_is_refused_naming_it(tmp_path):
    torch.save(checkpoint(TripletNet(dim=16, width=WIDTH), width=WIDTH), tmp_path / "model.pt")
    data = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt: not a complete checkpoint"):
        load_model(tmp_path / "cut.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other\.pt: not a trackrank checkpoint: no model, settings, tags"):
        load_model(tmp_path / "other.pt")
