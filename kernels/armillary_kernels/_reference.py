"""Plain-numpy twins of the compiled kernels in :mod:`armillary_kernels.scoring`.

These functions define the semantics the kernels must reproduce, bit for bit on the
scores and exactly on the picks; the tests compare the two on small arrays.  They do
no argument checking and materialise every intermediate array, so they are only meant
for tests and for reading.

The tie-break hash (:func:`tie_hash`) is also used by the public
:func:`armillary_kernels.merge_top_k`, so that merging chunk results ranks rows with
the very same keys the kernel used.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """Apply the splitmix64 finaliser element-wise.

    Parameters
    ----------
    x : numpy.ndarray
        Values of dtype uint64.

    Returns
    -------
    numpy.ndarray
        Hashes of dtype uint64.  The map is a bijection of the 64-bit integers, so
        distinct inputs never collide.
    """
    # Array arithmetic on uint64 wraps modulo 2**64 silently, which is what we want.
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def tie_seed(random_state: int) -> np.uint64:
    """Derive the 64-bit tie-break seed from an integer ``random_state``.

    Parameters
    ----------
    random_state : int
        Any integer; it is taken modulo 2**64.

    Returns
    -------
    numpy.uint64
        ``splitmix64(random_state mod 2**64)``.
    """
    value = np.array([int(random_state) % (1 << 64)], dtype=np.uint64)
    return splitmix64(value)[0]


def tie_hash(indices: np.ndarray, random_state: int) -> np.ndarray:
    """Tie-break key of each global row index: ``splitmix64(index ^ tie_seed)``.

    Parameters
    ----------
    indices : numpy.ndarray
        Non-negative global row indices (integers).
    random_state : int
        Seed; the same value must be used for every chunk of a pool.

    Returns
    -------
    numpy.ndarray
        Hashes of dtype uint64, distinct for distinct indices.
    """
    rows = np.asarray(indices, dtype=np.int64).astype(np.uint64)
    return splitmix64(rows ^ tie_seed(random_state))


def _sorted_probabilities(P: np.ndarray) -> np.ndarray:
    """Return ``P`` as float64 with each row sorted descending (NaN rows untouched)."""
    values = np.asarray(P).astype(np.float64)
    return -np.sort(-values, axis=1)


def _nan_rows(P: np.ndarray) -> np.ndarray:
    return np.isnan(np.asarray(P)).any(axis=1)


def least_confidence_ref(P: np.ndarray) -> np.ndarray:
    """Compute the least-confidence score ``1 - max_c P`` in float64 (NaN rows: NaN).

    Parameters
    ----------
    P : numpy.ndarray
        Probabilities, shape (N, C).

    Returns
    -------
    numpy.ndarray
        Scores, float64, shape (N,).
    """
    scores = 1.0 - _sorted_probabilities(P)[:, 0]
    scores[_nan_rows(P)] = np.nan
    return scores


def margin_ref(P: np.ndarray) -> np.ndarray:
    """Compute the margin score ``1 - (p_best - p_second)`` in float64 (NaN rows: NaN).

    Parameters
    ----------
    P : numpy.ndarray
        Probabilities, shape (N, C) with C >= 2.

    Returns
    -------
    numpy.ndarray
        Scores, float64, shape (N,).
    """
    top = _sorted_probabilities(P)
    scores = 1.0 - (top[:, 0] - top[:, 1])
    scores[_nan_rows(P)] = np.nan
    return scores


def top_k_ref(
    P: np.ndarray,
    k: int,
    method: str = "margin",
    exclude: np.ndarray | None = None,
    random_state: int = 0,
    offset: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Score every row, then sort by (score, tie hash) descending and keep ``k``.

    Parameters
    ----------
    P : numpy.ndarray
        Probabilities, shape (N, C).
    k : int
        Number of rows wanted.
    method : str
        ``"margin"`` or ``"least-confidence"`` / ``"least_confidence"``.
    exclude : numpy.ndarray or None
        Boolean mask of rows never to pick.
    random_state : int
        Tie-break seed.
    offset : int
        Global index of the first row of ``P``.

    Returns
    -------
    indices : numpy.ndarray
        Global row indices (int64), best first.
    scores : numpy.ndarray
        Their scores (float64).
    """
    measure = margin_ref if method == "margin" else least_confidence_ref
    scores = measure(P)
    eligible = ~np.isnan(scores)
    if exclude is not None:
        eligible &= ~np.asarray(exclude, dtype=bool)
    local = np.flatnonzero(eligible)
    glob = local.astype(np.int64) + offset
    hashes = tie_hash(glob, random_state)
    # lexsort sorts ascending on the last key first; keys are unique because the hash
    # is a bijection of the row index, so reversing gives descending on both.
    order = np.lexsort((hashes, scores[local]))[::-1][:k]
    return glob[order], scores[local][order]
