"""Triplet mining from ranked lists (paper §3.2, Fig. 1 bottom).

For each anchor t of a split and each positive r_i(t) among its first Np ranked
tracks, Nn negatives are chosen among the tracks ranked *after* the positive:

``neighbors``
    the Nn tracks right after the positive, r_{i+1}(t) ... r_{i+Nn}(t);
``uniform``
    Nn independent draws, uniform over the whole list after the positive;
``distance``
    Nn independent draws over the whole list after the positive, P(n) proportional to S(t, n).

"After the positive" means less similar to the anchor than the positive (the paper's validity: the
positive is *more* similar than the negative): a track tied with the positive, which the ranking puts
after it only by track order, is never its negative, and a positive tied with every track left after
it has no triplet. (Ties are common with binary tags; a tied "negative" teaches the network noise.)

The whole list is used, not a stored top K: each anchor's S against the split is
recomputed, one anchor at a time (memory O(N)). Draws over "the list after r_i" are
made by rejection: draw over all others, redraw those ranked at or before the
positive; where that region is nearly all of the mass, draw from it directly. Both
give exactly the stated distribution.

What a small catalog cannot supply: an anchor gets min(Np, N - 2) positives (one
track must remain after the positive); ``neighbors`` then gets min(Nn, N - 1 - i)
negatives for the positive at rank i (fewer with ties); ``uniform`` and ``distance`` always draw Nn
(with replacement, so a short list repeats negatives). If every track after the
positive has S = 0, ``distance`` draws uniformly there.

Every anchor has its own random stream (seed, strategy, anchor), so the table is
the same bit for bit for the same config, whatever the chunking.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from trackrank.atomic import atomic_output
from trackrank.errors import ConfigError
from trackrank.logs import CONSOLE
from trackrank.rank.negative_draws import distance_draws, uniform_draws
from trackrank.rank.oracle import dictionary_column, top_ranked
from trackrank.rank.similarity import Oracle

log = logging.getLogger(__name__)

STRATEGIES = ("neighbors", "uniform", "distance")
TRIPLET_SCHEMA = pa.schema(
    [(name, pa.dictionary(pa.int32(), pa.string())) for name in ("anchor", "positive", "negative")]
)
CHUNK_ANCHORS = 256


def check_strategy(strategy: str) -> None:
    """Refuse a mining strategy that is not one of :data:`STRATEGIES`, naming them."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown mining strategy '{strategy}' (expected one of {', '.join(STRATEGIES)})")


