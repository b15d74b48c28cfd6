"""The mini-batches of the three kinds of system (paper §3.4), each drawn from its own random stream.

An offline TL mini-batch holds ``offline_pairs`` (anchor, positive) pairs of the triplet table, each
with ``batch_size / offline_pairs`` of its own negatives (the paper's, ``offline_pairs = 1``: 42
triplets sharing one anchor track and one positive track); one random 96 x 512 patch of each of those
tracks goes through the network. An online TL batch holds P train tracks x K patches and their
in-batch oracle ranks (:mod:`trackrank.learn.online_mining`). The auto-tagger's mini-batch is 42
random patches of random train tracks with their binarised tags.

Batch b of an epoch is drawn from its own random stream (seed, epoch, b), so the batches are the same
whatever the number of DataLoader workers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from trackrank.data.feature_cache import PatchCache
from trackrank.errors import ConfigError
from trackrank.learn.augment import Augmentation, augment
from trackrank.learn.listwise import BatchSimilarity
from trackrank.learn.online_mining import RankLookup, sample_batch_tracks
from trackrank.rank.parts import TableParts, as_paths, read_parts


class TripletTable:
    """The triplet table as cache positions, grouped by (anchor, positive)."""

    def __init__(self, parts: TableParts, cache: PatchCache):
        table = read_parts(parts)
        if table.num_rows == 0:
            raise ValueError(
                f"triplet table {', '.join(map(str, as_paths(parts)))} is empty: the train split is too small to mine "
                "(an anchor needs at least 2 other tracks)"
            )
        columns = {}
        for name in ("anchor", "positive", "negative"):
            column = table.column(name).combine_chunks()
            # dictionary-encoded ids: map the (small) dictionary once, then index
            dictionary = cache.indices(column.dictionary.to_pylist())
            columns[name] = dictionary[column.indices.to_numpy()]
        self.anchor, self.positive, self.negative = columns["anchor"], columns["positive"], columns["negative"]
        change = np.flatnonzero((np.diff(self.anchor) != 0) | (np.diff(self.positive) != 0)) + 1
        self.starts = np.concatenate([[0], change])
        self.ends = np.concatenate([change, [len(self.anchor)]])

    def __len__(self) -> int:
        return len(self.anchor)


class SeededBatches(IterableDataset):
    """Batches 0..n_batches-1, batch b built from its own random stream (seed, epoch, b).

    DataLoader workers share the batches round-robin (worker w builds b = w, w + W, ...),
    the order in which the DataLoader yields them, so the sequence is the same for any W.
    """

    n_batches: int
    augmentation: Augmentation = Augmentation()

    def batch(self, b: int):
        raise NotImplementedError

    def draw_patches(self, cache: PatchCache, tracks: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """One random patch of each of ``tracks``, augmented (:mod:`trackrank.learn.augment`) from the same stream."""
        return torch.from_numpy(augment(cache.patches(tracks, rng), rng, self.augmentation))

    def __iter__(self):
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        for b in range(worker, self.n_batches, n_workers):
            yield self.batch(b)


class TripletBatches(SeededBatches):
    """Batches of offline triplets: ``pairs`` (anchor, positive) pairs of the table, each with
    ``batch_size // pairs`` of its negatives, one random patch per track.

    Yields a (2 * pairs + pairs * negatives, 96, 512) tensor: the pairs' anchors, then their
    positives, then each pair's negatives in pair order. ``pairs = 1`` is the paper's batch
    (one anchor, one positive, 42 negatives: 44 patches). Given the train split's ``ranks`` (over
    ``train_tracks``, their cache positions), it yields (patches, anchor ranks (pairs, batch)): the rank of
    each patch's track in each anchor's oracle ranking, for negatives taken from the whole batch
    (:func:`~trackrank.learn.losses.in_batch_triplet_loss`); the patches are the same either way.
    """

    def __init__(
        self,
        cache: PatchCache,
        triplets: TripletTable,
        *,
        batch_size: int,
        n_batches: int,
        seed: int,
        epoch: int,
        pairs: int = 1,
        ranks: RankLookup | None = None,
        train_tracks: np.ndarray | None = None,
    ):
        if batch_size % pairs:
            raise ConfigError(f"train.batch_size ({batch_size}) must be a multiple of train.offline_pairs ({pairs})")
        self.cache, self.triplets = cache, triplets
        self.batch_size, self.n_batches, self.seed, self.epoch = batch_size, n_batches, seed, epoch
        self.pairs, self.ranks = pairs, ranks
        if ranks is not None:  # a cache position's place in the train split, which ranks are over
            self.train_index = np.full(len(cache.track_ids), -1, dtype=np.int64)
            self.train_index[train_tracks] = np.arange(len(train_tracks))

    def batch(self, b: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.epoch, b])
        t = self.triplets
        n_negatives = self.batch_size // self.pairs
        chosen_pairs = rng.integers(len(t.starts), size=self.pairs)  # with replacement: pairs = 1 draws as before
        starts = t.starts[chosen_pairs]
        negatives = []
        for start, end in zip(starts, t.ends[chosen_pairs]):
            chosen = rng.choice(end - start, n_negatives, replace=end - start < n_negatives)
            negatives.append(t.negative[start + chosen])
        tracks = np.concatenate([t.anchor[starts], t.positive[starts], *negatives])
        patches = self.draw_patches(self.cache, tracks, rng)
        if self.ranks is None:
            return patches
        anchor_ranks = self.ranks.submatrix(self.train_index[tracks])[: self.pairs]
        return patches, torch.from_numpy(anchor_ranks.astype(np.int64))


def check_within(triplets: TripletTable, cache: PatchCache, train_tracks: np.ndarray) -> None:
    """Refuse a triplet table with a track the train split's rankings do not rank (a table mined from
    another split): its in-batch ranks would be another track's."""
    tracks = np.unique(np.concatenate([triplets.anchor, triplets.positive, triplets.negative]))
    outside = np.setdiff1d(tracks, train_tracks)
    if len(outside):
        raise ValueError(
            f"the triplet table holds {len(outside)} track(s) outside the train split's rankings, e.g. "
            f"'{cache.track_ids[outside[0]]}': mine it again from this split"
        )


