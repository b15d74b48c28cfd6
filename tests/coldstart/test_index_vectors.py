"""The index embeds a catalog file exactly as a query of that file is embedded, on tracks long enough
for the patch placement to matter (several patches each), without running the workflow."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trackrank.coldstart.recommend import Recommender, query_cqt
from trackrank.data.features import PATCH_FRAMES, even_patches


def test_even_patches_start_at_the_start_end_at_the_end_and_spread_evenly_between():
    n_frames = 10 * PATCH_FRAMES
    cqt = np.repeat(np.arange(n_frames, dtype=np.float32)[:, None], 96, axis=1)  # each frame holds its index
    patches = even_patches(cqt, 4)
    first_frames = patches[:, 0, 0].tolist()
    assert first_frames == [0, 1536, 3072, 4608]  # (n_frames - PATCH_FRAMES) / 3 apart
    assert patches[-1, 0, -1] == n_frames - 1
    assert all(np.array_equal(p[0], np.arange(s, s + PATCH_FRAMES)) for p, s in zip(patches, first_frames))


def test_a_catalog_file_queried_embeds_to_its_own_indexed_vector(small_index):
    folder, paths = small_index
    recommender = Recommender(folder, device="cpu")
    assert recommender.n_patches == 5  # the index's own patch count, not the CLI's default
    indexed = pd.read_parquet(folder / "tracks.parquet").set_index("track_id")
    for i, path in enumerate(paths):
        queried = recommender.embed(query_cqt(path))[0]
        np.testing.assert_allclose(queried, indexed.loc[f"t{i}", "embedding"], atol=1e-5)
        assert recommender.recommend(path, k=1)[0].track_id == f"t{i}"
