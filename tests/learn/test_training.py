"""Training: batches from the triplet table, a loss that goes down, resume after an interruption."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from builders import tiny_settings as settings
from builders import training_outputs
from trackrank.data.catalog import CatalogFiles
from trackrank.data.feature_cache import CacheFiles, PatchCache, build_cache
from trackrank.data.features import N_BINS, PARQUET_OPTIONS, shard_table
from trackrank.learn.batches import TripletBatches, TripletTable
from trackrank.learn.checkpoints import fingerprint
from trackrank.learn.kinds import kind_of
from trackrank.learn.loading import load_training_data
from trackrank.learn.losses import offline_negatives, triplet_loss
from trackrank.learn.online_mining import RankLookup
from trackrank.learn.settings import TrainSettings
from trackrank.learn.training import train
from trackrank.rank.mining import write_triplets
from trackrank.rank.oracle import write_rankings
from trackrank.rank.similarity import split_oracle

N_TRACKS = 24


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A 24-track catalog run through the real stages: tags, CQT shard, cache, rankings, triplets.

    Half the tracks are 'low' (energy in low bins), half 'high'; the tags say which.
    Every frame of track i also carries i in bin 0, so a patch tells which track it came from.
    """
    root = tmp_path_factory.mktemp("pipeline")
    catalog = root / "catalog"
    catalog.mkdir()
    ids = [f"t{i:02d}" for i in range(N_TRACKS)]
    is_low = np.arange(N_TRACKS) % 2 == 0
    split = ["val" if i % 4 in (1, 2) and i >= 16 else "train" for i in range(N_TRACKS)]
    pd.DataFrame({"track_id": ids, "path": "x", "artist": ids, "split": split, "duration_s": 20.0}).to_parquet(
        catalog / "tracks.parquet"
    )
    pd.DataFrame(
        {"track_id": ids, "low": is_low * 0.9, "high": ~is_low * 0.9, "calm": np.linspace(0, 1, N_TRACKS)}
    ).to_parquet(catalog / "tags.parquet")
    pd.DataFrame({"tag": ["low", "high", "calm"], "category": ["Genre", "Genre", "Mood"], "weight": 1.0}).to_csv(
        catalog / "taxonomy.csv", index=False
    )
    rng = np.random.default_rng(0)
    matrices = []
    for i in range(N_TRACKS):
        cqt = rng.normal(-60, 3, size=(600, N_BINS))
        cqt[:, 10:30] += 40 if is_low[i] else 0
        cqt[:, 60:80] += 0 if is_low[i] else 40
        cqt[:, 0] = i
        matrices.append(cqt.astype(np.float16))
    pq.write_table(shard_table(ids, matrices), root / "shard-000.parquet", **PARQUET_OPTIONS)
    build_cache([root / "shard-000.parquet"], CacheFiles.in_folder(root / "cache"))
    val_ids, val_oracle = split_oracle(CatalogFiles.in_folder(catalog), "val")
    write_rankings(val_oracle, val_ids, output=root / "val.parquet", top_k=10)
    train_ids, train_oracle = split_oracle(CatalogFiles.in_folder(catalog), "train")
    write_triplets(
        train_oracle,
        train_ids,
        output=root / "triplets.parquet",
        strategy="distance",
        n_positives=3,
        n_negatives=6,
        seed=0,
    )
    write_rankings(train_oracle, train_ids, output=root / "train.parquet", top_k=10)
    return root


def data_for(pipeline, s: TrainSettings, similarity: dict | None = None):
    return load_training_data(
        s,
        CacheFiles.in_folder(pipeline / "cache"),
        catalog=CatalogFiles.in_folder(pipeline / "catalog"),
        val_rankings=pipeline / "val.parquet",
        triplets=pipeline / "triplets.parquet" if s.strategy else None,
        train_rankings=pipeline / "train.parquet",
        similarity=similarity,
    )


def test_a_batch_is_one_anchor_one_positive_and_42_of_their_negatives(pipeline):
    cache = PatchCache(CacheFiles.in_folder(pipeline / "cache"))
    table = TripletTable(pipeline / "triplets.parquet", cache)
    triplets = pd.read_parquet(pipeline / "triplets.parquet").astype(str)
    batches = TripletBatches(cache, table, batch_size=42, n_batches=5, seed=0, epoch=1)
    for batch in batches:
        assert batch.shape == (44, N_BINS, 512)
        track = [cache.track_ids[int(patch[0, 0])] for patch in batch]  # bin 0 holds the track number
        rows = triplets[(triplets.anchor == track[0]) & (triplets.positive == track[1])]
        assert len(rows) > 0, "the (anchor, positive) pair comes from the triplet table"
        assert set(track[2:]) <= set(rows.negative)


def test_a_batch_of_several_pairs_holds_each_pair_with_its_own_negatives(pipeline):
    cache = PatchCache(CacheFiles.in_folder(pipeline / "cache"))
    table = TripletTable(pipeline / "triplets.parquet", cache)
    triplets = pd.read_parquet(pipeline / "triplets.parquet").astype(str)
    batches = TripletBatches(cache, table, batch_size=6, n_batches=5, seed=0, epoch=1, pairs=3)
    for batch in batches:
        assert batch.shape == (3 + 3 + 6, N_BINS, 512)
        track = [cache.track_ids[int(patch[0, 0])] for patch in batch]
        for p in range(3):
            rows = triplets[(triplets.anchor == track[p]) & (triplets.positive == track[3 + p])]
            assert set(track[6 + 2 * p : 8 + 2 * p]) <= set(rows.negative), "negatives of that pair, in pair order"


def test_one_pair_per_batch_draws_exactly_the_papers_batch(pipeline):
    """pairs = 1 keeps the draws of the paper's batch (one pair, then its 42 negatives): the same numbers."""
    cache = PatchCache(CacheFiles.in_folder(pipeline / "cache"))
    t = TripletTable(pipeline / "triplets.parquet", cache)
    batch = TripletBatches(cache, t, batch_size=6, n_batches=1, seed=3, epoch=2, pairs=1).batch(0)
    rng = np.random.default_rng([3, 2, 0])
    start, end = t.starts[(pair := int(rng.integers(len(t.starts))))], t.ends[pair]
    negatives = t.negative[start + rng.choice(end - start, 6, replace=end - start < 6)]
    tracks = np.concatenate([[t.anchor[start], t.positive[start]], negatives])
    assert torch.equal(batch, torch.from_numpy(cache.patches(tracks, rng)))


