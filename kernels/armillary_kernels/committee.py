"""Disagreement measures of a committee, and a fused parallel top-k over them.

A committee's probabilities come stacked per member, ``P_members[m, i, c]``, shape
(M, N, C) (a list of M (N, C) arrays is stacked, which copies).  The measures follow
modAL's ``modAL.disagreement`` and are "higher means more informative", in float64:

``vote-entropy``
    Each member votes for its most probable class (the first one on a tie, as
    ``numpy.argmax`` and scikit-learn's ``predict`` do); the score is the entropy of
    the vote shares, ``-sum_c (v_c / M) ln(v_c / M)``.  It takes few values, so ties
    are the rule: they are broken by the seeded hash, as in :func:`top_k`.
``consensus-entropy``
    Entropy of the members' mean probabilities.
``max-disagreement``
    ``max_m KL(p_m || mean)``, the largest Kullback-Leibler divergence of a member
    from the consensus (modAL's ``KL_max_disagreement``).

NaN policy: a NaN anywhere in a row (any member) gives a NaN score, which is never
picked; so does a negative probability where a measure takes its logarithm.
"""

from __future__ import annotations

import functools

import numpy as np

from . import _validate
from ._measures import CONSENSUS_ENTROPY, MAX_DISAGREEMENT, VOTE_ENTROPY, vote_table
from .scoring import bound_table, run_scores, run_top_k

__all__ = [
    "committee_scores",
    "committee_top_k",
    "consensus_entropy",
    "max_disagreement",
    "vote_entropy",
]

METHODS = {
    "vote-entropy": VOTE_ENTROPY,
    "vote_entropy": VOTE_ENTROPY,
    "consensus-entropy": CONSENSUS_ENTROPY,
    "consensus_entropy": CONSENSUS_ENTROPY,
    "max-disagreement": MAX_DISAGREEMENT,
    "max_disagreement": MAX_DISAGREEMENT,
}


@functools.lru_cache(maxsize=64)
def _vote_table(M: int) -> np.ndarray:
    return vote_table(M)


def _table(code: int, M: int, C: int) -> np.ndarray:
    if code == VOTE_ENTROPY:
        return _vote_table(M)
    return bound_table(C) if code == CONSENSUS_ENTROPY else _vote_table(1)


def committee_scores(P_members, method: str = "vote-entropy") -> np.ndarray:
    """Score every row with a named committee measure.

    Parameters
    ----------
    P_members : array_like
        Members' class probabilities, shape (M, N, C) with M >= 1 and C >= 2, float32
        or float64; or a list of M arrays of shape (N, C).
    method : {"vote-entropy", "consensus-entropy", "max-disagreement"}
        The measure (see the module docstring); underscores work too.

    Returns
    -------
    numpy.ndarray
        Scores, float64, shape (N,); higher is more informative.

    Raises
    ------
    ValueError
        If ``P_members`` is not 3-D (or a list of equal 2-D arrays), has fewer than 2
        classes, is not float32/float64, or ``method`` is unknown.
    """
    code = _validate.method(method, METHODS)
    P = _validate.member_probabilities(P_members)
    return run_scores(P, code, _table(code, P.shape[0], P.shape[2]))


def vote_entropy(P_members) -> np.ndarray:
    """Vote entropy of each row (see :func:`committee_scores`)."""
    return committee_scores(P_members, "vote-entropy")


def consensus_entropy(P_members) -> np.ndarray:
    """Entropy of the members' mean probabilities of each row (see :func:`committee_scores`)."""
    return committee_scores(P_members, "consensus-entropy")


def max_disagreement(P_members) -> np.ndarray:
    """Largest KL divergence of a member from the consensus (see :func:`committee_scores`)."""
    return committee_scores(P_members, "max-disagreement")


def committee_top_k(
    P_members,
    k: int,
    method: str = "vote-entropy",
    exclude=None,
    random_state: int = 0,
    offset: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick the ``k`` rows the committee disagrees on most, in one fused parallel pass.

    Parameters
    ----------
    P_members : array_like
        Members' class probabilities, shape (M, N, C), float32 or float64 (see
        :func:`committee_scores`).
    k : int
        Number of rows wanted (>= 1).  Fewer come back if fewer rows are eligible.
    method : {"vote-entropy", "consensus-entropy", "max-disagreement"}
        The measure; modAL's committee default is the vote entropy.
    exclude : array_like of bool, shape (N,), optional
        True marks a row never to pick.
    random_state : int
        Seed of the tie-break hash; the same for every chunk of a pool.
    offset : int
        Global row index of the first row, when scoring one chunk of a pool; merge
        chunk results with :func:`armillary_kernels.merge_top_k`.

    Returns
    -------
    indices : numpy.ndarray
        Global row indices, int64, best first (score, then tie hash, descending).
    scores : numpy.ndarray
        Their scores, float64.

    Raises
    ------
    ValueError
        On a bad ``P_members``, ``k``, ``method``, ``exclude``, ``random_state`` or
        ``offset``.
    """
    P = _validate.member_probabilities(P_members)
    code = _validate.method(method, METHODS)
    return run_top_k(
        P, code, _table(code, P.shape[0], P.shape[2]), k, exclude, random_state, offset
    )
