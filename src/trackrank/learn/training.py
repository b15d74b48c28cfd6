"""Training of the AT baseline, TL and TL Autopool systems (paper §3.4).

Batches: an offline TL mini-batch holds ``offline_pairs`` (anchor, positive) pairs of the
triplet table, each with ``batch_size / offline_pairs`` of its own negatives (the paper's,
``offline_pairs = 1``: 42 triplets sharing one anchor track and one positive track); one
random 96 x 512 patch of each of those tracks goes through the network. The auto-tagger's
mini-batch is 42 random patches of random train tracks with their binarised tags.

Early stopping watches MAP@k on the validation split (each val track queries the
others; relevant = its first oracle-ranked tracks), not a validation loss: the
retrieval metric is what the paper reports, and it compares the auto-tagger (BCE) and
the triplet systems on one scale. Validation losses are logged beside it. On a small
val split one epoch's MAP is noisy (80 val tracks: a few points either way), and a rule
that stops at the first three epochs without a new maximum stops on a lucky epoch, long
before music has taught the network anything; so the rule watches the mean of the last
``smoothing`` validations of trained epochs (epoch 0, the untrained network, stands alone),
and its patience runs from the best trained epoch. The kept epoch is the last of the best
window, or epoch 0 where no window beat it: the most trained network of the best stretch.
Its weights are kept in ``model.pt``.

Resuming: after every epoch, ``last.pt`` holds the model, optimiser, RNG states and
history. A rerun (a killed process, a preempted cluster job) starts from it when its
settings fingerprint and the digest of the files it trains on both match, so it continues
from the saved step; a rerun because an input changed (new triplets, rankings, tags, S or
features) starts over. Checkpoints hold
only tensors and plain Python values and are loaded with ``weights_only=True``.

Data loading: patches come from the memory-mapped cache (:mod:`trackrank.data.feature_cache`)
through a DataLoader whose worker processes each build whole batches. Batch b is drawn
from its own random stream (seed, epoch, b), so the batches are the same whatever the
number of workers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from trackrank.atomic import atomic_output
from trackrank.data.catalog import CatalogFiles
from trackrank.data.feature_cache import CacheFiles, PatchCache
from trackrank.digests import file_sha256
from trackrank.errors import ConfigError
from trackrank.learn.augment import Augmentation, augment
from trackrank.learn.checkpoints import load_checkpoint
from trackrank.learn.embedding import choose_device, track_outputs
from trackrank.learn.models import build_model, triplet_loss
from trackrank.learn.online_mining import RankLookup, online_triplet_loss, sample_batch_tracks
from trackrank.learn.settings import system_spec
from trackrank.rank.metrics import per_query_metrics, relevant_from_rankings
from trackrank.rank.mining import split_count
from trackrank.rank.retrieval import rank_by_distance, rank_by_oracle
from trackrank.rank.similarity import split_oracle

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    """Everything that defines a training run. Paper values: width 1, lr 1e-6 (TL) / 1e-4 (AT)."""

    system: str
    width: float = 1.0
    dim: int = 128
    margin: float = 0.5
    lr: float = 1e-6
    batch_size: int = 42
    epochs: int = 100
    batches_per_epoch: int = 1000
    patience: int = 10
    min_epochs: int = 1
    smoothing: int = 1  # early stopping and the kept epoch follow the mean of the last `smoothing` validations
    tag_threshold: float = 0.5
    val_patches: int = 8
    k: int = 20
    n_relevant: int = 5
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    n_positives: float = 15
    offline_pairs: int = 1  # (anchor, positive) pairs per offline TL batch (paper: 1)
    online_tracks: int = 42
    online_patches: int = 1
    online_mining: str = "semi_hard"
    init_trunk: str = ""  # a trained auto-tagger's model.pt whose trunk starts a TL network ("": random)
    aug_pitch: int = 0  # training-patch augmentation (trackrank.learn.augment); all 0: none
    aug_gain_db: float = 0.0
    aug_tilt_db: float = 0.0
    aug_stretch: float = 0.0

    @property
    def augmentation(self) -> Augmentation:
        return Augmentation(self.aug_pitch, self.aug_gain_db, self.aug_tilt_db, self.aug_stretch)

    @property
    def architecture(self) -> str:
        return system_spec(self.system)[0]

    @property
    def strategy(self) -> str | None:
        return system_spec(self.system)[1]

    def fingerprint(self) -> str:
        """Hash of the settings a checkpoint depends on (not epochs, patience, min_epochs, workers, device);
        with ``init_trunk``, of that checkpoint's bytes rather than its path, so a retrained tagger restarts."""
        kept = {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if k not in ("epochs", "patience", "min_epochs", "workers", "device")
        }
        if self.init_trunk:
            kept["init_trunk"] = file_sha256(self.init_trunk)
        return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


