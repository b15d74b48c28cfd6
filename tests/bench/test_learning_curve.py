"""bench/learning_curve.py trains a system that starts from another's network after it, at the same size."""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))  # learning_curve imports learning beside it
spec = importlib.util.spec_from_file_location("learning_curve", REPO / "bench" / "learning_curve.py")
learning_curve = importlib.util.module_from_spec(spec)
spec.loader.exec_module(learning_curve)


def test_a_system_from_the_tagger_runs_after_the_tagger_of_its_size():
    """tl_listwise_from_at starts from the at_baseline trained on the same subset, so they share one job,
    the tagger first; the other systems run alone."""
    chains = learning_curve.size_chains(["at_baseline", "tl_online", "tl_listwise_from_at"])
    assert chains == [["at_baseline", "tl_listwise_from_at"], ["tl_online"]]


def test_a_system_from_the_tagger_without_the_tagger_is_refused():
    with pytest.raises(SystemExit, match="tl_online_from_at starts from at_baseline"):
        learning_curve.size_chains(["tl_online_from_at", "at_baseline"])