def test_the_offline_loss_pairs_each_negative_with_its_own_anchor_and_positive():
    torch.manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(2 + 2 + 6, 4), dim=1)
    loss, active = offline_negatives("all").loss(embeddings, pairs=2, margin=0.5)
    anchor = embeddings[[0, 0, 0, 1, 1, 1]]
    positive = embeddings[[2, 2, 2, 3, 3, 3]]
    expected = triplet_loss(anchor, positive, embeddings[4:], margin=0.5, reduction="none")
    assert loss.item() == pytest.approx(expected.mean().item())
    assert active == pytest.approx(float((expected > 0).float().mean()))


def test_in_batch_negatives_are_the_patches_each_anchor_ranks_after_its_positive():
    """Every patch of the batch whose track the anchor's ranking puts strictly after the pair's positive is
    a negative of that pair: not the anchor's own track (rank 0), not a track tied with the positive."""
    e = torch.tensor
    anchors = e([[1.0, 0.0], [1.0, 0.0]])
    positives = e([[0.8, 0.6], [0.0, 1.0]])  # d(a, p) = 0.4 and 2.0
    negatives = e([[0.6, 0.8], [-1.0, 0.0]])  # d(a, n) = 0.8 and 4.0
    embeddings = torch.cat([anchors, positives, negatives])
    anchor_ranks = e(
        [
            [0, 5, 2, 0, 7, 9],  # pair 0 (positive rank 2): patch 3 is another patch of its anchor's track
            [6, 0, 3, 1, 1, 4],  # pair 1 (positive rank 1): patch 4 is tied with its positive
        ]
    )
    loss, active = offline_negatives("batch").loss(embeddings, pairs=2, margin=0.5, anchor_ranks=anchor_ranks)
    # pair 0: patches 1, 4, 5 at d 0, 0.8, 4.0 -> 0.9, 0.1, 0; pair 1: patches 0, 2, 5 at d 0, 0.4, 4.0 -> 2.5, 2.1, 0
    assert loss.item() == pytest.approx((0.9 + 0.1 + 2.5 + 2.1) / 6)
    assert active == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="need the anchors' ranks"):
        offline_negatives("batch").loss(embeddings, pairs=2, margin=0.5)


def test_an_in_batch_offline_batch_is_the_same_patches_with_each_anchors_ranks(pipeline):
    cache = PatchCache(CacheFiles.in_folder(pipeline / "cache"))
    table = TripletTable(pipeline / "triplets.parquet", cache)
    tracks = pd.read_parquet(pipeline / "catalog" / "tracks.parquet")
    train_ids = [t for t in tracks.loc[tracks.split == "train", "track_id"]]
    lookup = RankLookup(pipeline / "train.parquet", train_ids)
    ranked = TripletBatches(
        cache,
        table,
        batch_size=6,
        n_batches=3,
        seed=0,
        epoch=1,
        pairs=3,
        ranks=lookup,
        train_tracks=cache.indices(train_ids),
    )
    plain = TripletBatches(cache, table, batch_size=6, n_batches=3, seed=0, epoch=1, pairs=3)
    for (patches, anchor_ranks), alone in zip(ranked, plain):
        assert torch.equal(patches, alone)
        assert anchor_ranks.shape == (3, 12)
        batch_tracks = np.array([train_ids.index(cache.track_ids[int(patch[0, 0])]) for patch in patches])
        assert np.array_equal(anchor_ranks.numpy(), lookup.submatrix(batch_tracks)[:3])
        for p in range(3):  # the table's negatives of each pair are among the batch's negatives of it
            assert (anchor_ranks[p, 6 + 2 * p : 8 + 2 * p] > anchor_ranks[p, 3 + p]).all()


def test_in_batch_negatives_refuse_a_triplet_table_mined_from_another_split(pipeline, tmp_path):
    """Its tracks' in-batch ranks would be read for other tracks: the error names a track it holds."""
    table = pd.read_parquet(pipeline / "triplets.parquet").astype(str)
    table.loc[0, "negative"] = "t17"  # a val track (the fixture's split)
    table.astype("category").to_parquet(tmp_path / "triplets.parquet")
    s = settings(offline_negatives="batch")
    with pytest.raises(ValueError, match="1 track.*outside the train split's rankings, e.g. 't17'"):
        load_training_data(
            s,
            CacheFiles.in_folder(pipeline / "cache"),
            catalog=CatalogFiles.in_folder(pipeline / "catalog"),
            val_rankings=pipeline / "val.parquet",
            triplets=tmp_path / "triplets.parquet",
            train_rankings=pipeline / "train.parquet",
        )
    assert data_for(pipeline, s).ranks is not None  # the table mined from the train split is read


def test_offline_training_with_in_batch_negatives_ranks_the_val_split_better_than_its_untrained_start(
    hidden_pipeline, tmp_path
):
    train_ids, oracle = split_oracle(CatalogFiles.in_folder(hidden_pipeline / "catalog"), "train")
    triplets = tmp_path / "distance.parquet"
    write_triplets(oracle, train_ids, output=triplets, strategy="distance", n_positives=7, n_negatives=12, seed=0)
    untrained, kept, history = train_on_hidden(
        hidden_pipeline, tmp_path, triplets, epochs=8, batch_size=12, offline_pairs=12, offline_negatives="batch"
    )
    assert kept["epoch"] > 1 and kept["val_map@10"] > untrained + 0.1, "a clear gain, not noise"
    assert history["active_fraction"].iloc[1:].between(0, 1).all()


def test_batches_do_not_depend_on_the_number_of_workers(pipeline):
    cache = PatchCache(CacheFiles.in_folder(pipeline / "cache"))
    table = TripletTable(pipeline / "triplets.parquet", cache)
    dataset = TripletBatches(cache, table, batch_size=6, n_batches=4, seed=0, epoch=2)
    alone = list(torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=0))
    shared = list(torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2))
    assert all(torch.equal(a, b) for a, b in zip(alone, shared))