class TripletTable:
    """The triplet table as cache positions, grouped by (anchor, positive)."""

    def __init__(self, path: str | Path, cache: PatchCache):
        table = pq.read_table(path)
        if table.num_rows == 0:
            raise ValueError(
                f"triplet table {path} is empty: the train split is too small to mine "
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
    (one anchor, one positive, 42 negatives: 44 patches).
    """

    def __init__(
        self,
        cache: PatchCache,
        triplets: TripletTable,
        batch_size: int,
        n_batches: int,
        seed: int,
        epoch: int,
        pairs: int = 1,
    ):
        if batch_size % pairs:
            raise ConfigError(f"train.batch_size ({batch_size}) must be a multiple of train.offline_pairs ({pairs})")
        self.cache, self.triplets = cache, triplets
        self.batch_size, self.n_batches, self.seed, self.epoch = batch_size, n_batches, seed, epoch
        self.pairs = pairs

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
        return self.draw_patches(self.cache, tracks, rng)


def offline_triplet_loss(embeddings: torch.Tensor, pairs: int, margin: float) -> tuple[torch.Tensor, float]:
    """Mean triplet loss of a :class:`TripletBatches` batch's embeddings, and its share of active triplets."""
    anchor, positive, negatives = embeddings[:pairs], embeddings[pairs : 2 * pairs], embeddings[2 * pairs :]
    per_pair = negatives.shape[0] // pairs
    per_triplet = triplet_loss(
        anchor.repeat_interleave(per_pair, dim=0),
        positive.repeat_interleave(per_pair, dim=0),
        negatives,
        margin,
        reduction="none",
    )
    return per_triplet.mean(), float((per_triplet > 0).float().mean())


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
        tracks = np.repeat(sample_batch_tracks(self.lookup, self.n_tracks, self.n_positives, rng), self.n_patches)
        patches = self.draw_patches(self.cache, self.train_tracks[tracks], rng)
        return patches, torch.from_numpy(self.lookup.submatrix(tracks).astype(np.int64))


class TagBatches(SeededBatches):
    """Batches of (patches, binarised tags) from random train tracks."""

    def __init__(
        self,
        cache: PatchCache,
        tracks: np.ndarray,
        targets: np.ndarray,
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


@dataclass
class TrainingData:
    """What a training run reads: the patch cache, its train examples and the validation split."""

    cache: PatchCache
    train_tracks: np.ndarray  # cache positions
    train_targets: np.ndarray | None  # binarised tags (auto-tagger)
    triplets: TripletTable | None
    ranks: RankLookup | None  # train split oracle ranks (online mining), over train_tracks
    n_positives: int  # Np resolved against the train split (online mining)
    val_ids: list[str]
    val_tracks: np.ndarray
    val_relevant: np.ndarray  # (n_val, n_relevant) positions in val_ids
    val_oracle: object  # Oracle over the val split's true tags
    tag_names: list[str]
    digest: str = ""  # identity of the inputs it was read from (input_digest): a resume needs the same


def input_digest(files: list[str | Path], large: list[str | Path], similarity: dict | None) -> str:
    """Identity of what a training run reads: the bytes of ``files``, the size and mtime of the ``large``
    ones (the patch cache, too big to hash at the paper's scale and rewritten whenever rebuilt), and S.

    Why: ``last.pt`` may only resume a run on the same data; Snakemake reruns a training job after a
    changed input too, and resuming that from the old run's epochs would keep weights trained and
    selected on the old triplets, rankings or tags.
    """
    digest = hashlib.sha256(json.dumps(similarity or {}, sort_keys=True).encode())
    for path in files:
        digest.update(file_sha256(path).encode())
    for path in large:
        stat = Path(path).stat()
        digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def load_training_data(
    settings: TrainSettings,
    cache: CacheFiles,
    catalog: CatalogFiles,
    val_rankings: str | Path,
    triplets: str | Path | None,
    train_rankings: str | Path | None = None,
    similarity: dict | None = None,
) -> TrainingData:
    """What one system trains on; ``triplets`` for offline TL systems, ``train_rankings`` for online ones.

    ``similarity`` is the configured S (``name``, ``function``, ``category_weights``): the
    auto-tagger's validation ranks by S of its estimated tags, so it must be the S of the
    relevant tracks and of the test evaluation, not the built-in default.
    """
    cache_files, cache = cache, PatchCache(cache)
    tracks = pd.read_parquet(catalog.tracks)
    tags = pd.read_parquet(catalog.tags).set_index("track_id")
    tag_names = list(tags.columns)
    train_ids = [t for t in tracks.loc[tracks.split == "train", "track_id"] if t in cache.position]
    val_ids, val_oracle = split_oracle(catalog, "val", **(similarity or {}))
    kept = [i for i, t in enumerate(val_ids) if t in cache.position]
    if len(kept) < len(val_ids):
        log.warning("%d val tracks have no features and are left out of validation", len(val_ids) - len(kept))
    val_ids = [val_ids[i] for i in kept]
    relevant = relevant_from_rankings(pd.read_parquet(val_rankings), val_ids, settings.n_relevant)
    targets = None
    if settings.architecture == "fcn5_tagger":
        targets = (tags.loc[train_ids].to_numpy() >= settings.tag_threshold).astype(np.float32)
    table = ranks = None
    n_positives = split_count(settings.n_positives, len(train_ids), "mining.n_positives")
    if settings.strategy == "online":
        if train_rankings is None:
            raise ConfigError(f"{settings.system} mines online: it needs the train split's rankings")
        ranks = RankLookup(train_rankings, train_ids)
        if n_positives >= ranks.beyond:
            raise ConfigError(
                f"mining.n_positives resolves to {n_positives}, beyond the {ranks.beyond - 1} "
                "tracks each ranking stores (ranking.top_k): raise ranking.top_k"
            )
        log.info(
            "online mining: %d tracks x %d patches per batch, Np = %d of %d train tracks, %s",
            settings.online_tracks,
            settings.online_patches,
            n_positives,
            len(train_ids),
            settings.online_mining,
        )
    elif settings.strategy:
        table = TripletTable(triplets, cache)
    read = [catalog.tracks, catalog.tags, catalog.taxonomy, cache_files.index, val_rankings]
    read += [train_rankings] if settings.strategy == "online" else [triplets] if settings.strategy else []
    digest = input_digest(read, [cache_files.data], similarity)  # the files just read: a resume needs the same
    return TrainingData(
        cache,
        cache.indices(train_ids),
        targets,
        table,
        ranks,
        n_positives,
        val_ids,
        cache.indices(val_ids),
        relevant,
        val_oracle,
        tag_names,
        digest,
    )


@torch.no_grad()
def validate(model, data: TrainingData, settings: TrainSettings, device: torch.device) -> dict[str, float]:
    """Val MAP@k (early-stopping metric) and a validation loss on track-level outputs."""
    outputs = track_outputs(model, data.cache, data.val_tracks, settings.val_patches, seed=settings.seed, device=device)
    k = min(settings.k, len(data.val_ids) - 1)
    relevant = data.val_relevant
    if settings.architecture == "fcn5_tagger":
        predicted = rank_by_oracle(outputs.astype(np.float64), data.val_oracle, k)
        truth = (data.val_oracle.tags >= settings.tag_threshold).astype(np.float32)
        loss = F.binary_cross_entropy(torch.from_numpy(outputs).clamp(1e-6, 1 - 1e-6), torch.from_numpy(truth))
    else:
        predicted = rank_by_distance(outputs, k)
        embeddings = torch.from_numpy(outputs)
        rng = np.random.default_rng([settings.seed, 13])
        queries = np.repeat(np.arange(len(outputs)), relevant.shape[1])
        negatives = rng.integers(len(outputs), size=len(queries))
        valid = (relevant.ravel() >= 0) & (negatives != queries) & ~(relevant[queries] == negatives[:, None]).any(1)
        loss = triplet_loss(
            embeddings[queries[valid]],
            embeddings[relevant.ravel()[valid]],
            embeddings[negatives[valid]],
            settings.margin,
        )
    usable = (relevant >= 0).all(axis=1)
    metrics = per_query_metrics(predicted[usable], relevant[usable], k)
    return {"val_loss": float(loss), f"val_map@{settings.k}": float(metrics["map"].mean())}


def _new_state(settings: TrainSettings, data: TrainingData, device: torch.device):
    model = build_model(
        settings.architecture, n_tags=len(data.tag_names), dim=settings.dim, width=settings.width, seed=settings.seed
    ).to(device)
    if settings.init_trunk:
        if settings.architecture != "triplet":
            raise ConfigError(f"{settings.system}: only a TL network shares the auto-tagger's FCN-5 trunk")
        tagger = load_checkpoint(settings.init_trunk, device, keys=("model",))["model"]
        model.trunk.load_state_dict({k.removeprefix("trunk."): v for k, v in tagger.items() if k.startswith("trunk.")})
        log.info("trunk initialised from %s", settings.init_trunk)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    return model, optimizer, scaler


def train(
    settings: TrainSettings,
    data: TrainingData,
    *,
    model_file: str | Path,
    history_file: str | Path,
    last_file: str | Path,
) -> pd.DataFrame:
    """Train (or resume from ``last_file``) one system; writes the kept epoch's checkpoint to ``model_file``
    (model.pt), the epochs to ``history_file`` (CSV) and, after every epoch, the resumable ``last_file``."""
    model_file, history_file, last = Path(model_file), Path(history_file), Path(last_file)
    device = choose_device(settings.device)
    model, optimizer, scaler = _new_state(settings, data, device)
    state = {"epoch": 0, "step": 0, "best": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": []}
    fingerprint = settings.fingerprint()  # once: it may hash the tagger checkpoint a TL trunk starts from
    if last.exists():
        checkpoint = load_checkpoint(last, device)
        same_data = checkpoint.get("data") == data.digest
        if checkpoint.get("fingerprint") == fingerprint and same_data and "kept_checkpoint" in checkpoint["state"]:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            scaler.load_state_dict(checkpoint["scaler"])
            torch.set_rng_state(checkpoint["torch_rng"])
            state = checkpoint["state"]
            log.info("resuming %s from epoch %d (step %d)", settings.system, state["epoch"], state["step"])
        elif not same_data:
            log.info("%s was written for other inputs (triplets, rankings, tags, S or features): starting over", last)
        else:
            log.info("%s exists but was written with other settings (or by an older trackrank): starting over", last)
    log.info(
        "training %s (%s, %d parameters) on %s",
        settings.system,
        settings.architecture,
        sum(p.numel() for p in model.parameters()),
        device,
    )
    metric = f"val_map@{settings.k}"
    if not state["history"]:  # epoch 0: the untrained network, the bar that training must clear
        started = time.perf_counter()
        _record_epoch(
            state,
            {
                "epoch": 0,
                "step": 0,
                "train_loss": float("nan"),
                **validate(model, data, settings, device),
                "seconds": time.perf_counter() - started,
            },
            model,
            settings,
            data,
            model_file,
        )
    while state["epoch"] < settings.epochs and not _should_stop(state, settings):
        epoch = state["epoch"] + 1
        started = time.perf_counter()
        train_loss, active_fraction = _train_epoch(model, optimizer, scaler, data, settings, epoch, device)
        state["step"] += settings.batches_per_epoch
        row = {
            "epoch": epoch,
            "step": state["step"],
            "train_loss": train_loss,
            **validate(model, data, settings, device),
            "seconds": time.perf_counter() - started,
        }
        if settings.strategy:
            row["active_fraction"] = active_fraction
        _record_epoch(state, row, model, settings, data, model_file)
        with atomic_output(last) as tmp:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "state": state,
                    "fingerprint": fingerprint,
                    "data": data.digest,
                },
                tmp,
            )
        log.info(
            "epoch %d: train loss %.4f, val loss %.4f, %s %.4f%s (%.1f s)",
            epoch,
            train_loss,
            row["val_loss"],
            metric,
            row[metric],
            f", active triplets {active_fraction:.1%}" if settings.strategy else "",
            row["seconds"],
        )
    smoothing = f" (mean of {settings.smoothing})" if settings.smoothing > 1 else ""
    if _should_stop(state, settings):
        log.info(
            "early stop: no %s%s gain for %d epochs; best epoch %d",
            metric,
            smoothing,
            settings.patience,
            state["best_epoch"],
        )
    log.info(
        "%s keeps epoch %d of %d (%s%s %.4f)",
        settings.system,
        state["best_epoch"],
        state["epoch"],
        metric,
        smoothing,
        state["best"],
    )
    if state["best_epoch"] <= 1 and state["epoch"] > 1:
        log.warning(
            "%s: FAILED RUN: its best epoch is %s, so further training made validation worse "
            "(%s %.4f); see history.csv and training_curves.png",
            settings.system,
            "0, the untrained network" if state["best_epoch"] == 0 else "its first",
            metric,
            state["best"],
        )
    if not model_file.exists():  # a finished run resumed after Snakemake removed its outputs
        _save_kept(state, model_file)
    history = pd.DataFrame(state["history"])
    history["kept"] = history["epoch"] == state["best_epoch"]
    with atomic_output(history_file) as tmp:
        history.to_csv(tmp, index=False)
    return history


def smoothed(history: list[dict], metric: str, window: int) -> float:
    """The mean of ``metric`` over the last ``window`` trained epochs of ``history`` (all of them while
    fewer); epoch 0, the untrained network, is its own: a window of trained epochs that reached back to
    it would carry its value into theirs."""
    rows = history[-1:] if history[-1]["epoch"] == 0 else [row for row in history[-window:] if row["epoch"] > 0]
    return float(np.mean([row[metric] for row in rows]))


def _record_epoch(state: dict, row: dict, model, settings: TrainSettings, data: TrainingData, model_file: Path) -> None:
    """Add an epoch's row to the history; keep its weights in ``model_file`` when the smoothed val MAP
    (:func:`smoothed`, over ``settings.smoothing`` validations) improved."""
    metric = f"val_map@{settings.k}"
    state["history"].append(row)
    state["epoch"] = row["epoch"]
    value = row[f"{metric}_smoothed"] = smoothed(state["history"], metric, settings.smoothing)
    if np.isnan(row[metric]):
        log.warning("epoch %d: %s is undefined (validation split too small); keeping this epoch", row["epoch"], metric)
    if row["epoch"] > 0:  # patience runs from the best *trained* epoch (see _should_stop)
        if value > state.get("best_trained", -1.0):
            state.update(best_trained=value, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
    if np.isnan(row[metric]) or value > state["best"]:
        # the kept weights also travel in last.pt: Snakemake deletes model.pt before it reruns a job,
        # and a resumed run must still end with the best epoch's weights
        kept = {
            "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "settings": dataclasses.asdict(settings),
            "tags": data.tag_names,
            "epoch": row["epoch"],
            metric: row[metric],
        }
        state.update(best=value, best_epoch=row["epoch"], kept_checkpoint=kept)
        _save_kept(state, model_file)


def _save_kept(state: dict, model_file: Path) -> None:
    """Write ``model_file`` (atomically) from the kept epoch's checkpoint."""
    with atomic_output(model_file) as tmp:
        torch.save(state["kept_checkpoint"], tmp)


def _should_stop(state: dict, settings: TrainSettings) -> bool:
    """Early stopping: ``patience`` epochs without a gain over the best trained epoch, never before
    ``min_epochs``.

    Why not over epoch 0 too: on music the untrained network is a fair embedding already, and the
    first steps of training make validation worse before they make it better (measured on the
    ``scores`` catalog: val MAP 0.25 untrained, 0.21-0.23 for five epochs, 0.29 at epoch 12); counted
    from epoch 0, patience stopped every triplet system there. The kept epoch is still the best of
    all, epoch 0 included, so a run that never beats its start keeps it (and says FAILED RUN).
    """
    return state["epoch"] >= settings.min_epochs and state["bad_epochs"] >= settings.patience


def epoch_batches(data: TrainingData, settings: TrainSettings, epoch: int, device: torch.device) -> DataLoader:
    """The epoch's mini-batches, built by ``settings.workers`` DataLoader processes."""
    if settings.strategy == "online":
        dataset = OnlineBatches(
            data.cache,
            data.train_tracks,
            data.ranks,
            settings.online_tracks,
            settings.online_patches,
            data.n_positives,
            settings.batches_per_epoch,
            settings.seed,
            epoch,
        )
    elif settings.strategy:
        dataset = TripletBatches(
            data.cache,
            data.triplets,
            settings.batch_size,
            settings.batches_per_epoch,
            settings.seed,
            epoch,
            pairs=settings.offline_pairs,
        )
    else:
        dataset = TagBatches(
            data.cache,
            data.train_tracks,
            data.train_targets,
            settings.batch_size,
            settings.batches_per_epoch,
            settings.seed,
            epoch,
        )
    dataset.augmentation = settings.augmentation
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=settings.workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if settings.workers else None,
    )


def _train_epoch(
    model, optimizer, scaler, data: TrainingData, settings: TrainSettings, epoch: int, device: torch.device
) -> tuple[float, float]:
    """One epoch of steps: (mean train loss, mean share of active triplets; NaN for the auto-tagger)."""
    model.train()
    losses, active = [], []
    for batch in epoch_batches(data, settings, epoch, device):
        with torch.autocast(device_type=device.type, enabled=device.type == "cuda"):
            if settings.strategy == "online":
                patches, ranks = batch
                embeddings = model(patches.to(device, non_blocking=True))
                loss, fraction = online_triplet_loss(
                    embeddings, ranks.to(device), data.n_positives, settings.margin, settings.online_mining
                )
                active.append(fraction)
            elif settings.strategy:
                embeddings = model(batch.to(device, non_blocking=True)).float()
                loss, fraction = offline_triplet_loss(embeddings, settings.offline_pairs, settings.margin)
                active.append(fraction)
            else:
                patches, targets = batch
                logits = model.logits(patches.to(device, non_blocking=True))
                loss = F.binary_cross_entropy_with_logits(logits.float(), targets.to(device))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
    return float(np.mean(losses)), float(np.mean(active)) if active else float("nan")
