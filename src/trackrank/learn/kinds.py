"""The kinds of system, each one object: the auto-tagger, offline TL, online TL and self-supervised TL.

A kind says what it trains on beyond the common inputs, how it draws its batches, what its loss is
and how its validation ranks the val split; the training loop (:mod:`trackrank.learn.training`) calls
these and knows nothing else about the system it trains.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from trackrank.data.catalog import CatalogFiles
from trackrank.data.feature_cache import PatchCache
from trackrank.errors import ConfigError
from trackrank.learn.batches import (
    ListwiseBatches,
    OnlineBatches,
    SeededBatches,
    TagBatches,
    TripletBatches,
    TripletTable,
    TwoPatchBatches,
    check_within,
)
from trackrank.learn.listwise import BatchSimilarity, listnet_loss
from trackrank.learn.losses import OfflineNegatives, offline_negatives, triplet_loss
from trackrank.learn.online_mining import RankLookup, online_triplet_loss
from trackrank.learn.settings import LISTWISE, SELF_SUPERVISED, TrainSettings
from trackrank.learn.training_data import TrainingData
from trackrank.rank.retrieval import rank_by_distance, rank_by_oracle
from trackrank.rank.similarity import split_oracle

log = logging.getLogger(__name__)


class SystemKind:
    """What the training loop asks of a kind of system."""

    #: its loss is a triplet loss, so its epochs report the share of active triplets
    reports_active = True
    #: early stopping and the kept epoch follow its val MAP; otherwise it trains its whole budget and
    #: keeps its last epoch (val MAP is still logged)
    selects_epoch = True

    def inputs(self, triplets: str | Path | None, train_rankings: str | Path | None) -> list[str | Path]:
        """The kind's own input files, beyond the catalog, the cache and the val rankings."""
        return []

    def read(
        self,
        settings: TrainSettings,
        cache: PatchCache,
        *,
        train_ids: list[str],
        tags: pd.DataFrame,
        n_positives: int,
        triplets: str | Path | None,
        train_rankings: str | Path | None,
        catalog: CatalogFiles,
        similarity: dict | None,
    ) -> dict:
        """The kind's own :class:`~trackrank.learn.training_data.TrainingData` fields. ``catalog`` and
        ``similarity`` (the run's S) are what a kind that computes S itself reads."""
        return {}

    def batches(self, data: TrainingData, settings: TrainSettings, epoch: int) -> SeededBatches:
        """The epoch's mini-batches, before augmentation and loading."""
        raise NotImplementedError

    def loss(
        self, model, batch, data: TrainingData, settings: TrainSettings, device: torch.device
    ) -> tuple[torch.Tensor, float | None]:
        """One batch's loss and its share of active triplets (None where the loss has no triplets)."""
        raise NotImplementedError

    def validation(
        self, outputs: np.ndarray, data: TrainingData, settings: TrainSettings, k: int
    ) -> tuple[np.ndarray, torch.Tensor]:
        """The val tracks' first ``k`` neighbours by the model's outputs, and a validation loss."""
        raise NotImplementedError


def tagger_targets(tags: np.ndarray, settings: TrainSettings) -> np.ndarray:
    """What the auto-tagger learns to output for tags ``tags`` (likelihoods): the tags binarised at
    ``train.tag_threshold``, as the paper's tagger learns them."""
    return (np.asarray(tags) >= settings.tag_threshold).astype(np.float32)


class Tagger(SystemKind):
    """The auto-tagger (AT baseline): binary cross-entropy on its tag targets (:func:`tagger_targets`); its
    validation ranks the val tracks by S of their estimated tags, as the evaluation does."""

    reports_active = False

    def read(
        self, settings, cache, *, train_ids, tags, n_positives, triplets, train_rankings, catalog, similarity
    ) -> dict:
        return {"train_targets": tagger_targets(tags.loc[train_ids].to_numpy(), settings)}

    def batches(self, data, settings, epoch) -> SeededBatches:
        return TagBatches(
            data.cache,
            data.train_tracks,
            data.train_targets,
            batch_size=settings.batch_size,
            n_batches=settings.batches_per_epoch,
            seed=settings.seed,
            epoch=epoch,
        )

    def loss(self, model, batch, data, settings, device):
        patches, targets = batch
        logits = model.logits(patches.to(device, non_blocking=True))
        return F.binary_cross_entropy_with_logits(logits.float(), targets.to(device)), None

    def validation(self, outputs, data, settings, k):
        predicted = rank_by_oracle(outputs.astype(np.float64), data.val_oracle, k=k)
        truth = tagger_targets(data.val_oracle.tags, settings)
        loss = F.binary_cross_entropy(torch.from_numpy(outputs).clamp(1e-6, 1 - 1e-6), torch.from_numpy(truth))
        return predicted, loss