def test_a_short_cpu_training_brings_the_loss_down(pipeline, tmp_path):
    s = settings(epochs=4, batches_per_epoch=6)
    history = train(s, data_for(pipeline, s), **training_outputs(tmp_path))
    trained = history[history["epoch"] > 0]
    assert trained["train_loss"].iloc[-2:].mean() < trained["train_loss"].iloc[:2].mean()
    assert list(history.columns[:5]) == ["epoch", "step", "train_loss", "val_loss", "val_map@5"]
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    best = history.loc[history["val_map@5"].idxmax(), "epoch"]
    assert saved["settings"]["system"] == "tl_distance" and saved["epoch"] == best
    assert history.loc[history["kept"], "epoch"].tolist() == [best]


def test_the_auto_tagger_trains_on_binarised_tags(pipeline, tmp_path):
    """The paper's targets: each tag cut at train.tag_threshold (the fixture's 'calm' runs from 0 to 1)."""
    s = settings(system="at_baseline", lr=1e-2, epochs=3, batches_per_epoch=5)
    data = data_for(pipeline, s)
    tags = pd.read_parquet(pipeline / "catalog" / "tags.parquet").set_index("track_id")
    train_ids = [data.cache.track_ids[i] for i in data.train_tracks]
    np.testing.assert_array_equal(data.train_targets, (tags.loc[train_ids].to_numpy() >= 0.5).astype(np.float32))
    assert set(np.unique(data.train_targets[:, 2])) == {0.0, 1.0}
    history = train(s, data, **training_outputs(tmp_path))
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[1]


def test_an_interrupted_training_resumes_from_its_last_checkpoint(pipeline, tmp_path, monkeypatch):
    s = settings()
    reference = train(s, data_for(pipeline, s), **training_outputs(tmp_path / "straight"))

    import trackrank.learn.training as training

    real_epoch = training._train_epoch

    def killed_at_epoch_3(model, optimizer, scaler, data, settings, epoch, device, **keywords):
        if epoch == 3:
            raise KeyboardInterrupt("killed")
        return real_epoch(model, optimizer, scaler, data, settings, epoch, device, **keywords)

    monkeypatch.setattr(training, "_train_epoch", killed_at_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(s, data_for(pipeline, s), **training_outputs(tmp_path / "resumed"))
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["state"]["step"] == 8
    monkeypatch.setattr(training, "_train_epoch", real_epoch)
    calls = []
    monkeypatch.setattr(training, "_train_epoch", lambda *a, **kw: calls.append(a[5]) or real_epoch(*a, **kw))
    resumed = train(s, data_for(pipeline, s), **training_outputs(tmp_path / "resumed"))
    assert calls == [3]  # only the missing epoch ran
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), reference.drop(columns="seconds"))
    kept = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)["model"]
    expected = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(kept[name], expected[name]) for name in expected)


def assert_started_over(history: pd.DataFrame, fresh: pd.DataFrame, run: Path, fresh_run: Path) -> None:
    """The run in ``run`` (which found an earlier run's last.pt) is the fresh run of ``fresh_run``: one epoch
    after the untrained one, the same history and the same kept weights."""
    assert list(history["epoch"]) == [0, 1]
    pd.testing.assert_frame_equal(history.drop(columns="seconds"), fresh.drop(columns="seconds"))
    trained = torch.load(run / "model.pt", weights_only=True)["model"]
    expected = torch.load(fresh_run / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(trained[name], expected[name]) for name in expected)


def test_a_checkpoint_from_other_settings_is_not_resumed(pipeline, tmp_path):
    s = settings(epochs=1)
    first = train(s, data_for(pipeline, s), **training_outputs(tmp_path / "run"))
    other = settings(epochs=1, lr=1e-4)
    history = train(
        other, data_for(pipeline, other), **training_outputs(tmp_path / "run")
    )  # finds the first run's last.pt
    fresh = train(other, data_for(pipeline, other), **training_outputs(tmp_path / "fresh"))
    assert_started_over(history, fresh, tmp_path / "run", tmp_path / "fresh")
    assert history["train_loss"].iloc[-1] != first["train_loss"].iloc[-1]


def changed_inputs(pipeline, folder: Path, change: str) -> dict | None:
    """A copy of the pipeline's files in ``folder`` (mtimes kept) with one input changed as a rerun upstream
    would change it; returns the S to load them with (another one for ``change == "similarity"``)."""
    shutil.copytree(pipeline, folder)
    catalog = CatalogFiles.in_folder(folder / "catalog")
    if change == "triplets":  # mined anew with another seed
        train_ids, train_oracle = split_oracle(catalog, "train")
        write_triplets(
            train_oracle,
            train_ids,
            output=folder / "triplets.parquet",
            strategy="distance",
            n_positives=3,
            n_negatives=6,
            seed=1,
        )
    elif change == "val rankings":  # ranked by another S
        val_ids, val_oracle = split_oracle(catalog, "val", name="soft_jaccard")
        write_rankings(val_oracle, val_ids, output=folder / "val.parquet", top_k=10)
    elif change == "tags":
        tags = pd.read_parquet(catalog.tags)
        tags["calm"] = tags["calm"].to_numpy()[::-1]
        tags.to_parquet(catalog.tags)
    elif change == "features":  # the cache rebuilt: same size, a new mtime
        data = CacheFiles.in_folder(folder / "cache").data
        os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 10**9))
    return {"name": "soft_jaccard"} if change == "similarity" else None


@pytest.mark.parametrize("change", ["triplets", "val rankings", "tags", "features", "similarity"])
def test_the_data_digest_follows_every_input_a_run_trains_on(pipeline, tmp_path, change):
    s = settings()
    changed_inputs(pipeline, tmp_path / "same", "nothing")
    assert data_for(pipeline, s).digest == data_for(tmp_path / "same", s).digest  # a copy is the same data
    similarity = changed_inputs(pipeline, tmp_path / "other", change)
    assert data_for(tmp_path / "other", s, similarity).digest != data_for(pipeline, s).digest


