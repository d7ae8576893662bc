"""Plain-numpy twins of the scoring kernels (:mod:`armillary_kernels.scoring`,
:mod:`armillary_kernels.committee`).

These functions define the semantics the kernels must reproduce: exactly on the picks,
bit for bit on the margin and least-confidence scores, and to rounding on the
logarithmic ones (the kernels use their own vectorised logarithm, within 1 ulp of
``numpy.log``); the tests compare the two on small arrays.  They do
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
_TINY = float(np.finfo(np.float64).tiny)


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


def entropy_ref(P: np.ndarray) -> np.ndarray:
    """Compute the entropy ``-sum_c p ln p`` in float64 (NaN or negative rows: NaN).

    Entries below the smallest normal float64 count as 0; rows are not renormalised.

    Parameters
    ----------
    P : numpy.ndarray
        Probabilities, shape (N, C).

    Returns
    -------
    numpy.ndarray
        Scores, float64, shape (N,).
    """
    p = np.asarray(P).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p >= _TINY, p * np.log(p), np.where(p >= 0, 0.0, np.nan))
    h = np.zeros(p.shape[0])
    for c in range(p.shape[1]):  # class order, as the kernel sums
        h = h - terms[:, c]
    return h


def _members(P_members: np.ndarray) -> np.ndarray:
    return np.asarray(P_members).astype(np.float64)


def vote_entropy_ref(P_members: np.ndarray) -> np.ndarray:
    """Entropy of the members' votes (each votes its first argmax), as modAL defines it.

    Parameters
    ----------
    P_members : numpy.ndarray
        Probabilities, shape (M, N, C).

    Returns
    -------
    numpy.ndarray
        Scores, float64, shape (N,); NaN where any member's row holds a NaN.
    """
    p = _members(P_members)
    M, _, C = p.shape
    votes = np.argmax(p, axis=2)  # (M, N)
    shares = np.stack([(votes == c).sum(axis=0) for c in range(C)], axis=1) / M
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(shares > 0, -shares * np.log(shares), 0.0)
    scores = terms.sum(axis=1)
    scores[np.isnan(p).any(axis=(0, 2))] = np.nan
    return scores


def consensus_entropy_ref(P_members: np.ndarray) -> np.ndarray:
    """Entropy of the members' mean probabilities.

    Parameters
    ----------
    P_members : numpy.ndarray
        Probabilities, shape (M, N, C).

    Returns
    -------
    numpy.ndarray
        Scores, float64, shape (N,).
    """
    return entropy_ref(_members(P_members).mean(axis=0))


def max_disagreement_ref(P_members: np.ndarray) -> np.ndarray:
    """Largest ``KL(p_m || mean)`` over the members (modAL's ``KL_max_disagreement``).

    Parameters
    ----------
    P_members : numpy.ndarray
        Probabilities, shape (M, N, C).

    Returns
    -------
    numpy.ndarray
        Scores, float64, shape (N,); NaN where a row holds a NaN or a negative entry.
    """
    p = _members(P_members)
    q = p.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p >= _TINY, p * np.log(p / q), np.where(p >= 0, 0.0, np.nan))
    return terms.sum(axis=2).max(axis=0)


MEASURES = {
    "margin": margin_ref,
    "least-confidence": least_confidence_ref,
    "least_confidence": least_confidence_ref,
    "entropy": entropy_ref,
    "vote-entropy": vote_entropy_ref,
    "consensus-entropy": consensus_entropy_ref,
    "max-disagreement": max_disagreement_ref,
}


def select_ref(
    scores: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
    random_state: int = 0,
    offset: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Sort eligible rows by (score, tie hash) descending and keep ``k``.

    Parameters
    ----------
    scores : numpy.ndarray
        Score of every row (NaN: never picked).
    k : int
        Number of rows wanted.
    exclude : numpy.ndarray or None
        Boolean mask of rows never to pick.
    random_state : int
        Tie-break seed.
    offset : int
        Global index of the first row.

    Returns
    -------
    indices : numpy.ndarray
        Global row indices (int64), best first.
    scores : numpy.ndarray
        Their scores (float64).
    """
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


def top_k_ref(
    P: np.ndarray,
    k: int,
    method: str = "margin",
    exclude: np.ndarray | None = None,
    random_state: int = 0,
    offset: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Score every row with ``method`` (a single model's or a committee's), then select.

    Parameters
    ----------
    P : numpy.ndarray
        Probabilities, shape (N, C), or (M, N, C) for the committee measures.
    k : int
        Number of rows wanted.
    method : str
        A key of :data:`MEASURES`.
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
    return select_ref(MEASURES[method](P), k, exclude, random_state, offset)
