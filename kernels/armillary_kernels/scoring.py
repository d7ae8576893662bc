"""Uncertainty scores and a fused, parallel top-k over a pool of rows.

Every score is "higher means more informative" and is computed in float64, whatever
the input dtype:

``least-confidence``
    ``1 - max_c P[i, c]``
``margin``
    ``1 - (p_best - p_second)``, the two largest probabilities of the row.

NaN policy: a row with a NaN in any column (or whose score comes out NaN, e.g. a row
holding ``+inf`` twice) gets a NaN score from :func:`least_confidence` and
:func:`margin`, and :func:`top_k` never picks it, as if its score were ``-inf`` but
without counting it as eligible.

Ranking: rows are ordered by score descending, then by a tie-break hash descending.
The hash is ``splitmix64(global_row_index XOR splitmix64(random_state))``; it is a
bijection of the row index, so the order is total, equal scores come out in a
pseudo-random order spread uniformly over the catalogue, and the order does not depend
on how the pool was cut into chunks (see :func:`merge_top_k`).

The compiled kernels are private; the public functions check their arguments.  Each
kernel has a plain-numpy twin in :mod:`armillary_kernels._reference`.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import index as _as_index

import numba
import numpy as np

from ._reference import tie_hash, tie_seed

__all__ = ["least_confidence", "margin", "merge_top_k", "top_k"]

_MARGIN = 0
_LEAST_CONFIDENCE = 1
_METHODS = {
    "margin": _MARGIN,
    "least-confidence": _LEAST_CONFIDENCE,
    "least_confidence": _LEAST_CONFIDENCE,
}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)


# --------------------------------------------------------------------------- kernels
# Every constant mixed with a uint64 is itself a uint64: numba (like numpy) turns
# uint64-with-int64 arithmetic into float64.


@numba.njit(cache=True, fastmath=False, nogil=True)
def _splitmix64(x):
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@numba.njit(cache=True, fastmath=False, nogil=True)
def _row_score(P, i, method):
    """Score of row ``i`` in float64; NaN if the row holds a NaN."""
    best = -np.inf
    second = -np.inf
    for c in range(P.shape[1]):
        v = np.float64(P[i, c])
        if np.isnan(v):
            return np.nan
        if v > best:
            second = best
            best = v
        elif v > second:
            second = v
    if method == _MARGIN:
        return 1.0 - (best - second)
    return 1.0 - best


@numba.njit(parallel=True, cache=True, fastmath=False, nogil=True)
def _scores_kernel(P, method, out):
    for i in numba.prange(P.shape[0]):
        out[i] = _row_score(P, i, method)


@numba.njit(cache=True, fastmath=False, nogil=True)
def _less(hs, hh, a, b):
    """Heap entry ``a`` ranks below entry ``b`` (score, then hash)."""
    return hs[a] < hs[b] or (hs[a] == hs[b] and hh[a] < hh[b])


@numba.njit(cache=True, fastmath=False, nogil=True)
def _swap(hs, hh, hi, a, b):
    hs[a], hs[b] = hs[b], hs[a]
    hh[a], hh[b] = hh[b], hh[a]
    hi[a], hi[b] = hi[b], hi[a]


@numba.njit(cache=True, fastmath=False, nogil=True)
def _sift_up(hs, hh, hi, pos):
    while pos > 0:
        parent = (pos - 1) // 2
        if not _less(hs, hh, pos, parent):
            return
        _swap(hs, hh, hi, pos, parent)
        pos = parent


@numba.njit(cache=True, fastmath=False, nogil=True)
def _sift_down(hs, hh, hi, count):
    pos = 0
    while True:
        smallest = pos
        left = 2 * pos + 1
        right = left + 1
        if left < count and _less(hs, hh, left, smallest):
            smallest = left
        if right < count and _less(hs, hh, right, smallest):
            smallest = right
        if smallest == pos:
            return
        _swap(hs, hh, hi, pos, smallest)
        pos = smallest


@numba.njit(cache=True, fastmath=False, nogil=True)
def _scan_block(P, start, stop, method, exclude, has_exclude, offset, seed, hs, hh, hi):
    """Keep the best ``len(hs)`` rows of ``P[start:stop]`` in a min-heap; return count."""
    cap = hs.shape[0]
    count = 0
    for i in range(start, stop):
        if has_exclude and exclude[i]:
            continue
        s = _row_score(P, i, method)
        if np.isnan(s):
            continue
        if count < cap:
            hs[count] = s
            hh[count] = _splitmix64(np.uint64(offset + i) ^ seed)
            hi[count] = offset + i
            _sift_up(hs, hh, hi, count)
            count += 1
        elif s >= hs[0]:
            h = _splitmix64(np.uint64(offset + i) ^ seed)
            if s > hs[0] or h > hh[0]:
                hs[0] = s
                hh[0] = h
                hi[0] = offset + i
                _sift_down(hs, hh, hi, count)
    return count


@numba.njit(parallel=True, cache=True, fastmath=False, nogil=True)
def _top_k_kernel(P, k, method, exclude, has_exclude, offset, seed, n_blocks):
    """Per-block running top-k in parallel; the caller merges the block heaps."""
    n = P.shape[0]
    cap = min(k, (n + n_blocks - 1) // n_blocks)
    hs = np.empty((n_blocks, cap), dtype=np.float64)
    hh = np.empty((n_blocks, cap), dtype=np.uint64)
    hi = np.empty((n_blocks, cap), dtype=np.int64)
    counts = np.zeros(n_blocks, dtype=np.int64)
    for b in numba.prange(n_blocks):
        start = b * n // n_blocks
        stop = (b + 1) * n // n_blocks
        counts[b] = _scan_block(
            P, start, stop, method, exclude, has_exclude, offset, seed, hs[b], hh[b], hi[b]
        )
    return hs, hh, hi, counts


# --------------------------------------------------------------------- validation


def _check_probabilities(P) -> np.ndarray:
    """Return ``P`` as a C-contiguous, native-endian float32/float64 2-D array."""
    P = np.asarray(P)
    if P.ndim != 2:
        msg = f"P must be a 2-D array (rows x classes); got shape {P.shape}"
        raise ValueError(msg)
    if P.shape[1] < 2:
        msg = f"P must have at least 2 columns (classes); got shape {P.shape}"
        raise ValueError(msg)
    if P.dtype.kind != "f" or P.dtype.itemsize not in (4, 8):
        msg = (
            f"P has dtype {P.dtype}; scores need float32 or float64 probabilities: "
            "cast it first, e.g. P.astype(np.float32)"
        )
        raise ValueError(msg)
    if not P.dtype.isnative:  # e.g. big-endian columns straight from a FITS file
        P = P.astype(P.dtype.newbyteorder("="))
    return np.ascontiguousarray(P)


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)):
        msg = f"{name} must be an integer; got {value!r}"
        raise ValueError(msg)
    try:
        number = _as_index(value)
    except TypeError:
        msg = f"{name} must be an integer; got {value!r}"
        raise ValueError(msg) from None
    if number < minimum:
        msg = f"{name} must be >= {minimum}; got {number}"
        raise ValueError(msg)
    return number


def _check_random_state(random_state) -> np.uint64:
    if random_state is None or isinstance(random_state, (bool, np.bool_)):
        msg = (
            f"random_state must be an integer (the same one for every chunk of a pool); "
            f"got {random_state!r}"
        )
        raise ValueError(msg)
    try:
        return tie_seed(_as_index(random_state))
    except TypeError:
        msg = f"random_state must be an integer; got {random_state!r}"
        raise ValueError(msg) from None


def _check_method(method) -> int:
    if isinstance(method, str) and method in _METHODS:
        return _METHODS[method]
    names = ", ".join(repr(name) for name in sorted(_METHODS))
    msg = f"unknown method {method!r}; valid names are {names}"
    raise ValueError(msg)


def _check_exclude(exclude, n: int) -> tuple[np.ndarray, bool]:
    if exclude is None:
        return np.zeros(0, dtype=np.bool_), False
    mask = np.asarray(exclude)
    if mask.dtype != np.bool_:
        msg = f"exclude must be a boolean mask (True = skip the row); got dtype {mask.dtype}"
        raise ValueError(msg)
    if mask.shape != (n,):
        msg = f"exclude must have shape ({n},), one entry per row of P; got {mask.shape}"
        raise ValueError(msg)
    return np.ascontiguousarray(mask), True


def _n_blocks(n: int) -> int:
    """One block per numba thread (fewer for tiny pools)."""
    return max(1, min(numba.get_num_threads(), n))


# ------------------------------------------------------------------------- public


def _scores(P, method: int) -> np.ndarray:
    P = _check_probabilities(P)
    out = np.empty(P.shape[0], dtype=np.float64)
    _scores_kernel(P, method, out)
    return out


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
    return _scores(P, _LEAST_CONFIDENCE)


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
    return _scores(P, _MARGIN)


def _best_k(indices, scores, hashes, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``k`` best entries by (score, hash) descending; keys are unique per row."""
    order = np.lexsort((hashes, scores))[::-1][:k]
    return indices[order].astype(np.int64), scores[order].astype(np.float64)