class OnlineBatches(SeededBatches):
    """Batches of P train tracks x K patches and their in-batch oracle ranks (online mining).

    Yields (patches (P*K, 96, 512), ranks (P*K, P*K)): ranks[i, j] is the rank of patch
    j's track in patch i's track's oracle ranking (0 for the same track); see
    :mod:`trackrank.learn.online_mining`.
    """

    def __init__(
        self,
        cache: PatchCache,
        train_tracks: np.ndarray,
        lookup: RankLookup,
        *,
        n_tracks: int,
        n_patches: int,
        n_positives: int,
        n_batches: int,
        seed: int,
        epoch: int,
    ):
        self.cache, self.train_tracks, self.lookup = cache, train_tracks, lookup
        self.n_tracks, self.n_patches, self.n_positives = n_tracks, n_patches, n_positives
        self.n_batches, self.seed, self.epoch = n_batches, seed, epoch

    def batch(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, b])
        tracks = self.batch_tracks(rng)
        patches = self.draw_patches(self.cache, self.train_tracks[tracks], rng)
        return patches, torch.from_numpy(self.lookup.submatrix(tracks).astype(np.int64))

    def batch_tracks(self, rng: np.random.Generator) -> np.ndarray:
        """Each patch's track (positions in the train split): P tracks, half with a first-Np neighbour, K times."""
        return np.repeat(
            sample_batch_tracks(self.lookup, n_tracks=self.n_tracks, n_positives=self.n_positives, rng=rng),
            self.n_patches,
        )


class ListwiseBatches(OnlineBatches):
    """Online batches (P tracks x K patches, drawn so that neighbours meet) with S between their tracks
    instead of ranks, for the listwise loss (:mod:`trackrank.learn.listwise`).

    Yields (patches (P*K, 96, 512), S (P*K, P*K) float32), row = anchor.
    """

    def __init__(self, *args, similarity: BatchSimilarity, **kwargs):
        super().__init__(*args, **kwargs)
        self.similarity = similarity

    def batch(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, b])
        tracks = self.batch_tracks(rng)
        patches = self.draw_patches(self.cache, self.train_tracks[tracks], rng)
        return patches, torch.from_numpy(self.similarity.between(tracks))


class TwoPatchBatches(SeededBatches):
    """Self-supervised batches: ``n_tracks`` distinct tracks drawn uniformly from ``tracks`` (tagged or
    not), two random patches of each, augmented independently.

    Yields (patches (2 * n_tracks, 96, 512), ranks (2 * n_tracks, 2 * n_tracks)) in the online miner's
    form: rank 0 for the same track, 1 for any other, so with Np = 0 the other patch of a track is its
    only positive and every other track's patch a negative (:mod:`trackrank.learn.online_mining`).
    """

    def __init__(self, cache: PatchCache, tracks: np.ndarray, *, n_tracks: int, n_batches: int, seed: int, epoch: int):
        if len(tracks) < 2:
            raise ConfigError(
                f"self-supervised training needs at least 2 tracks with audio outside the test split, got {len(tracks)}"
            )
        self.cache, self.tracks, self.n_tracks = cache, tracks, min(n_tracks, len(tracks))
        self.n_batches, self.seed, self.epoch = n_batches, seed, epoch

    def batch(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, b])
        chosen = np.repeat(rng.choice(len(self.tracks), self.n_tracks, replace=False), 2)
        patches = self.draw_patches(self.cache, self.tracks[chosen], rng)
        return patches, torch.from_numpy((chosen[:, None] != chosen[None, :]).astype(np.int64))


class TagBatches(SeededBatches):
    """Batches of (patches, tag targets) from random train tracks."""

    def __init__(
        self,
        cache: PatchCache,
        tracks: np.ndarray,
        targets: np.ndarray,
        *,
        batch_size: int,
        n_batches: int,
        seed: int,
        epoch: int,
    ):
        self.cache, self.tracks, self.targets = cache, tracks, targets
        self.batch_size, self.n_batches, self.seed, self.epoch = batch_size, n_batches, seed, epoch

    def batch(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, b])
        chosen = rng.integers(len(self.tracks), size=self.batch_size)
        patches = self.draw_patches(self.cache, self.tracks[chosen], rng)
        return patches, torch.from_numpy(self.targets[chosen])