def test_a_checkpoint_trained_on_other_inputs_is_not_resumed(pipeline, tmp_path):
    """Snakemake reruns a training job after an input changed (here the triplets, mined anew): resuming the
    old run's last.pt would keep weights trained, and an epoch chosen, on the old triplets."""
    s = settings(epochs=1)
    train(s, data_for(pipeline, s), **training_outputs(tmp_path / "run"))
    changed_inputs(pipeline, tmp_path / "inputs", "triplets")
    history = train(s, data_for(tmp_path / "inputs", s), **training_outputs(tmp_path / "run"))  # finds the old last.pt
    fresh = train(s, data_for(tmp_path / "inputs", s), **training_outputs(tmp_path / "fresh"))
    assert_started_over(history, fresh, tmp_path / "run", tmp_path / "fresh")


def test_an_empty_triplet_table_is_refused_with_the_reason(pipeline, tmp_path):
    table = pq.read_table(pipeline / "triplets.parquet").slice(0, 0)
    pq.write_table(table, tmp_path / "empty.parquet")
    with pytest.raises(ValueError, match="empty.parquet is empty: the train split is too small"):
        TripletTable(tmp_path / "empty.parquet", PatchCache(CacheFiles.in_folder(pipeline / "cache")))


@pytest.fixture(scope="module")
def hidden_pipeline(tmp_path_factory):
    """48 tracks whose tags show only as a band (+14 dB in one of 4 places) under louder nuisance:
    a random gain and a random loud band per track, so an untrained network ranks them poorly.
    (At +14 dB the untrained val MAP@10 is 0.23; 48 online steps reach 0.56, the auto-tagger 0.30.)"""
    root = tmp_path_factory.mktemp("hidden")
    catalog = root / "catalog"
    catalog.mkdir()
    n = 48
    ids = [f"h{i:02d}" for i in range(n)]
    group = np.arange(n) % 4
    split = np.where(np.arange(n) < 32, "train", "val")
    pd.DataFrame({"track_id": ids, "path": "x", "artist": ids, "split": split, "duration_s": 20.0}).to_parquet(
        catalog / "tracks.parquet"
    )
    tags = {f"g{g}": (group == g) * 0.9 for g in range(4)}
    pd.DataFrame({"track_id": ids, **tags}).to_parquet(catalog / "tags.parquet")
    pd.DataFrame({"tag": list(tags), "category": "Genre", "weight": 1.0}).to_csv(catalog / "taxonomy.csv", index=False)
    rng = np.random.default_rng(1)
    matrices = []
    for i in range(n):
        cqt = rng.normal(-60, 6, size=(600, N_BINS)) + rng.uniform(-20, 20)
        loud = rng.integers(0, N_BINS - 12)
        cqt[:, loud : loud + 12] += 30
        cqt[:, 8 + 20 * group[i] : 14 + 20 * group[i]] += 14
        matrices.append(cqt.astype(np.float16))
    pq.write_table(shard_table(ids, matrices), root / "shard-000.parquet", **PARQUET_OPTIONS)
    build_cache([root / "shard-000.parquet"], CacheFiles.in_folder(root / "cache"))
    for name in ("train", "val"):
        split_ids, oracle = split_oracle(CatalogFiles.in_folder(catalog), name)
        write_rankings(oracle, split_ids, output=root / f"{name}.parquet", top_k=20)
    return root


def train_on_hidden(hidden_pipeline, tmp_path, triplets=None, **overrides):
    """Train on the 48-track fixture (val MAP@10 on 2 patches, 3 relevant): untrained val MAP, kept row, history."""
    values = dict(epochs=6, batches_per_epoch=8, val_patches=2, k=10, n_relevant=3, lr=3e-3)
    s = settings(**{**values, **overrides})
    data = load_training_data(
        s,
        CacheFiles.in_folder(hidden_pipeline / "cache"),
        catalog=CatalogFiles.in_folder(hidden_pipeline / "catalog"),
        val_rankings=hidden_pipeline / "val.parquet",
        triplets=triplets,
        train_rankings=hidden_pipeline / "train.parquet",
    )
    history = train(s, data, **training_outputs(tmp_path))
    untrained = history.loc[history["epoch"] == 0, "val_map@10"].item()
    return untrained, history.loc[history["kept"]].iloc[0], history


def test_online_training_ranks_the_val_split_better_than_its_untrained_start(hidden_pipeline, tmp_path):
    untrained, kept, history = train_on_hidden(
        hidden_pipeline, tmp_path, system="tl_online", online_tracks=12, online_patches=2, n_positives=7
    )
    assert kept["epoch"] > 0 and kept["val_map@10"] > untrained
    assert kept["val_map@10"] > untrained + 0.1, "a clear gain, not noise"
    assert history["active_fraction"].iloc[1:].between(0, 1).all()


def test_offline_training_on_several_pairs_per_batch_ranks_the_val_split_better_than_its_untrained_start(
    hidden_pipeline, tmp_path
):
    """12 pairs x 1 negative per batch: val MAP@10 0.23 -> 0.72 in 64 steps (measured); the paper's one
    pair x 12 negatives stays at or below 0.21, and so did 12 pairs while tied tracks were negatives."""
    train_ids, oracle = split_oracle(CatalogFiles.in_folder(hidden_pipeline / "catalog"), "train")
    triplets = tmp_path / "distance.parquet"
    write_triplets(oracle, train_ids, output=triplets, strategy="distance", n_positives=7, n_negatives=12, seed=0)
    untrained, kept, _ = train_on_hidden(hidden_pipeline, tmp_path, triplets, epochs=8, batch_size=12, offline_pairs=12)
    assert kept["epoch"] > 1 and kept["val_map@10"] > untrained + 0.1, "a clear gain, not noise"


def test_listwise_training_ranks_the_val_split_better_than_its_untrained_start(hidden_pipeline, tmp_path):
    untrained, kept, history = train_on_hidden(
        hidden_pipeline, tmp_path, system="tl_listwise", online_tracks=12, online_patches=2, n_positives=7
    )
    assert kept["epoch"] > 0 and kept["val_map@10"] > untrained + 0.1, history["val_map@10"].round(3).tolist()
    assert history["val_loss"].iloc[-1] < history["val_loss"].iloc[0], "the val split's listwise loss falls"


