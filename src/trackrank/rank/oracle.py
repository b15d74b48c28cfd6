"""Oracle rankings R^S(t) (paper §3.1): every track's ranking of the others of its split.

For each anchor, S against every track of the split is computed (memory O(N) per
anchor, O(chunk x K) for the buffered output), the others are ordered by decreasing S
with ties broken by track order, and only the top K are stored. A job ranks one block of
anchors (:mod:`trackrank.rank.parts`). The mean score at each rank is kept too, the paper's
Fig. 1 (top), over every anchor of a split of up to :data:`CURVE_ANCHORS` tracks and over
evenly spaced anchors of a larger one (sorting N scores per anchor would cost more than ranking).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trackrank.atomic import atomic_output
from trackrank.rank.similarity import Oracle

log = logging.getLogger(__name__)

#: Anchors whose rows are buffered before a Parquet row group is written.
CHUNK_ANCHORS = 256
#: At most about this many anchors of a split enter the similarity-vs-rank curve.
CURVE_ANCHORS = 4096


def top_ranked(scores: np.ndarray, anchor: int, k: int) -> np.ndarray:
    """Indices of the ``k`` tracks most similar to ``anchor`` (itself excluded).

    Decreasing score; equal scores keep track order, so the ranking is deterministic.
    Costs O(N) plus O(k log k): the full list is never sorted.
    """
    keys = scores.astype(np.float64, copy=True)
    keys[anchor] = -np.inf
    n_others = len(keys) - 1
    k = min(k, n_others)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k < n_others:
        threshold = np.partition(keys, len(keys) - k)[len(keys) - k]  # the k-th largest score
        above = np.flatnonzero(keys > threshold)
        ties = np.flatnonzero(keys == threshold)[: k - len(above)]
        chosen = np.concatenate([above, ties])
    else:
        chosen = np.delete(np.arange(len(keys)), anchor)
    return chosen[np.lexsort((chosen, -keys[chosen]))]


def dictionary_column(indices: np.ndarray, track_ids: pa.Array) -> pa.DictionaryArray:
    """Track ids as a dictionary-encoded column: int32 indices into the split's ids."""
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32)), track_ids)


RANKING_SCHEMA = pa.schema(
    [
        ("anchor", pa.dictionary(pa.int32(), pa.string())),
        ("rank", pa.int32()),
        ("other", pa.dictionary(pa.int32(), pa.string())),
        ("score", pa.float32()),
    ]
)


@dataclass
class RankingSummary:
    """Sums for the similarity-vs-rank curve over some of a split's anchors (Fig. 1, top)."""

    score_sum: np.ndarray  # (N - 1,): at each rank, the sum of S over the curve's anchors
    n_anchors: int  # how many anchors the sums hold

    @property
    def mean_score_by_rank(self) -> np.ndarray:
        return self.score_sum / max(self.n_anchors, 1)


def curve_anchor(anchor: int, n: int) -> bool:
    """Whether ``anchor`` of a split of ``n`` tracks enters the curve (the same in every part)."""
    return anchor % max(1, math.ceil(n / CURVE_ANCHORS)) == 0


def write_rankings(
    oracle: Oracle, track_ids: list[str], *, output: str | Path, top_k: int = 300, anchors: range | None = None
) -> RankingSummary:
    """Rank tracks of the set (``anchors``, default all) against all others; write the top ``top_k`` of each.

    The Parquet table has ``anchor``, ``rank`` (1-based), ``other`` (track ids,
    dictionary-encoded) and ``score`` (float32).

    Parameters
    ----------
    oracle : S over the set's tag vectors, in the order of ``track_ids``.
    track_ids : the set's tracks (one split).
    output : the Parquet table.
    top_k : tracks kept per anchor, >= 1 (all others when the set is smaller); mining draws its positives
        from the first ``mining.n_positives`` and online mining its ranks from these.
    anchors : the anchors (positions in ``track_ids``) this job ranks, one part of the table
        (:func:`trackrank.rank.parts.part_anchors`); the others are still ranked against.
    """
    n = len(track_ids)
    anchors = range(n) if anchors is None else anchors
    ids = pa.array(track_ids, pa.string())
    curve = np.zeros(max(n - 1, 0))
    in_curve = 0
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(output) as tmp, pq.ParquetWriter(tmp, RANKING_SCHEMA, compression="zstd") as writer:
        for start in range(0, len(anchors), CHUNK_ANCHORS):
            block, ranks, others, scores = [], [], [], []
            for anchor in anchors[start : start + CHUNK_ANCHORS]:
                s = oracle.scores(anchor)
                top = top_ranked(s, anchor, top_k)
                block.append(np.full(len(top), anchor))
                ranks.append(np.arange(1, len(top) + 1))
                others.append(top)
                scores.append(s[top])
                if curve_anchor(anchor, n):
                    curve += np.sort(np.delete(s, anchor))[::-1]
                    in_curve += 1
            if block:
                writer.write_table(
                    pa.table(
                        {
                            "anchor": dictionary_column(np.concatenate(block), ids),
                            "rank": pa.array(np.concatenate(ranks).astype(np.int32)),
                            "other": dictionary_column(np.concatenate(others), ids),
                            "score": pa.array(np.concatenate(scores).astype(np.float32)),
                        },
                        schema=RANKING_SCHEMA,
                    )
                )
            log.info("ranked %d / %d anchors of %d", min(start + CHUNK_ANCHORS, len(anchors)), len(anchors), n)
    return RankingSummary(curve, in_curve)


def write_curve(summary: RankingSummary, path: str | Path) -> None:
    """``rank``, ``score_sum``, ``anchors``: one part's sums for the similarity-vs-rank curve."""
    curve = pd.DataFrame(
        {
            "rank": np.arange(1, len(summary.score_sum) + 1),
            "score_sum": summary.score_sum,
            "anchors": summary.n_anchors,
        }
    )
    with atomic_output(path) as tmp:
        curve.to_csv(tmp, index=False)


def read_curve(paths: list[str | Path]) -> pd.DataFrame:
    """``rank``, ``mean_score``: the mean S of the r-th ranked track, from every part's sums."""
    parts = [pd.read_csv(p) for p in paths]
    total = sum(int(part["anchors"].iloc[0]) if len(part) else 0 for part in parts)
    score_sum = np.sum([part["score_sum"].to_numpy() for part in parts], axis=0)
    return pd.DataFrame({"rank": parts[0]["rank"], "mean_score": score_sum / max(total, 1)})
