"""The oracle similarity S (paper §3.1): two tag-likelihood vectors in [0,1]^m -> a score >= 0.

The paper's S is private ("a non-linear combination of weighted tags"), so three
built-ins are offered, with per-tag weights ``w`` (``tags_meta.csv``):

``weighted_cosine``
    S(q, o) = sum_t w_t q_t o_t / (sqrt(sum_t w_t q_t^2) * sqrt(sum_t w_t o_t^2)), 0 if either is all-zero.
``soft_jaccard``
    S(q, o) = sum_t w_t min(q_t, o_t) / sum_t w_t max(q_t, o_t), 0 if both are all-zero.
``category_geometric``
    The soft Jaccard J_c of each category c (Genre, Recording, Mood, ...), combined by a
    weighted geometric mean with category weights W_c:
    S(q, o) = exp(sum_c W_c log(eps + J_c) / sum_c W_c) - eps, over the categories where
    q or o has a tag. Non-linear: agreeing on Genre but on nothing else scores low.

A user's own S is named in config as ``module:function``; it is called as
``function(query, others)`` with ``query`` of shape (m,) and ``others`` of shape (n, m)
and must return n finite scores >= 0.

:class:`Oracle` scores queries against a fixed set of tracks. The built-ins use the
sparsity of professional tags (a few tags of hundreds per track): only the query's
tags enter the min/max sums, so one query against N tracks costs O(N x tags per track).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

import numpy as np

from trackrank.errors import SimilarityError

BUILTINS = ("category_geometric", "soft_jaccard", "weighted_cosine")
EPSILON = 0.05
#: Scores are rounded to this many decimals (see :meth:`Oracle.scores`).
DECIMALS = 10
#: A query is scored against this many tracks at a time: at 10^5 tracks, twice as fast as all at once
#: (bench/scale.py), the same values.
TILE_TRACKS = 8192


def weighted_cosine(query: np.ndarray, others: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted cosine of ``query`` (m,) with each row of ``others`` (n, m); reference formula."""
    dot = others @ (weights * query)
    norms = np.sqrt(np.maximum(others**2 @ weights, 0)) * np.sqrt(np.maximum((weights * query**2).sum(), 0))
    return np.divide(dot, norms, out=np.zeros_like(dot, dtype=float), where=norms > 0)