def test_listwise_batches_hold_p_tracks_k_patches_and_s_between_their_tracks(pipeline):
    s = settings(system="tl_listwise", online_tracks=6, online_patches=3, n_positives=2)
    data = data_for(pipeline, s)
    from trackrank.learn.training import epoch_batches

    patches, similarity = next(iter(epoch_batches(data, s, epoch=1, device=torch.device("cpu"), kind=kind_of(s))))
    assert patches.shape == (18, N_BINS, 512) and similarity.shape == (18, 18)
    track = [f"t{int(p[0, 0]):02d}" for p in patches]  # bin 0 holds the track number
    ids, oracle = split_oracle(CatalogFiles.in_folder(pipeline / "catalog"), "train")
    row = [ids.index(t) for t in track]
    assert len(set(track)) == 6
    assert np.allclose(similarity.numpy(), np.stack([oracle.scores(r)[row] for r in row]), atol=1e-6)


@pytest.mark.parametrize("mining", ["semi_hard", "hard", "batch_all"])
def test_online_batches_hold_p_tracks_k_patches_and_their_oracle_ranks(pipeline, mining):
    s = settings(system="tl_online", online_tracks=6, online_patches=3, n_positives=2, online_mining=mining)
    data = data_for(pipeline, s)
    from trackrank.learn.training import epoch_batches

    patches, ranks = next(iter(epoch_batches(data, s, epoch=1, device=torch.device("cpu"), kind=kind_of(s))))
    assert patches.shape == (18, N_BINS, 512) and ranks.shape == (18, 18)
    track = [int(p[0, 0]) for p in patches]  # bin 0 holds the track number
    assert len(set(track)) == 6 and all(track[i] == track[i - i % 3] for i in range(18))
    assert (ranks.diagonal() == 0).all() and ((ranks <= 2).sum(1) > 3).any(), "some anchor has a positive"


def fake_validation(monkeypatch, values):
    """Make validate() return ``values`` in turn (epoch 0 first), to test the selection logic alone."""
    import trackrank.learn.training as training

    sequence = iter(values)
    monkeypatch.setattr(training, "validate", lambda *a: {"val_loss": 0.0, "val_map@5": next(sequence)})


def test_the_self_supervised_system_trains_its_whole_budget_and_keeps_its_last_epoch(pipeline, tmp_path, monkeypatch):
    """No tag chooses the epoch of a system that learns without tags, even when val MAP falls."""
    fake_validation(monkeypatch, [0.50, 0.40, 0.35, 0.33, 0.32, 0.31])
    s = settings(system="tl_ssl", epochs=5, patience=2, batch_size=8, batches_per_epoch=1)
    history = train(s, data_for(pipeline, s), **training_outputs(tmp_path))
    assert history["epoch"].tolist() == [0, 1, 2, 3, 4, 5]
    assert history.loc[history["kept"], "epoch"].tolist() == [5]
    kept = torch.load(tmp_path / "model.pt", weights_only=True)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert kept["epoch"] == 5 and all(torch.equal(kept["model"][k], v) for k, v in last["model"].items())


def started_from(system: str, checkpoint, **overrides) -> TrainSettings:
    """An online system of the tiny pipeline whose network starts from a trained ``checkpoint``."""
    return settings(
        system=system, batches_per_epoch=1, online_tracks=6, n_positives=2, init_trunk=str(checkpoint), **overrides
    )


def test_a_run_that_keeps_the_network_it_started_from_says_so(pipeline, tmp_path, monkeypatch, caplog):
    ssl = settings(system="tl_ssl", epochs=1, batches_per_epoch=1, batch_size=8)
    train(ssl, data_for(pipeline, ssl), **training_outputs(tmp_path / "ssl"))
    fake_validation(monkeypatch, [0.50, 0.40, 0.35, 0.33])
    s = started_from("tl_online_from_ssl", tmp_path / "ssl" / "model.pt", epochs=3, patience=1)
    train(s, data_for(pipeline, s), **training_outputs(tmp_path / "tl"))
    assert "FAILED RUN: its best epoch is 0, the network it started from" in caplog.text


def test_a_run_that_never_beats_its_first_epoch_keeps_it_and_warns(pipeline, tmp_path, monkeypatch, caplog):
    fake_validation(monkeypatch, [0.30, 0.40, 0.35, 0.33, 0.32, 0.31])
    s = settings(epochs=5, patience=2)
    history = train(s, data_for(pipeline, s), **training_outputs(tmp_path))
    assert history["epoch"].tolist() == [0, 1, 2, 3]
    assert history.loc[history["kept"], "epoch"].tolist() == [1]
    assert "FAILED RUN" in caplog.text and "its first" in caplog.text


