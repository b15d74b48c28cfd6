"""The at_trunk reference: the auto-tagger's flattened trunk, averaged over the evaluation's patches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from builders import checkpoint
from trackrank.data.feature_cache import CacheFiles, PatchCache
from trackrank.evaluate.references.at_trunk import write_trunk_embeddings
from trackrank.learn.embedding_table import read_embeddings
from trackrank.learn.models import AutoTagger, TripletNet

WIDTH = 0.03125


def test_at_trunk_embeds_by_the_trunk_output_over_the_evaluation_patches(tmp_path, cache_dir):
    torch.manual_seed(0)
    tagger = AutoTagger(n_tags=7, width=WIDTH).eval()
    torch.save(checkpoint(tagger, "at_baseline", tags=[f"tag{i}" for i in range(7)]), tmp_path / "model.pt")
    write_trunk_embeddings(
        tmp_path / "model.pt",
        CacheFiles.in_folder(cache_dir),
        track_ids=["c", "missing", "a"],
        output=tmp_path / "at_trunk.parquet",
        n_patches=3,
        seed=4,
        device="cpu",
    )
    ids, matrix, column = read_embeddings(tmp_path / "at_trunk.parquet")
    assert ids == ["c", "a"] and column == "embedding"
    assert matrix.shape == (2, tagger.trunk.out_channels) and tagger.trunk.out_channels == 64
    # the same seeded patches as every system's evaluation (trackrank.learn.embedding.track_outputs)
    cache = PatchCache(CacheFiles.in_folder(cache_dir))
    patches = cache.patches(np.repeat(cache.indices(["c", "a"]), 3), np.random.default_rng([4, 11]))
    with torch.no_grad():
        expected = tagger.embedding(torch.from_numpy(patches)).numpy().reshape(2, 3, -1).mean(axis=1)
    np.testing.assert_allclose(matrix, expected, rtol=1e-5, atol=1e-6)


def test_at_trunk_refuses_a_model_that_is_not_the_auto_tagger(tmp_path, cache_dir):
    torch.save(checkpoint(TripletNet(dim=16, width=WIDTH), "tl_distance"), tmp_path / "model.pt")
    with pytest.raises(ValueError, match="tl_distance.*not the auto-tagger"):
        write_trunk_embeddings(
            tmp_path / "model.pt",
            CacheFiles.in_folder(cache_dir),
            track_ids=["a"],
            output=tmp_path / "out.parquet",
            device="cpu",
        )
