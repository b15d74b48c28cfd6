"""The untrained reference: the TL network a training run starts from, used as an embedding."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from trackrank.data.feature_cache import CacheFiles, PatchCache
from trackrank.evaluate.references.untrained import write_untrained_embeddings
from trackrank.learn.embedding import track_outputs
from trackrank.learn.embedding_table import read_embeddings
from trackrank.learn.settings import TrainSettings
from trackrank.learn.training import _new_state

WIDTH = 0.03125


@pytest.mark.parametrize("seed", [0, 3])
def test_untrained_is_the_network_a_tl_run_of_that_seed_starts_from(tmp_path, cache_dir, seed):
    write_untrained_embeddings(
        CacheFiles.in_folder(cache_dir),
        ["c", "missing", "a"],
        output=tmp_path / "untrained.parquet",
        width=WIDTH,
        dim=16,
        n_patches=3,
        seed=seed,
        device="cpu",
    )
    ids, matrix, column = read_embeddings(tmp_path / "untrained.parquet")
    assert ids == ["c", "a"] and column == "embedding" and matrix.shape == (2, 16)
    torch.manual_seed(seed + 100)  # whatever the global generator held before, the run seeds its own
    settings = TrainSettings(system="tl_online", width=WIDTH, dim=16, seed=seed)
    started, _, _ = _new_state(settings, SimpleNamespace(tag_names=["x"] * 5), torch.device("cpu"))
    cache = PatchCache(CacheFiles.in_folder(cache_dir))
    expected = track_outputs(started, cache, cache.indices(["c", "a"]), n_patches=3, seed=seed)
    np.testing.assert_allclose(matrix, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1) <= 1 + 1e-5, True)


def test_untrained_networks_of_two_seeds_differ(tmp_path, cache_dir):
    matrices = []
    for seed in (0, 1):
        output = tmp_path / f"{seed}.parquet"
        write_untrained_embeddings(
            CacheFiles.in_folder(cache_dir), ["a", "b"], output=output, width=WIDTH, dim=16, n_patches=2, seed=seed
        )
        matrices.append(read_embeddings(output)[1])
    assert not np.allclose(*matrices)
