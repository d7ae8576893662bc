"""Score one tile of rows with any measure: the dispatch the drivers call."""

from __future__ import annotations

import numba
import numpy as np

from ._measures import (
    CONSENSUS_ENTROPY,
    ENTROPY,
    LEAST_CONFIDENCE,
    MARGIN,
    VOTE_ENTROPY,
    _entropy_rows,
    _margin_rows,
    _vote_entropy_rows,
    margin_blocks,
    margin_reach,
    member_tile,
)
from ._prune import consensus_entropy_pruned, entropy_pruned, max_disagreement_rows

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@numba.njit(**_JIT)
def score_tile(flat, M, N, C, i0, n, method, table, threshold, out, work):
    """Score rows ``i0 .. i0 + n - 1`` of a flat (M, N, C) array into ``out[:n]``.

    ``work`` comes from :func:`armillary_kernels._measures.new_work`.  ``table`` is
    :func:`~armillary_kernels._measures.vote_table` for the vote entropy and
    :func:`~armillary_kernels._prune.entropy_bound_table` for the (consensus) entropy.
    With a ``threshold`` above ``-inf`` (the minimum of a full top-k heap) the
    logarithmic measures may leave NaN in rows that provably cannot reach it (see
    :mod:`armillary_kernels._prune`), and so may the margin and least confidence
    (:func:`~armillary_kernels._measures.margin_reach`).  Returns the number of rows scored; 0 means
    none can reach the threshold and ``out`` was left as it was.
    """
    floats, ints = work
    pruning = threshold > -np.inf
    if method in (MARGIN, LEAST_CONFIDENCE):
        T = member_tile(flat, N, C, 0, i0, n)
        least_confidence = method == LEAST_CONFIDENCE
        if not pruning:
            _margin_rows(T, out, least_confidence)
            return n
        # With a full heap, first a pass that only finds the blocks that reach it.
        mask = margin_reach(T, threshold, least_confidence)
        if mask == 0:
            return 0
        margin_blocks(T, out, least_confidence, mask)
    elif method == ENTROPY and pruning:
        T = member_tile(flat, N, C, 0, i0, n)
        return entropy_pruned(T, threshold, table, out, floats, ints)
    elif method == ENTROPY:
        _entropy_rows(flat, M, N, C, i0, n, out, floats, ints, False)
    elif method == VOTE_ENTROPY:
        _vote_entropy_rows(flat, M, N, C, i0, n, out, ints, table)
    elif method == CONSENSUS_ENTROPY and pruning:
        return consensus_entropy_pruned(flat, M, N, C, i0, n, threshold, table, out, floats, ints)
    elif method == CONSENSUS_ENTROPY:
        _entropy_rows(flat, M, N, C, i0, n, out, floats, ints, True)
    else:
        return max_disagreement_rows(flat, M, N, C, i0, n, threshold, out, floats, ints)
    return n