def top_k(
    P,
    k: int,
    method: str = "margin",
    exclude=None,
    random_state: int = 0,
    offset: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick the ``k`` most informative rows of ``P`` in one fused parallel pass.

    Scores are computed on the fly (no N-length score array is built); each numba
    thread keeps a running top-k of its block of rows, and the blocks are merged.

    Parameters
    ----------
    P : array_like
        Class probabilities, shape (N, C) with C >= 2, float32 or float64.  A
        non-contiguous array is copied to a contiguous one.
    k : int
        Number of rows wanted (>= 1).  Fewer come back if fewer rows are eligible.
    method : {"margin", "least-confidence", "least_confidence"}
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
    P = _check_probabilities(P)
    k = _check_int(k, "k", 1)
    code = _check_method(method)
    n = P.shape[0]
    mask, has_exclude = _check_exclude(exclude, n)
    seed = _check_random_state(random_state)
    offset = _check_int(offset, "offset", 0)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    # errstate only matters under NUMBA_DISABLE_JIT, where the hash runs on numpy
    # scalars whose (intended) wrap-around would otherwise warn.
    with np.errstate(over="ignore"):
        hs, hh, hi, counts = _top_k_kernel(
            P, min(k, n), code, mask, has_exclude, offset, seed, _n_blocks(n)
        )
    keep = np.arange(hs.shape[1]) < counts[:, None]
    return _best_k(hi[keep], hs[keep], hh[keep], k)


def merge_top_k(
    results: Iterable[tuple[np.ndarray, np.ndarray]],
    k: int,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-chunk :func:`top_k` results into the picks of a single pass.

    Each chunk must have been scored with ``top_k(chunk, k, ..., offset=start,
    random_state=random_state)``, with the same ``k`` (or larger), method and
    ``random_state``, and the chunks must not overlap.

    Parameters
    ----------
    results : iterable of (indices, scores)
        The ``top_k`` results of each chunk (global indices).
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
        On a bad ``k`` or ``random_state``, mismatched lengths, or an index that
        appears in more than one chunk.
    """
    k = _check_int(k, "k", 1)
    _check_random_state(random_state)
    indices, scores = [], []
    for position, (raw_indices, raw_scores) in enumerate(results):
        chunk_indices = np.asarray(raw_indices, dtype=np.int64).reshape(-1)
        chunk_scores = np.asarray(raw_scores, dtype=np.float64).reshape(-1)
        if chunk_indices.shape != chunk_scores.shape:
            msg = f"chunk {position}: {chunk_indices.size} indices but {chunk_scores.size} scores"
            raise ValueError(msg)
        indices.append(chunk_indices)
        scores.append(chunk_scores)
    if not indices:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    all_indices = np.concatenate(indices)
    all_scores = np.concatenate(scores)
    if np.unique(all_indices).size != all_indices.size:
        msg = "the same row index appears in more than one chunk; chunks must not overlap"
        raise ValueError(msg)
    if (all_indices < 0).any():
        msg = "row indices must be non-negative"
        raise ValueError(msg)
    valid = ~np.isnan(all_scores)
    all_indices, all_scores = all_indices[valid], all_scores[valid]
    hashes = tie_hash(all_indices, random_state)
    return _best_k(all_indices, all_scores, hashes, k)