class TripletSystem(SystemKind):
    """A TL system: embeddings ranked by Euclidean distance; its validation loss is the triplet loss of
    each val track, each of its relevant tracks and a random other track."""

    def validation(self, outputs, data, settings, k):
        predicted = rank_by_distance(outputs, k)
        relevant = data.val_relevant
        embeddings = torch.from_numpy(outputs)
        rng = np.random.default_rng([settings.seed, 13])
        queries = np.repeat(np.arange(len(outputs)), relevant.shape[1])
        negatives = rng.integers(len(outputs), size=len(queries))
        valid = (relevant.ravel() >= 0) & (negatives != queries) & ~(relevant[queries] == negatives[:, None]).any(1)
        loss = triplet_loss(
            embeddings[queries[valid]],
            embeddings[relevant.ravel()[valid]],
            embeddings[negatives[valid]],
            margin=settings.margin,
        )
        return predicted, loss


class OfflineTriplets(TripletSystem):
    """TL on a mined triplet table (the paper's systems), its pairs meeting their negatives as ``negatives``
    says (``train.offline_negatives``). Where those are the whole batch's (``in_batch``), it reads the train
    split's rankings too, to know which of the batch's tracks each anchor ranks after its positive."""

    def __init__(self, negatives: OfflineNegatives):
        self.negatives = negatives
        self.in_batch = negatives.needs_ranks

    def inputs(self, triplets, train_rankings):
        return [triplets, train_rankings] if self.in_batch else [triplets]

    def read(
        self, settings, cache, *, train_ids, tags, n_positives, triplets, train_rankings, catalog, similarity
    ) -> dict:
        own = {"triplets": TripletTable(triplets, cache)}
        if self.in_batch:
            if train_rankings is None:
                raise ConfigError(
                    f"{settings.system} with train.offline_negatives: batch needs the train split's rankings"
                )
            own["ranks"] = RankLookup(train_rankings, train_ids)
            check_within(own["triplets"], cache, cache.indices(train_ids))
        return own

    def batches(self, data, settings, epoch) -> SeededBatches:
        return TripletBatches(
            data.cache,
            data.triplets,
            batch_size=settings.batch_size,
            n_batches=settings.batches_per_epoch,
            seed=settings.seed,
            epoch=epoch,
            pairs=settings.offline_pairs,
            ranks=data.ranks if self.in_batch else None,
            train_tracks=data.train_tracks,
        )

    def loss(self, model, batch, data, settings, device):
        patches, anchor_ranks = batch if self.in_batch else (batch, None)
        embeddings = model(patches.to(device, non_blocking=True)).float()
        if anchor_ranks is not None:
            anchor_ranks = anchor_ranks.to(device)
        return self.negatives.loss(embeddings, settings.offline_pairs, settings.margin, anchor_ranks)


def online_batches(batches: type[OnlineBatches], data: TrainingData, settings: TrainSettings, epoch: int, **more):
    """An epoch's batches of P train tracks x K patches drawn as online mining draws them (``batches``:
    :class:`OnlineBatches` or a kind of it, with its ``more`` arguments)."""
    return batches(
        data.cache,
        data.train_tracks,
        data.ranks,
        n_tracks=settings.online_tracks,
        n_patches=settings.online_patches,
        n_positives=data.n_positives,
        n_batches=settings.batches_per_epoch,
        seed=settings.seed,
        epoch=epoch,
        **more,
    )


class OnlineTriplets(TripletSystem):
    """TL with its triplets mined inside each batch from the train split's rankings
    (:mod:`trackrank.learn.online_mining`)."""

    def inputs(self, triplets, train_rankings):
        return [train_rankings]

    def read(
        self, settings, cache, *, train_ids, tags, n_positives, triplets, train_rankings, catalog, similarity
    ) -> dict:
        if train_rankings is None:
            raise ConfigError(f"{settings.system} draws its batches from the train split's rankings: it needs them")
        ranks = RankLookup(train_rankings, train_ids)
        if n_positives >= ranks.beyond:
            raise ConfigError(
                f"mining.n_positives = {n_positives} is beyond the {ranks.beyond - 1} "
                "tracks each ranking stores (ranking.top_k): raise ranking.top_k"
            )
        log.info(
            "%s: %d tracks x %d patches per batch, Np = %d of %d train tracks",
            settings.system,
            settings.online_tracks,
            settings.online_patches,
            n_positives,
            len(train_ids),
        )
        return {"ranks": ranks}

    def batches(self, data, settings, epoch) -> SeededBatches:
        return online_batches(OnlineBatches, data, settings, epoch)

    def loss(self, model, batch, data, settings, device):
        patches, ranks = batch
        embeddings = model(patches.to(device, non_blocking=True))
        return online_triplet_loss(
            embeddings,
            ranks.to(device),
            self.last_positive(data),
            margin=settings.margin,
            mining=settings.online_mining,
        )

    def last_positive(self, data: TrainingData) -> int:
        """The last rank that may be a positive (Np)."""
        return data.n_positives


