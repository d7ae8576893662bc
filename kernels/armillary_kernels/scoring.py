"""Uncertainty scores of one model and a fused, parallel top-k over a pool of rows.

Every score is "higher means more informative" and is computed in float64, whatever
the input dtype:

``least-confidence``
    ``1 - max_c P[i, c]``
``margin``
    ``1 - (p_best - p_second)``, the two largest probabilities of the row.
``entropy``
    ``-sum_c P[i, c] ln P[i, c]`` (natural log; ``0 ln 0 = 0``; rows are not
    renormalised).

NaN policy: a row with a NaN in any column (or, for the entropy, a negative entry)
gets a NaN score, and :func:`top_k` never picks it, as if its score were ``-inf`` but
without counting it as eligible.

Ranking: rows are ordered by score descending, then by a tie-break hash descending.
The hash is ``splitmix64(global_row_index XOR splitmix64(random_state))``; it is a
bijection of the row index, so the order is total, equal scores come out in a
pseudo-random order spread uniformly over the catalogue, and the order does not depend
on how the pool was cut into chunks (see :func:`merge_top_k`).

The compiled kernels are private (:mod:`armillary_kernels._measures`,
:mod:`armillary_kernels._select`); the public functions check their arguments.  Each
kernel has a plain-numpy twin in :mod:`armillary_kernels._reference`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np

from . import _validate
from ._measures import ENTROPY, LEAST_CONFIDENCE, MARGIN
from ._prune import entropy_bound_table
from ._select import in_blocks, merge, run_block, top_k_blocks

__all__ = ["entropy", "least_confidence", "margin", "merge_top_k", "scores", "top_k"]

METHODS = {
    "margin": MARGIN,
    "least-confidence": LEAST_CONFIDENCE,
    "least_confidence": LEAST_CONFIDENCE,
    "entropy": ENTROPY,
}

_NO_TABLE = np.zeros(1, dtype=np.float64)


@functools.lru_cache(maxsize=64)
def bound_table(C: int) -> np.ndarray:
    """The entropy bounds of C classes (cached; shared with the committee measures)."""
    return entropy_bound_table(C)


def _table(code: int, C: int) -> np.ndarray:
    return bound_table(C) if code == ENTROPY else _NO_TABLE


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)


_NO_HEAP = (np.zeros(0), np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64))
_NO_MASK = np.zeros(0, dtype=np.bool_)
_NO_SCORES = np.zeros(0, dtype=np.float64)


def run_scores(P3: np.ndarray, code: int, table: np.ndarray) -> np.ndarray:
    """Scores of a validated (M, N, C) array with measure ``code`` (shared with committee)."""
    M, n, C = P3.shape
    out = np.empty(n, dtype=np.float64)
    flat = P3.reshape(-1)

    measure = (flat, M, n, C)
    no_selection = (_NO_MASK, False, 0, np.uint64(0), *_NO_HEAP, 0)

    def kernel(_b: int, start: int, stop: int) -> None:
        run_block(*measure, start, stop, code, table, out, *no_selection)

    if n:
        in_blocks(kernel, n, _validate.n_blocks(n))
    return out


def run_top_k(P3, code, table, k, exclude, random_state, offset):
    """Validate the selection arguments, then run the fused top-k on (M, N, C) ``P3``."""
    k = _validate.integer(k, "k", 1)
    M, n, C = P3.shape
    mask, has_exclude = _validate.exclude_mask(exclude, n)
    seed = _validate.random_state(random_state)
    offset = _validate.integer(offset, "offset", 0)
    if n == 0:
        return _empty()
    flat = P3.reshape(-1)

    measure = (flat, M, n, C)
    selection = (mask, has_exclude, offset, seed)

    def block(start: int, stop: int, hs, hh, hi, count: int) -> int:
        heap = (hs, hh, hi, count)
        return run_block(*measure, start, stop, code, table, _NO_SCORES, *selection, *heap)

    return top_k_blocks(block, n, k, _validate.n_blocks(n))


def scores(P, method: str = "margin") -> np.ndarray:
    """Score every row of ``P`` with a named measure.

    Parameters
    ----------
    P : array_like
        Class probabilities, shape (N, C) with C >= 2, float32 or float64.
    method : {"margin", "least-confidence", "least_confidence", "entropy"}
        The measure (see the module docstring).

    Returns
    -------
    numpy.ndarray
        Scores, float64, shape (N,); higher is more informative.  NaN rows score NaN.

    Raises
    ------
    ValueError
        If ``P`` is not 2-D, has fewer than 2 columns or is not float32/float64, or if
        ``method`` is unknown.
    """
    code = _validate.method(method, METHODS)
    P = _validate.probabilities(P)
    return run_scores(P[None], code, _NO_TABLE)


def least_confidence(P) -> np.ndarray:
    """Least-confidence score of each row: ``1 - max_c P[i, c]``.

    Parameters
    ----------
    P : array_like
        Class probabilities, shape (N, C) with C >= 2, float32 or float64.

    Returns
    -------
    numpy.ndarray
        Scores, float64, shape (N,); higher is more informative.  Rows holding a NaN
        score NaN.

    Raises
    ------
    ValueError
        If ``P`` is not 2-D, has fewer than 2 columns, or is not float32/float64.
    """
    return scores(P, "least-confidence")


def margin(P) -> np.ndarray:
    """Margin score of each row: ``1 - (p_best - p_second)``.

    Parameters
    ----------
    P : array_like
        Class probabilities, shape (N, C) with C >= 2, float32 or float64.

    Returns
    -------
    numpy.ndarray
        Scores, float64, shape (N,); higher is more informative.  Rows holding a NaN
        score NaN.

    Raises
    ------
    ValueError
        If ``P`` is not 2-D, has fewer than 2 columns, or is not float32/float64.
    """
    return scores(P, "margin")


def entropy(P) -> np.ndarray:
    """Entropy of each row: ``-sum_c P[i, c] ln P[i, c]``, with ``0 ln 0 = 0``.

    Rows are not renormalised (``scipy.stats.entropy`` divides by the row sum first;
    on rows that sum to 1 the two agree to rounding).

    Parameters
    ----------
    P : array_like
        Class probabilities, shape (N, C) with C >= 2, float32 or float64.

    Returns
    -------
    numpy.ndarray
        Scores, float64, shape (N,); higher is more informative.  Rows holding a NaN
        or a negative entry score NaN.

    Raises
    ------
    ValueError
        If ``P`` is not 2-D, has fewer than 2 columns, or is not float32/float64.
    """
    return scores(P, "entropy")


def top_k(
    P,
    k: int,
    method: str = "margin",
    exclude=None,
    random_state: int = 0,
    offset: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick the ``k`` most informative rows of ``P`` in one fused parallel pass.

    Scores are computed on the fly, a tile of rows at a time (no N-length score array
    is built); each numba thread takes chunks of rows as it gets through the last one
    and keeps a running top-k of all it has scored, and the threads' top-k are merged.

    Parameters
    ----------
    P : array_like
        Class probabilities, shape (N, C) with C >= 2, float32 or float64.  A
        non-contiguous or byte-swapped array is copied first.
    k : int
        Number of rows wanted (>= 1).  Fewer come back if fewer rows are eligible.
    method : {"margin", "least-confidence", "least_confidence", "entropy"}
        Score to rank by (see the module docstring).
    exclude : array_like of bool, shape (N,), optional
        True marks a row never to pick (already labelled, filtered out...).
    random_state : int
        Seed of the tie-break hash.  Use the same value for every chunk of a pool.
    offset : int
        Global row index of ``P[0]``, when ``P`` is one chunk of a larger pool.
        Returned indices are global and ties are broken on the global index.

    Returns
    -------
    indices : numpy.ndarray
        Global row indices, int64, best first: score descending, then tie hash
        descending.  Rows whose score is NaN are never returned.
    scores : numpy.ndarray
        Their scores, float64.

    Raises
    ------
    ValueError
        On a bad ``P``, ``k``, ``method``, ``exclude``, ``random_state`` or ``offset``.
    """
    P = _validate.probabilities(P)
    code = _validate.method(method, METHODS)
    return run_top_k(P[None], code, _table(code, P.shape[1]), k, exclude, random_state, offset)