def mine_anchor(
    scores: np.ndarray,
    anchor: int,
    strategy: str,
    *,
    n_positives: int,
    n_negatives: int,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The (positive, negative) pairs of one anchor.

    Parameters
    ----------
    scores : np.ndarray, shape (N,): S(anchor, every track of the split).
    anchor : the anchor's index in the split.

    Returns
    -------
    positives, negatives : np.ndarray of track indices, same length (one row per triplet).
    """
    check_strategy(strategy)
    positives = anchor_positives(scores, anchor, n_positives)
    return anchor_negatives(positives, strategy, n_negatives=n_negatives, rng=rng)


class Positives(NamedTuple):
    """An anchor's positives, shared by every strategy that mines it."""

    scores: np.ndarray  # S(anchor, every track), as given
    others: np.ndarray  # the same, the anchor's own at -inf
    anchor: int
    ranking: np.ndarray  # the positives, in rank order (those with a track below them)
    below: np.ndarray  # each positive's S: its negatives score below it


def anchor_positives(scores: np.ndarray, anchor: int, n_positives: int) -> Positives:
    """The first min(Np, N - 2) ranked tracks of ``anchor`` that have a track ranked below them."""
    n = len(scores)
    n_pos = min(n_positives, n - 2)
    others = np.asarray(scores, dtype=np.float64).copy()
    others[anchor] = -np.inf
    if n_pos <= 0:
        return Positives(scores, others, anchor, np.zeros(0, np.int64), np.zeros(0))
    ranking = top_ranked(others, anchor, n_pos)
    below = others[ranking]  # a negative's S must be below its positive's (paper §3.2: "more similar")
    # a positive whose S is the split's lowest (every other track ties with or beats it) has no negative
    has_negative = below > np.delete(others, anchor).min()
    return Positives(scores, others, anchor, ranking[has_negative], below[has_negative])


def anchor_negatives(
    positives: Positives, strategy: str, *, n_negatives: int, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The (positive, negative) pairs of one anchor's positives with ``strategy``."""
    scores, others, anchor, ranking, below = positives
    if not len(ranking):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if strategy == "neighbors":
        # the first Nn tracks below each positive's S lie within the first (ties with the last positive) + Nn
        depth = int((others >= below.min()).sum()) + n_negatives
        listed = top_ranked(others, anchor, depth)
        start = np.searchsorted(-others[listed], -below, side="right")  # first rank whose S is below
        negatives = [listed[s : s + n_negatives] for s in start]
        positives = [np.full(len(neg), p) for p, neg in zip(ranking, negatives)]
        return np.concatenate(positives), np.concatenate(negatives)
    if strategy == "uniform":
        negatives = uniform_draws(others, anchor, below, n_negatives, rng)
    else:
        weights = np.asarray(scores, dtype=np.float64).copy()
        weights[anchor] = 0.0
        negatives = distance_draws(weights, others, anchor, below, n_negatives, rng)
    return np.repeat(ranking, n_negatives), negatives.ravel()


def whole_count(value: float, *, key: str) -> int:
    """Np or Nn as the count it must be: a whole number >= 1, checked here for callers that bypass the
    workflow's schema (a bench script, a library user)."""
    if value < 1 or value != int(value):
        raise ConfigError(f"{key} = {value}: a count of tracks, a whole number >= 1")
    return int(value)


def anchor_rng(seed: int, strategy: str, anchor: int) -> np.random.Generator:
    """The random stream of one anchor: independent of chunking and of the other anchors."""
    return np.random.default_rng([seed, STRATEGIES.index(strategy), anchor])


def write_triplets(
    oracle: Oracle,
    track_ids: list[str],
    *,
    output: str | Path,
    strategy: str,
    n_positives: int,
    n_negatives: int,
    seed: int,
    anchors: range | None = None,
) -> int:
    """One strategy's table (:func:`write_triplet_tables` with one output); the number of triplets.

    Parameters
    ----------
    oracle, track_ids : S over one split and the split's track ids, in the oracle's order.
    output : the Parquet table written (``anchor``, ``positive``, ``negative`` track ids).
    strategy : ``neighbors``, ``uniform`` or ``distance`` (paper §3.2).
    n_positives, n_negatives : Np and Nn per anchor (counts of tracks).
    seed : the run's seed; each anchor draws from its own stream of it, so a part equals its rows of
        the whole table.
    anchors : the positions of the anchors this job mines (None: every track of the split).
    """
    counts = write_triplet_tables(
        oracle,
        track_ids,
        outputs={strategy: output},
        n_positives=n_positives,
        n_negatives=n_negatives,
        seed=seed,
        anchors=anchors,
    )
    return counts[strategy]


def write_triplet_tables(
    oracle: Oracle,
    track_ids: list[str],
    *,
    outputs: dict[str, str | Path],
    n_positives: int,
    n_negatives: int,
    seed: int,
    anchors: range | None = None,
) -> dict[str, int]:
    """Mine every anchor of the set with each strategy of ``outputs`` and write its table: ``anchor``,
    ``positive``, ``negative`` (dictionary-encoded ids).

    An anchor's S against the set is computed once for all the strategies: at scale, scoring is most of
    the cost of mining (bench/scale.py).

    Parameters
    ----------
    oracle : S over the set's tag vectors, in the order of ``track_ids``.
    track_ids : the set's tracks (the train split).
    outputs : strategy -> its Parquet triplet table. A strategy is ``neighbors``, ``uniform`` or
        ``distance`` (paper §3.3): how negatives are drawn among the tracks ranked after each positive.
    n_positives, n_negatives : Np and Nn, counts of tracks (the paper's 15 and 250 are the workflow's
        defaults; :func:`trackrank.workflow_settings.mining_settings` reads them from its config).
    seed : each anchor's random stream is (seed, strategy, anchor), so a table is the same in any order
        and whatever other strategies are mined beside it.
    anchors : the anchors (positions in ``track_ids``) this job mines, one part of each table
        (:func:`trackrank.rank.parts.part_anchors`); default all. Np and Nn are taken from the whole set.

    Returns
    -------
    strategy -> the number of triplets written.
    """
    for strategy in outputs:
        check_strategy(strategy)
    n = len(track_ids)
    anchors = range(n) if anchors is None else anchors
    n_positives, n_negatives = _counts(n_positives, n_negatives, n, strategies=list(outputs))
    ids = pa.array(track_ids, pa.string())
    totals = dict.fromkeys(outputs, 0)
    with ExitStack() as stack:
        writers = {strategy: _triplet_writer(stack, output) for strategy, output in outputs.items()}
        for start in range(0, len(anchors), CHUNK_ANCHORS):
            rows = _mined_rows(
                oracle, anchors[start : start + CHUNK_ANCHORS], list(outputs), n_positives, n_negatives, seed
            )
            for strategy, columns in rows.items():
                totals[strategy] += _write_rows(writers[strategy], columns, ids)
            log.info(
                "mined %d / %d anchors of %d: %s",
                min(start + CHUNK_ANCHORS, len(anchors)),
                len(anchors),
                n,
                ", ".join(f"{strategy} {total} triplets" for strategy, total in totals.items()),
            )
    _warn_if_short(totals, len(anchors), n_positives, n_negatives)
    return totals


def _counts(n_positives: int, n_negatives: int, n: int, *, strategies: list[str]) -> tuple[int, int]:
    """Np and Nn (:func:`whole_count`) for a set of ``n`` tracks, logged; a warning where the set cannot
    supply Np positives to an anchor."""
    n_positives = whole_count(n_positives, key="mining.n_positives")
    n_negatives = whole_count(n_negatives, key="mining.n_negatives")
    log.info("%s: Np = %d, Nn = %d for a split of %d tracks", ", ".join(strategies), n_positives, n_negatives, n)
    if n_positives > max(n - 2, 0):  # an anchor's positives leave at least one other track to be a negative
        log.warning(
            "mining.n_positives = %d is more than a split of %d tracks can supply (at most %d: the anchor "
            "and one negative are not positives); %s mining takes %d positives per anchor",
            n_positives,
            n,
            max(n - 2, 0),
            ", ".join(strategies),
            max(n - 2, 0),
            extra=CONSOLE,
        )
    return n_positives, n_negatives


def _triplet_writer(stack: ExitStack, output: str | Path) -> pq.ParquetWriter:
    """A Parquet writer of one triplet table, written atomically when ``stack`` closes without error."""
    tmp = stack.enter_context(atomic_output(output))
    return stack.enter_context(pq.ParquetWriter(tmp, TRIPLET_SCHEMA, compression="zstd"))


def _mined_rows(
    oracle: Oracle, anchors: range, strategies: list[str], n_positives: int, n_negatives: int, seed: int
) -> dict[str, tuple[list, list, list]]:
    """Strategy -> the (anchor, positive, negative) index arrays of ``anchors``, one array per anchor: each
    anchor's S and positives computed once for every strategy, its negatives from its own random stream."""
    rows = {strategy: ([], [], []) for strategy in strategies}
    for anchor in anchors:
        shared = anchor_positives(oracle.scores(anchor), anchor, n_positives)
        for strategy, (block, positives, negatives) in rows.items():
            pos, neg = anchor_negatives(
                shared, strategy, n_negatives=n_negatives, rng=anchor_rng(seed, strategy, anchor)
            )
            block.append(np.full(len(pos), anchor))
            positives.append(pos)
            negatives.append(neg)
    return rows


def _write_rows(writer: pq.ParquetWriter, columns: tuple[list, list, list], ids: pa.Array) -> int:
    """One strategy's mined rows of a chunk of anchors, written as track ids; the number of triplets."""
    block, positives, negatives = columns
    chunk = np.concatenate(block) if block else np.zeros(0, np.int64)
    if len(chunk):
        writer.write_table(
            pa.table(
                {
                    "anchor": dictionary_column(chunk, ids),
                    "positive": dictionary_column(np.concatenate(positives), ids),
                    "negative": dictionary_column(np.concatenate(negatives), ids),
                },
                schema=TRIPLET_SCHEMA,
            )
        )
    return len(chunk)


def _warn_if_short(totals: dict[str, int], n_anchors: int, n_positives: int, n_negatives: int) -> None:
    """A warning for each table with fewer triplets than anchors x Np x Nn (a small split)."""
    expected = n_anchors * n_positives * n_negatives
    for strategy, total in totals.items():
        if total < expected:
            log.warning(
                "%s: %d triplets instead of anchors x Np x Nn = %d x %d x %d = %d: the split has too few tracks "
                "to supply every anchor (see trackrank.rank.mining)",
                strategy,
                total,
                n_anchors,
                n_positives,
                n_negatives,
                expected,
            )