class SelfSupervised(OnlineTriplets):
    """TL without tags (``tl_ssl``): two patches of one track are a positive pair, a patch of any other
    track a negative, mined in the batch as online TL mines (`train.online.mining`) with Np = 0. It
    trains on the audio of every track outside the test split, tagged or not (a catalog's
    ``untagged.csv``; :func:`~trackrank.learn.training_data.unseen_by_test`), as a company has far more
    untagged audio than tagged; a ``*_from_ssl`` system then starts from its network. A batch holds
    ``batch_size / 2`` tracks x 2 patches: as many patches as an online batch.

    It learns without tags, so no tag chooses its epoch either: it trains its whole budget and keeps
    the last. Chosen by the val split's oracle MAP it kept epoch 0 (measured on ``scores``: 0.26
    untrained, 0.23-0.25 while the two-patch task was learnt), and a ``*_from_ssl`` system then started
    from the untrained network."""

    selects_epoch = False

    def batches(self, data, settings, epoch) -> SeededBatches:
        return TwoPatchBatches(
            data.cache,
            data.audio_tracks,
            n_tracks=max(1, settings.batch_size // 2),
            n_batches=settings.batches_per_epoch,
            seed=settings.seed,
            epoch=epoch,
        )

    def inputs(self, triplets, train_rankings):
        return []

    def read(
        self, settings, cache, *, train_ids, tags, n_positives, triplets, train_rankings, catalog, similarity
    ) -> dict:
        return {}

    def last_positive(self, data: TrainingData) -> int:
        return 0  # rank 0: the same track


class Listwise(OnlineTriplets):
    """The listwise system (``tl_listwise``): the ranking by S learnt from the whole batch
    (:mod:`trackrank.learn.listwise`). Its batches are drawn as online mining draws them (P tracks x K
    patches, half of the tracks with one of their first Np neighbours, from the train split's rankings,
    read as online mining reads them); S between their tracks comes from the train split's tags with the
    run's S. Its validation loss is the same loss over the val tracks' embeddings and S of their true tags."""

    reports_active = False
    #: the val tracks its validation loss reads at most (their S matrix is computed once per run)
    val_loss_tracks = 512

    def __init__(self):
        self.val_similarity: torch.Tensor | None = None  # S among the val tracks the validation loss reads

    def read(self, settings, cache, **inputs) -> dict:
        own = super().read(settings, cache, **inputs)
        oracle_ids, oracle = split_oracle(inputs["catalog"], "train", **(inputs["similarity"] or {}))
        row = {track: i for i, track in enumerate(oracle_ids)}
        return own | {"similarity": BatchSimilarity(oracle, np.array([row[t] for t in inputs["train_ids"]]))}

    def batches(self, data, settings, epoch) -> SeededBatches:
        return online_batches(ListwiseBatches, data, settings, epoch, similarity=data.similarity)

    def loss(self, model, batch, data, settings, device):
        patches, similarity = batch
        embeddings = model(patches.to(device, non_blocking=True))
        loss = listnet_loss(
            embeddings,
            similarity.to(device),
            temperature=settings.listwise_temperature,
            target_temperature=settings.listwise_target_temperature,
        )
        return loss, None

    def validation(self, outputs, data, settings, k):
        n = min(len(outputs), self.val_loss_tracks)
        if self.val_similarity is None:
            every_val_track = np.arange(data.val_oracle.n_tracks)
            self.val_similarity = torch.from_numpy(
                BatchSimilarity(data.val_oracle, every_val_track).between(np.arange(n))
            )
        loss = listnet_loss(
            torch.from_numpy(outputs[:n]),
            self.val_similarity,
            temperature=settings.listwise_temperature,
            target_temperature=settings.listwise_target_temperature,
        )
        return rank_by_distance(outputs, k), loss


def kind_of(settings: TrainSettings) -> SystemKind:
    """The kind of ``settings.system``: decided once per run (the loader and the training loop each ask
    once, and pass it on)."""
    if settings.architecture == "fcn5_tagger":
        return Tagger()
    if settings.strategy == SELF_SUPERVISED:
        return SelfSupervised()
    if settings.strategy == "online":
        return OnlineTriplets()
    if settings.strategy == LISTWISE:
        return Listwise()
    return OfflineTriplets(offline_negatives(settings.offline_negatives))