def soft_jaccard(query: np.ndarray, others: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Soft weighted Jaccard sum w min / sum w max; reference formula."""
    low = np.minimum(query, others) @ weights
    high = np.maximum(query, others) @ weights
    return np.divide(low, high, out=np.zeros_like(low, dtype=float), where=high > 0)


def category_geometric(
    query: np.ndarray,
    others: np.ndarray,
    weights: np.ndarray,
    categories: np.ndarray,
    category_weights: np.ndarray,
    eps: float = EPSILON,
) -> np.ndarray:
    """Weighted geometric mean of per-category soft Jaccards; reference formula.

    ``categories`` gives each tag's category index; ``category_weights`` one weight per category.
    """
    n_categories = len(category_weights)
    log_sum = np.zeros(len(others))
    weight_sum = np.zeros(len(others))
    for c in range(n_categories):
        tags = categories == c
        low = np.minimum(query[tags], others[:, tags]) @ weights[tags]
        high = np.maximum(query[tags], others[:, tags]) @ weights[tags]
        present = high > 0
        jaccard = np.divide(low, high, out=np.zeros_like(low), where=present)
        log_sum += np.where(present, category_weights[c] * np.log(eps + jaccard), 0.0)
        weight_sum += np.where(present, category_weights[c], 0.0)
    return _geometric_mean(log_sum, weight_sum, eps)


def _row_blocks(n: int, size: int = 65536) -> list[slice]:
    """Row blocks for per-track sums: a temporary per block, not one the size of the matrix."""
    return [slice(start, start + size) for start in range(0, n, size)] or [slice(0, 0)]


def _geometric_mean(log_sum: np.ndarray, weight_sum: np.ndarray, eps: float) -> np.ndarray:
    """exp(log_sum / weight_sum) - eps, exactly 0 where nothing agrees (or no category is present)."""
    mean = np.divide(log_sum, weight_sum, out=np.full_like(log_sum, np.log(eps)), where=weight_sum > 0)
    scores = np.exp(mean) - eps
    return np.where(scores > 1e-12, scores, 0.0)


def load_function(spec: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Resolve ``module:function`` to a callable, or say what is wrong with the name."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise SimilarityError(f"similarity.function '{spec}' must look like 'module:function'")
    if os.getcwd() not in sys.path:  # a my_similarity.py beside the Snakefile is found too
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise SimilarityError(f"similarity.function '{spec}': cannot import module '{module_name}': {error}") from error
    function = getattr(module, attribute, None)
    if not callable(function):
        raise SimilarityError(f"similarity.function '{spec}': module '{module_name}' has no function '{attribute}'")
    return function


class Oracle:
    """S between any track of a set and all tracks of that set.

    Parameters
    ----------
    tags : np.ndarray, shape (n_tracks, m), likelihoods in [0, 1].
    weights : np.ndarray, shape (m,), tag weights >= 0.
    categories : sequence of m category names (for ``category_geometric``).
    name : one of :data:`BUILTINS`, used when ``function`` is None.
    function : ``module:function`` of a user's S.
    category_weights : category name -> weight (default 1).
    """

    def __init__(
        self,
        tags: np.ndarray,
        weights: np.ndarray,
        categories,
        name: str = "category_geometric",
        function: str | None = None,
        category_weights: dict[str, float] | None = None,
        eps: float = EPSILON,
    ):
        # One copy of the matrix, tag-major (a tag's row contiguous, as the kernels read it); ``tags`` is a
        # view of it. A tag-major input (a transposed array, as split_oracle passes) is not copied.
        self._columns = np.ascontiguousarray(np.asarray(tags, dtype=np.float64).T)  # (m, n_tracks)
        self.tags = self._columns.T
        self.weights = np.asarray(weights, dtype=np.float64)
        self.n_tracks, self.n_tags = self.tags.shape
        self.label = function or name
        self.function = function
        self.categories = list(categories)
        self.category_weight_map = dict(category_weights or {})
        self.eps = eps
        names = list(dict.fromkeys(categories))
        self.category_index = np.array([names.index(c) for c in categories])
        unknown = set(category_weights or {}) - set(names)
        if unknown:
            raise SimilarityError(f"similarity.category_weights names unknown categories: {sorted(unknown)}")
        self.category_weights = np.array([(category_weights or {}).get(c, 1.0) for c in names], dtype=float)
        self.user_function = load_function(function) if function else None
        if self.user_function is None and name not in BUILTINS:
            raise SimilarityError(f"similarity.name '{name}' is not one of {', '.join(BUILTINS)}")
        self.name = name
        # Per-track sums that the sparse kernels need: sum_t w_t o_t per category, and the norms; computed
        # by blocks of rows, without a temporary the size of the matrix.
        self._one_hot = np.eye(len(names))[self.category_index]  # (m, n_categories)
        blocks = _row_blocks(self.n_tracks)
        self._category_mass = np.concatenate(  # (n_tracks, n_categories)
            [np.multiply(self.tags[rows], self.weights, order="C") @ self._one_hot for rows in blocks]
        )
        self._norms = np.concatenate([np.sqrt(np.square(self.tags[rows], order="C") @ self.weights) for rows in blocks])

    def with_tags(self, tags: np.ndarray) -> Oracle:
        """The same S (weights, categories, function) over other tag vectors, e.g. estimated ones."""
        return Oracle(
            tags,
            self.weights,
            self.categories,
            name=self.name,
            function=self.function,
            category_weights=self.category_weight_map,
            eps=self.eps,
        )

    def scores(self, query: int) -> np.ndarray:
        """S(track ``query``, every track), shape (n_tracks,), float64 >= 0.

        Rounded to :data:`DECIMALS` places, so that scores equal in exact arithmetic are
        equal here too and ties fall back on track order, whatever the summation order.
        """
        return np.round(self._scores(query), DECIMALS)

    def _scores(self, query: int) -> np.ndarray:
        vector = self.tags[query]
        if self.user_function is not None:
            return self._checked_user_scores(vector)
        tags = np.flatnonzero(vector)
        scores = np.empty(self.n_tracks)
        for start in range(0, self.n_tracks, TILE_TRACKS):  # a tile's temporaries stay in the CPU's cache
            tile = slice(start, start + TILE_TRACKS)
            scores[tile] = self._tile_scores(query, vector, tags, tile)
        return scores

    def _tile_scores(self, query: int, vector: np.ndarray, tags: np.ndarray, tile: slice) -> np.ndarray:
        """S(query, the tracks of ``tile``) by the built-in formula; each track's score is computed
        alone, so tiling changes no value."""
        columns = self._columns[tags, tile]
        if self.name == "weighted_cosine":
            dot = (self.weights[tags] * vector[tags]) @ columns
            norms = self._norms[tile] * self._norms[query]
            return np.divide(dot, norms, out=np.zeros(len(dot)), where=norms > 0)
        # Only the query's tags have min(q_t, o_t) > 0; sum w max = sum w q + sum w o - sum w min.
        low_by_tag = self.weights[tags, None] * np.minimum(vector[tags, None], columns)
        mass = self._category_mass[tile]
        if self.name == "soft_jaccard":
            low = low_by_tag.sum(axis=0)
            high = mass.sum(axis=1) + self._category_mass[query].sum() - low
            return np.divide(low, high, out=np.zeros(len(low)), where=high > 0)
        low = self._one_hot[tags].T @ low_by_tag  # (n_categories, tracks of the tile)
        high = mass.T + self._category_mass[query][:, None] - low
        present = high > 0
        jaccard = np.divide(low, high, out=np.zeros_like(low), where=present)
        cw = self.category_weights[:, None]
        log_sum = (np.where(present, cw * np.log(self.eps + jaccard), 0.0)).sum(axis=0)
        weight_sum = (np.where(present, cw, 0.0)).sum(axis=0)
        return _geometric_mean(log_sum, weight_sum, self.eps)

    def _checked_user_scores(self, vector: np.ndarray) -> np.ndarray:
        try:
            scores = np.asarray(self.user_function(vector, self.tags), dtype=np.float64)
        except Exception as error:
            raise SimilarityError(f"similarity.function '{self.label}' failed: {error!r}") from error
        if scores.shape != (self.n_tracks,):
            raise SimilarityError(
                f"similarity.function '{self.label}' returned shape {scores.shape}; "
                f"expected ({self.n_tracks},): one score per row of 'others'"
            )
        if not np.all(np.isfinite(scores)):
            raise SimilarityError(f"similarity.function '{self.label}' returned NaN or infinite scores")
        if (scores < 0).any():
            raise SimilarityError(
                f"similarity.function '{self.label}' returned negative scores (min {scores.min():g}); S must be >= 0"
            )
        return scores

    def reference_scores(self, query: int) -> np.ndarray:
        """The same scores from the plain formulas (slow; for tests and checks)."""
        vector = self.tags[query]
        if self.user_function is not None:
            scores = self._checked_user_scores(vector)
        elif self.name == "weighted_cosine":
            scores = weighted_cosine(vector, self.tags, self.weights)
        elif self.name == "soft_jaccard":
            scores = soft_jaccard(vector, self.tags, self.weights)
        else:
            scores = category_geometric(
                vector, self.tags, self.weights, self.category_index, self.category_weights, self.eps
            )
        return np.round(scores, DECIMALS)


def split_oracle(
    catalog,
    split: str,
    *,
    name: str = "category_geometric",
    function: str | None = None,
    category_weights: dict[str, float] | None = None,
) -> tuple[list[str], Oracle]:
    """The track ids of one split of a validated catalog (:class:`trackrank.data.catalog.CatalogFiles`) and the
    Oracle over them.

    Parameters
    ----------
    catalog : the validated catalog's files (tracks, tags, taxonomy).
    split : ``train``, ``val`` or ``test``.
    name : a built-in S: ``category_geometric``, ``soft_jaccard`` or ``weighted_cosine``.
    function : ``module:function``, a user's own S (overrides ``name``).
    category_weights : category -> weight >= 0 in ``category_geometric`` (a category not named: 1).
    """
    from trackrank.data.catalog import load_split_tags

    track_ids, tags, taxonomy = load_split_tags(catalog, split)
    oracle = Oracle(
        tags,
        taxonomy["weight"].to_numpy(float),
        taxonomy["category"].tolist(),
        name=name,
        function=function,
        category_weights=category_weights,
    )
    return track_ids, oracle