def merge_top_k(
    results: Iterable[tuple[np.ndarray, np.ndarray]],
    k: int,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-chunk top-k results into the picks of a single pass.

    Works for :func:`top_k`, :func:`armillary_kernels.committee_top_k` and
    :func:`armillary_kernels.fused_top_k` alike.  Each chunk must have been scored with
    ``offset=start`` and the same method and ``random_state``, with the same ``k`` (or
    larger), and the chunks must not overlap.

    Parameters
    ----------
    results : iterable of (indices, scores)
        The results of each chunk (global indices).
    k : int
        Number of rows wanted (>= 1).
    random_state : int
        The tie-break seed the chunks were scored with.

    Returns
    -------
    indices : numpy.ndarray
        Global row indices, int64, best first.
    scores : numpy.ndarray
        Their scores, float64.

    Raises
    ------
    ValueError
        On a bad ``k`` or ``random_state``, mismatched lengths, a negative index, or an
        index that appears in more than one chunk.
    """
    k = _validate.integer(k, "k", 1)
    _validate.random_state(random_state)
    indices, values = [], []
    for position, (raw_indices, raw_scores) in enumerate(results):
        chunk_indices = np.asarray(raw_indices, dtype=np.int64).reshape(-1)
        chunk_scores = np.asarray(raw_scores, dtype=np.float64).reshape(-1)
        if chunk_indices.shape != chunk_scores.shape:
            msg = f"chunk {position}: {chunk_indices.size} indices but {chunk_scores.size} scores"
            raise ValueError(msg)
        indices.append(chunk_indices)
        values.append(chunk_scores)
    if not indices:
        return _empty()
    all_indices = np.concatenate(indices)
    all_scores = np.concatenate(values)
    if np.unique(all_indices).size != all_indices.size:
        msg = "the same row index appears in more than one chunk; chunks must not overlap"
        raise ValueError(msg)
    if (all_indices < 0).any():
        msg = "row indices must be non-negative"
        raise ValueError(msg)
    return merge(all_indices, all_scores, k, random_state)
