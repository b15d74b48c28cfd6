"""Triplet mining from ranked lists (paper §3.2, Fig. 1 bottom).

For each anchor t of a split and each positive r_i(t) among its first Np ranked
tracks, Nn negatives are chosen among the tracks ranked *after* the positive:

``neighbors``
    the Nn tracks right after the positive, r_{i+1}(t) ... r_{i+Nn}(t);
``uniform``
    Nn independent draws, uniform over the whole list after the positive;
``distance``
    Nn independent draws over the whole list after the positive, P(n) proportional to S(t, n).

The whole list is used, not a stored top K: each anchor's S against the split is
recomputed, one anchor at a time (memory O(N)). Draws over "the list after r_i" are
made by rejection: draw over all others, redraw those ranked at or before the
positive; where that region is nearly all of the mass, draw from it directly. Both
give exactly the stated distribution.

What a small catalog cannot supply: an anchor gets min(Np, N - 2) positives (one
track must remain after the positive); ``neighbors`` then gets min(Nn, N - 1 - i)
negatives for the positive at rank i; ``uniform`` and ``distance`` always draw Nn
(with replacement, so a short list repeats negatives). If every track after the
positive has S = 0, ``distance`` draws uniformly there.

Every anchor has its own random stream (seed, strategy, anchor), so the table is
the same bit for bit for the same config, whatever the chunking.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from trackrank.ranking import dictionary_column, top_ranked
from trackrank.similarity import Oracle, add_similarity_arguments, split_oracle

log = logging.getLogger(__name__)

STRATEGIES = ("neighbors", "uniform", "distance")
TRIPLET_SCHEMA = pa.schema([(name, pa.dictionary(pa.int32(), pa.string()))
                            for name in ("anchor", "positive", "negative")])
#: Below this share of the mass left after the positive, draw from it directly instead of rejecting.
MIN_ACCEPTANCE = 0.2
CHUNK_ANCHORS = 256


def _draw_after(weights: np.ndarray, rank_of: np.ndarray, ranking: np.ndarray, i: int, size: int,
                rng: np.random.Generator) -> np.ndarray:
    """``size`` draws over tracks ranked after position ``i``, P(n) proportional to ``weights[n]``.

    ``weights`` is 0 for the anchor; ``rank_of[n]`` is n's rank (large when not in ``ranking``).
    """
    total = weights.sum()
    after = total - weights[ranking[: i + 1]].sum()
    if after <= total * MIN_ACCEPTANCE:
        restricted = weights.copy()
        restricted[ranking[: i + 1]] = 0.0
        cdf = np.cumsum(restricted)
        return np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")
    cdf = np.cumsum(weights)
    draws = np.searchsorted(cdf, rng.random(size) * total, side="right")
    rejected = rank_of[draws] <= i
    while rejected.any():
        draws[rejected] = np.searchsorted(cdf, rng.random(int(rejected.sum())) * total, side="right")
        rejected = rank_of[draws] <= i
    return draws


def mine_anchor(scores: np.ndarray, anchor: int, strategy: str, n_positives: int = 15,
                n_negatives: int = 250, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The (positive, negative) pairs of one anchor.

    Parameters
    ----------
    scores : np.ndarray, shape (N,): S(anchor, every track of the split).
    anchor : the anchor's index in the split.

    Returns
    -------
    positives, negatives : np.ndarray of track indices, same length (one row per triplet).
    """
    n = len(scores)
    n_pos = min(n_positives, n - 2)
    if n_pos <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if strategy == "neighbors":
        ranking = top_ranked(scores, anchor, n_pos + n_negatives)
        negatives = [ranking[i + 1: i + 1 + n_negatives] for i in range(n_pos)]
        positives = [np.full(len(neg), ranking[i]) for i, neg in enumerate(negatives)]
        return np.concatenate(positives), np.concatenate(negatives)
    if strategy not in ("uniform", "distance"):
        raise ValueError(f"unknown mining strategy '{strategy}' (expected one of {', '.join(STRATEGIES)})")
    ranking = top_ranked(scores, anchor, n_pos)
    rank_of = np.full(n, n, dtype=np.int64)
    rank_of[ranking] = np.arange(len(ranking))
    uniform = np.ones(n)
    uniform[anchor] = 0.0
    weights = uniform
    if strategy == "distance":
        weights = np.asarray(scores, dtype=np.float64).copy()
        weights[anchor] = 0.0
    negatives = []
    for i in range(n_pos):
        use = weights
        if strategy == "distance" and weights.sum() - weights[ranking[: i + 1]].sum() <= 0:
            use = uniform  # nothing after the positive has S > 0
        negatives.append(_draw_after(use, rank_of, ranking, i, n_negatives, rng))
    return np.repeat(ranking, n_negatives), np.concatenate(negatives)


def anchor_rng(seed: int, strategy: str, anchor: int) -> np.random.Generator:
    """The random stream of one anchor: independent of chunking and of the other anchors."""
    return np.random.default_rng([seed, STRATEGIES.index(strategy), anchor])


def write_triplets(oracle: Oracle, track_ids: list[str], output: str | Path, strategy: str,
                   n_positives: int = 15, n_negatives: int = 250, seed: int = 0) -> int:
    """Mine every anchor of the set and write ``anchor``, ``positive``, ``negative`` (dictionary-encoded ids).

    Returns the number of triplets written.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown mining strategy '{strategy}' (expected one of {', '.join(STRATEGIES)})")
    n = len(track_ids)
    ids = pa.array(track_ids, pa.string())
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".tmp")
    total = 0
    with pq.ParquetWriter(tmp, TRIPLET_SCHEMA, compression="zstd") as writer:
        for start in range(0, n, CHUNK_ANCHORS):
            anchors, positives, negatives = [], [], []
            for anchor in range(start, min(start + CHUNK_ANCHORS, n)):
                pos, neg = mine_anchor(oracle.scores(anchor), anchor, strategy, n_positives, n_negatives,
                                       anchor_rng(seed, strategy, anchor))
                anchors.append(np.full(len(pos), anchor))
                positives.append(pos)
                negatives.append(neg)
            chunk = np.concatenate(anchors)
            if len(chunk):
                writer.write_table(pa.table({"anchor": dictionary_column(chunk, ids),
                                             "positive": dictionary_column(np.concatenate(positives), ids),
                                             "negative": dictionary_column(np.concatenate(negatives), ids)},
                                            schema=TRIPLET_SCHEMA))
            total += len(chunk)
            log.info("%s: mined %d / %d anchors, %d triplets", strategy, min(start + CHUNK_ANCHORS, n), n, total)
    tmp.replace(output)
    expected = n * n_positives * n_negatives
    if total < expected:
        log.warning("%s: %d triplets instead of N x Np x Nn = %d x %d x %d = %d: the split has too few tracks "
                    "to supply every anchor (see trackrank.mining)", strategy, total, n, n_positives,
                    n_negatives, expected)
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Mine triplets from the oracle rankings of one split.")
    parser.add_argument("--catalog-dir", default="results/catalog", help="output folder of trackrank.catalog")
    parser.add_argument("--split", default="train", choices=["train", "val", "test"])
    parser.add_argument("--strategy", required=True, choices=STRATEGIES)
    parser.add_argument("--output", required=True)
    parser.add_argument("--n-positives", type=int, default=15)
    parser.add_argument("--n-negatives", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    add_similarity_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    track_ids, oracle = split_oracle(args.catalog_dir, args.split, name=args.similarity, function=args.function)
    write_triplets(oracle, track_ids, args.output, args.strategy, args.n_positives, args.n_negatives, args.seed)


if __name__ == "__main__":
    main()