def test_a_train_split_larger_than_budget_tracks_trains_for_more_epochs(pipeline, tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="trackrank.learn.training")
    s = settings(epochs=3, patience=10, batches_per_epoch=1)
    data = data_for(pipeline, s)
    n = len(data.train_tracks)
    fake_validation(monkeypatch, [0.1 + 0.01 * i for i in range(20)])  # still rising: only the budget stops it
    history = train(dataclasses.replace(s, budget_tracks=n), data, **training_outputs(tmp_path / "as_set"))
    assert history["epoch"].max() == 3
    fake_validation(monkeypatch, [0.1 + 0.01 * i for i in range(20)])
    history = train(dataclasses.replace(s, budget_tracks=n // 2), data, **training_outputs(tmp_path / "scaled"))
    assert history["epoch"].max() == round(3 * n / (n // 2)) > 3
    assert f"{n} train tracks, more than train.budget_tracks ({n // 2})" in caplog.text


def test_a_tl_network_can_start_from_the_auto_taggers_trunk(pipeline, tmp_path):
    from trackrank.learn.training import _new_state

    tagger = settings(system="at_baseline", epochs=1, batches_per_epoch=2)
    train(tagger, data_for(pipeline, tagger), **training_outputs(tmp_path / "at"))
    s = started_from("tl_online_from_at", tmp_path / "at" / "model.pt", epochs=1)
    model, _, _ = _new_state(s, data_for(pipeline, s), torch.device("cpu"))
    at = torch.load(tmp_path / "at" / "model.pt", weights_only=True)["model"]
    trunk = {k: v for k, v in at.items() if k.startswith("trunk.")}
    assert trunk and all(torch.equal(model.state_dict()[k], v) for k, v in trunk.items())
    history = train(s, data_for(pipeline, s), **training_outputs(tmp_path / "tl"))
    assert history["epoch"].tolist() == [0, 1]
    first = fingerprint(s)
    torch.save(
        {**torch.load(tmp_path / "at" / "model.pt", weights_only=True), "epoch": 99}, tmp_path / "at" / "model.pt"
    )
    assert fingerprint(s) != first, "a retrained tagger is another starting point: no resume"
    with pytest.raises(ValueError, match="only a TL network shares"):
        autopool = settings(system="tl_autopool_online", n_positives=2, init_trunk=str(tmp_path / "at" / "model.pt"))
        train(autopool, data_for(pipeline, autopool), **training_outputs(tmp_path / "ap"))


def with_test_split(pipeline, folder: Path, test_ids: list[str]) -> Path:
    """The pipeline's catalog copied to ``folder`` with ``test_ids`` moved to a test split."""
    shutil.copytree(pipeline / "catalog", folder)
    tracks = pd.read_parquet(folder / "tracks.parquet")
    tracks.loc[tracks.track_id.isin(test_ids), "split"] = "test"
    tracks.to_parquet(folder / "tracks.parquet")
    return folder


def test_the_self_supervised_system_draws_two_patches_of_each_track_outside_the_test_split(pipeline, tmp_path):

    test_ids = ["t00", "t03", "t17"]
    s = settings(system="tl_ssl", batch_size=8)
    data = load_training_data(
        s,
        CacheFiles.in_folder(pipeline / "cache"),
        catalog=CatalogFiles.in_folder(with_test_split(pipeline, tmp_path / "catalog", test_ids)),
        val_rankings=pipeline / "val.parquet",
    )
    seen = set()
    for patches, ranks in kind_of(s).batches(data, s, epoch=0):
        tracks = np.array([int(patch[0, 0]) for patch in patches])  # bin 0 holds the track number
        assert patches.shape == (8, N_BINS, 512)
        assert (np.bincount(tracks) <= 2).all() and len(set(tracks)) == 4, "4 tracks x 2 patches"
        assert torch.equal(ranks, torch.from_numpy((tracks[:, None] != tracks[None, :]).astype(np.int64)))
        assert not torch.equal(patches[0], patches[1]), "two patches of a track, not one twice"
        seen |= {f"t{t:02d}" for t in tracks}
    assert not seen & set(test_ids), "the test split's audio stays unseen"
    assert any(data.cache.track_ids[t] in seen for t in data.val_tracks), "untagged for it: val audio is used"
    again = next(iter(kind_of(s).batches(data, s, epoch=0)))
    assert torch.equal(again[0], next(iter(kind_of(s).batches(data, s, epoch=0)))[0]), "seeded"


def test_untagged_audio_is_pretrained_on_unless_a_test_artist_made_it(pipeline, tmp_path):
    """A catalog's untagged tracks (split ``untagged``, no tags row) are in the self-supervised pool, but
    not those by an artist of the test split: their sound would be learnt before the test. The tagged
    systems never see them."""
    folder = with_test_split(pipeline, tmp_path / "catalog", ["t00", "t03"])
    tracks = pd.read_parquet(folder / "tracks.parquet")
    untagged = ["t04", "t05", "t06"]
    tracks.loc[tracks.track_id.isin(untagged), "split"] = "untagged"
    tracks.loc[tracks.track_id == "t06", "artist"] = "t03"  # by an artist of the test split
    tracks.to_parquet(folder / "tracks.parquet")
    tags = pd.read_parquet(folder / "tags.parquet")
    tags[~tags.track_id.isin(untagged)].to_parquet(folder / "tags.parquet")

    def loaded(system: str):
        data = load_training_data(
            settings(system=system),
            CacheFiles.in_folder(pipeline / "cache"),
            catalog=CatalogFiles.in_folder(folder),
            val_rankings=pipeline / "val.parquet",
        )
        return data, lambda positions: {data.cache.track_ids[p] for p in positions}

    ssl, ids = loaded("tl_ssl")
    assert {"t04", "t05"} <= ids(ssl.audio_tracks)
    assert not ids(ssl.audio_tracks) & {"t00", "t03", "t06"}
    tagger, ids = loaded("at_baseline")
    assert not ids(tagger.train_tracks) & set(untagged)
    assert len(tagger.train_targets) == len(tagger.train_tracks)


def test_a_from_ssl_system_starts_from_the_whole_self_supervised_network(pipeline, tmp_path):
    from trackrank.learn.settings import starts_from
    from trackrank.learn.training import _new_state

    ssl = settings(system="tl_ssl", epochs=2, batches_per_epoch=3, batch_size=8)
    train(ssl, data_for(pipeline, ssl), **training_outputs(tmp_path / "ssl"))
    assert starts_from("tl_online_from_ssl") == "tl_ssl"
    s = settings(
        system="tl_online_from_ssl", online_tracks=6, n_positives=2, init_trunk=str(tmp_path / "ssl" / "model.pt")
    )
    model, _, _ = _new_state(s, data_for(pipeline, s), torch.device("cpu"))
    trained = torch.load(tmp_path / "ssl" / "model.pt", weights_only=True)["model"]
    assert trained.keys() == model.state_dict().keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in trained.items()), "trunk and head"
    with pytest.raises(ValueError, match="not a network of its architecture"):
        autopool = settings(system="tl_autopool_online_from_ssl", n_positives=2, init_trunk=s.init_trunk)
        _new_state(autopool, data_for(pipeline, autopool), torch.device("cpu"))


def test_self_supervised_training_brings_two_patches_of_a_track_together(pipeline, tmp_path):
    """Each patch of the pipeline carries its track's number: the audio alone says which patches pair.
    Against the same run at lr 0, since BatchNorm's statistics follow the data without a gradient step."""
    from trackrank.learn.embedding import load_model

    s = settings(system="tl_ssl", epochs=4, batches_per_epoch=6, batch_size=12)
    data = data_for(pipeline, s)

    def same_track_margin(run: TrainSettings, folder: Path) -> float:
        """Mean distance between patches of two tracks minus that between two patches of one track."""
        train(run, data, **training_outputs(folder))
        model, _ = load_model(folder / "model.pt")
        # the pipeline's val MAP is near 1 at the start, so the weights of the last epoch, not the kept ones
        model.load_state_dict(torch.load(folder / "last.pt", weights_only=True)["model"])
        tracks = np.repeat(data.train_tracks, 2)
        with torch.no_grad():
            embeddings = model(torch.from_numpy(data.cache.patches(tracks, np.random.default_rng(7))).float())
        distances = torch.cdist(embeddings, embeddings)
        same = torch.from_numpy(tracks[:, None] == tracks[None, :]) & ~torch.eye(len(tracks), dtype=torch.bool)
        return float(distances[~same].mean() - distances[same].mean())

    learned = same_track_margin(s, tmp_path / "learned")
    still = same_track_margin(dataclasses.replace(s, lr=0.0), tmp_path / "lr0")
    assert learned > still + 0.1


def test_validation_ranks_by_the_configured_similarity(pipeline):
    s = settings(system="at_baseline")
    default = load_training_data(
        s,
        CacheFiles.in_folder(pipeline / "cache"),
        catalog=CatalogFiles.in_folder(pipeline / "catalog"),
        val_rankings=pipeline / "val.parquet",
        triplets=None,
    )
    configured = load_training_data(
        s,
        CacheFiles.in_folder(pipeline / "cache"),
        catalog=CatalogFiles.in_folder(pipeline / "catalog"),
        val_rankings=pipeline / "val.parquet",
        triplets=None,
        similarity={"name": "soft_jaccard", "function": None},
    )
    assert default.val_oracle.name == "category_geometric"
    assert configured.val_oracle.name == "soft_jaccard"


def test_a_finished_run_rerun_without_its_model_writes_the_kept_weights_again(pipeline, tmp_path):
    s = settings(epochs=2)
    train(s, data_for(pipeline, s), **training_outputs(tmp_path))
    kept = torch.load(tmp_path / "model.pt", weights_only=True)
    (tmp_path / "model.pt").unlink()  # what Snakemake does to a job's outputs before it reruns it
    (tmp_path / "history.csv").unlink()
    history = train(s, data_for(pipeline, s), **training_outputs(tmp_path))
    again = torch.load(tmp_path / "model.pt", weights_only=True)
    assert again["epoch"] == kept["epoch"] == history.loc[history["kept"], "epoch"].item()
    assert all(torch.equal(again["model"][k], v) for k, v in kept["model"].items())


#: Val MAP of a network that learns slowly on a small, noisy val split: +0.01 an epoch under ±0.03 of noise
#: (epoch 0 first). Epoch 2 is a lucky one that the next three epochs do not beat.
NOISY_RISE = [0.10, 0.12, 0.17, 0.12, 0.13, 0.15, 0.18, 0.16, 0.19, 0.21, 0.18, 0.22, 0.20]
#: A real plateau: a rise, then the same level with noise for good.
PLATEAU = [0.10, 0.14, 0.18, 0.22, 0.24, 0.23, 0.25, 0.24, 0.23, 0.25, 0.24, 0.23, 0.24, 0.25, 0.23, 0.24]


def test_one_lucky_epoch_stops_the_old_rule_but_not_the_smoothed_one(pipeline, tmp_path, monkeypatch):
    fake_validation(monkeypatch, NOISY_RISE)
    raw = settings(epochs=12, patience=3, batches_per_epoch=1)  # the old default: each epoch alone, patience 3
    history = train(raw, data_for(pipeline, raw), **training_outputs(tmp_path / "raw"))
    assert history["epoch"].max() == 5 and history.loc[history["kept"], "epoch"].tolist() == [2]
    fake_validation(monkeypatch, NOISY_RISE)
    smooth = settings(epochs=12, patience=5, batches_per_epoch=1, smoothing=3)  # the default
    history = train(smooth, data_for(pipeline, smooth), **training_outputs(tmp_path / "smooth"))
    assert history["epoch"].max() == 12, "the trend goes on: so does training"
    assert history.loc[history["kept"], "epoch"].tolist() == [11]  # the last of the best 3-epoch window
    assert history.loc[history["epoch"] == 11, "val_map@5_smoothed"].item() == pytest.approx((0.21 + 0.18 + 0.22) / 3)


def test_a_real_plateau_stops_the_smoothed_rule(pipeline, tmp_path, monkeypatch):
    fake_validation(monkeypatch, PLATEAU)
    s = settings(epochs=15, patience=4, batches_per_epoch=1, smoothing=3)
    history = train(s, data_for(pipeline, s), **training_outputs(tmp_path))
    assert history["epoch"].max() < 15, "a flat curve stops before the budget"
    assert 4 <= history.loc[history["kept"], "epoch"].item() <= 8


@pytest.mark.parametrize("system", ["at_baseline", "tl_distance", "tl_online"])
def test_training_batches_are_augmented_when_the_settings_ask_and_only_then(pipeline, system):
    from trackrank.learn.training import epoch_batches

    def first_patches(**augment):
        s = settings(system=system, online_tracks=6, n_positives=2, **augment)
        batches = epoch_batches(data_for(pipeline, s), s, epoch=1, device=torch.device("cpu"), kind=kind_of(s))
        batch = next(iter(batches))
        return batch if system == "tl_distance" else batch[0]

    plain, again = first_patches(), first_patches()
    gained = first_patches(aug_gain_db=6.0)
    assert torch.equal(plain, again)
    offsets = (gained - plain)[:, 1:, :]  # bin 0 (the track number) moves with the rest
    assert offsets.abs().max() > 0.1 and offsets.abs().max() <= 6.0
    assert torch.allclose(offsets, offsets[:, :1, :1].expand_as(offsets), atol=1e-4), "one gain per patch"


#: Music's curve: a fair untrained network, then worse epochs (the first six as tl_distance measured them on
#: the scores catalog), then learning.
DIP_THEN_RISE = [0.26, 0.221, 0.226, 0.242, 0.223, 0.242, 0.257, 0.26, 0.27, 0.28, 0.285, 0.28, 0.29, 0.29, 0.28, 0.285]


def test_a_strong_untrained_start_does_not_stop_training_before_it_learns(pipeline, tmp_path, monkeypatch, caplog):
    fake_validation(monkeypatch, DIP_THEN_RISE)
    s = settings(epochs=15, patience=5, batches_per_epoch=1, smoothing=3)
    history = train(s, data_for(pipeline, s), **training_outputs(tmp_path))
    assert history["epoch"].max() == 15, "the dip below epoch 0 is not a plateau"
    assert history.loc[history["kept"], "epoch"].item() >= 12
    assert "FAILED RUN" not in caplog.text


#: tl_distance, seed 2, on the scores catalog: a lucky first epoch that the next five means of 2-3 epochs do
#: not beat (the old rule stopped it at epoch 6, keeping epoch 1), then the curve of a run that learns.
LUCKY_FIRST = [0.215, 0.245, 0.218, 0.216, 0.264, 0.220, 0.242, 0.25, 0.26, 0.27, 0.28, 0.27, 0.28, 0.29]


def test_a_lucky_first_epoch_neither_stops_nor_is_kept_before_a_full_window(pipeline, tmp_path, monkeypatch):
    fake_validation(monkeypatch, LUCKY_FIRST)
    s = settings(epochs=13, patience=5, batches_per_epoch=1, smoothing=3)
    history = train(s, data_for(pipeline, s), **training_outputs(tmp_path))
    assert history["epoch"].max() == 13, "epochs 1 and 2 are windows of 1 and 2 validations: they do not count"
    assert history.loc[history["kept"], "epoch"].item() >= 11


def test_the_smoothed_value_of_a_trained_epoch_never_averages_in_the_untrained_network():
    from trackrank.learn.early_stopping import smoothed

    history = [{"epoch": e, "m": v} for e, v in enumerate([0.9, 0.1, 0.2, 0.3, 0.4])]
    assert smoothed(history[:1], "m", window=3) == 0.9
    assert smoothed(history[:2], "m", window=3) == pytest.approx(0.1)
    assert smoothed(history[:3], "m", window=3) == pytest.approx(0.15)
    assert smoothed(history, "m", window=3) == pytest.approx(0.3)


def test_a_run_decides_its_systems_kind_once(pipeline, tmp_path, monkeypatch):
    """The kind (batches, loss, validation ranking) is chosen at the start of train() and passed to every step."""
    import trackrank.learn.kinds as kinds
    import trackrank.learn.training as training

    asked = []
    monkeypatch.setattr(training, "kind_of", lambda s: asked.append(s.system) or kinds.kind_of(s))
    s = settings(epochs=2, batches_per_epoch=2)
    train(s, data_for(pipeline, s), **training_outputs(tmp_path))
    assert asked == ["tl_distance"]


@pytest.mark.parametrize("negatives", ["all", "batch"])
def test_an_offline_kind_holds_its_choice_of_negatives_which_says_what_it_reads(negatives):
    """train.offline_negatives is one object (trackrank.learn.losses.OFFLINE_NEGATIVES) that the offline kind
    holds: it computes the loss and says whether the train split's rankings are read, as the workflow's
    inputs (TrainSettings.ranks_batches) do."""
    from trackrank.learn.losses import OFFLINE_NEGATIVES

    s = settings(offline_pairs=2, offline_negatives=negatives)
    kind = kind_of(s)
    assert kind.negatives is OFFLINE_NEGATIVES[negatives]
    assert kind.in_batch == s.ranks_batches == (negatives == "batch")
    assert kind.inputs("triplets", "rankings") == (["triplets", "rankings"] if negatives == "batch" else ["triplets"])


#: Tiny runs' histories (train loss, val loss, share of active triplets per epoch) on one torch thread, as the
#: trainer gave them before it was split into named steps (issue 43): the restructured one gives them bit for
#: bit. Compared to 1e-6: another CPU's kernels may sum in another order in the last bits, and any change of
#: batch, loss, rate or selection moves them far more.
PINNED_HISTORIES = {
    "batch negatives": (
        dict(offline_pairs=2, offline_negatives="batch"),
        [0.29740310460329056, 0.4003351218998432, 0.2240578681230545],
        [0.4900848865509033, 0.42566514015197754, 0.2915582060813904, 0.24258428812026978],
        [0.6490384638309479, 0.8333333358168602, 0.44981060922145844],
    ),
    "tagger": (  # pinned at 81cd0c5 with tag_targets: binary, the paper's, which it now always is
        dict(system="at_baseline", lr=1e-2, epochs=2, batches_per_epoch=3),
        [0.7601301670074463, 0.697654147942861],
        [1.1229791641235352, 0.4563962519168854, 0.42261770367622375],
        None,
    ),
    "online": (
        dict(system="tl_online", online_tracks=6, n_positives=3),
        [0.2881590537726879, 0.2298903912305832, 0.28046461194753647],
        [0.4900848865509033, 0.4587269127368927, 0.3563896119594574, 0.2466895878314972],
        [0.5333333333333333, 0.3538567887109077, 0.3306547619047619],
    ),
}


@pytest.mark.parametrize("run", PINNED_HISTORIES)
def test_a_tiny_runs_history_is_as_pinned(pipeline, tmp_path, run):
    overrides, train_loss, val_loss, active = PINNED_HISTORIES[run]
    s = settings(**overrides)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: one order of every float sum, whatever the machine's cores
    try:
        history = train(s, data_for(pipeline, s), **training_outputs(tmp_path))
    finally:
        torch.set_num_threads(threads)
    assert history["train_loss"].iloc[1:].tolist() == pytest.approx(train_loss, rel=1e-6)
    assert history["val_loss"].tolist() == pytest.approx(val_loss, rel=1e-6)
    if active is not None:
        assert history["active_fraction"].iloc[1:].tolist() == pytest.approx(active, rel=1e-6)
