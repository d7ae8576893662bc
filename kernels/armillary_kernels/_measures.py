"""Per-tile query measures: the compiled inner loops behind every score.

All measures read a flat view of a C-contiguous probability array of shape (M, N, C)
(M = 1 for a single model): entry ``(m, i, c)`` sits at ``(m * N + i) * C + c``.  They
score ``n`` consecutive rows from row ``i0`` into ``out[:n]``, in float64, with "higher
means more informative".  A tile is small (:data:`TILE_ELEMENTS` numbers), so the
scratch buffers stay in the L1/L2 cache while the pool streams through once.

Semantics (the numpy twins in :mod:`armillary_kernels._reference` define them too):

``MARGIN``             ``1 - (p_best - p_second)``
``LEAST_CONFIDENCE``   ``1 - p_best``
``ENTROPY``            ``-sum_c p_c ln p_c``
``VOTE_ENTROPY``       entropy of the members' votes (each votes its first argmax)
``CONSENSUS_ENTROPY``  entropy of the members' mean probabilities
``MAX_DISAGREEMENT``   ``max_m KL(p_m || mean)``

A row with a NaN anywhere scores NaN; so does a row with a negative entry where the
measure takes a logarithm of it.  In ``p ln p`` terms, ``p`` below the smallest normal
float64 counts as 0.  No row is renormalised: rows are taken to sum to 1.

:mod:`armillary_kernels._prune` adds the bounds that let a top-k skip most rows, and
:mod:`armillary_kernels._tile` dispatches a tile to the right measure.
"""

from __future__ import annotations

import numba
import numpy as np

from ._fastlog import TINY, log_tile

MARGIN = 0
LEAST_CONFIDENCE = 1
ENTROPY = 2
VOTE_ENTROPY = 3
CONSENSUS_ENTROPY = 4
MAX_DISAGREEMENT = 5

#: Numbers per tile (rows x classes); 16 KiB per float64 scratch buffer.
TILE_ELEMENTS = 8192
#: Rows per block of :func:`margin_reach` (a tile has at most 8192 / 2 rows: 16 blocks).
REACH_ROWS = 256
#: Numbers summed at a time in :func:`member_sums` (2 KiB of float64 running sums;
#: short runs of each member keep the hardware prefetchers ahead of M streams).
SUM_CHUNK = 256
#: The unit of :func:`vote_table`: entries are below 0.37 / VOTE_UNIT, so sums over
#: thousands of classes stay exact integers in float64.
VOTE_UNIT = 2.0**-46

# error_model="numpy" everywhere: Python's zero-division checks would stop
# LLVM from vectorising the loops.
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@numba.njit(**_JIT)
def tile_rows(C):
    """Rows per tile for C classes."""
    return max(1, TILE_ELEMENTS // C)


@numba.njit(**_JIT)
def new_work(M, C):
    """Scratch buffers of one thread: ``(floats, ints)``.

    ``floats`` rows: 0 values, 1 clamped values, 2 logs, 3 flags or members' mean,
    4 exact scores or logs of the mean, 5 members' mean (pruned paths);
    ``ints``: a tile of log bit patterns (or votes), a tile of row numbers, M + 1 spare.
    """
    rows = tile_rows(C)
    size = rows * C
    return np.empty((6, size), dtype=np.float64), np.empty(size + rows + M + 1, dtype=np.int64)


@numba.njit(**_JIT)
def member_tile(flat, N, C, member, i0, n):
    """Rows ``i0 .. i0 + n - 1`` of one member, as an (n, C) view.

    Loops index the view from 0 with ``range``: numba then knows the indices are not
    negative, drops its wrap-around checks and lets LLVM vectorise.
    """
    start = (member * N + i0) * C
    return flat[start : start + n * C].reshape((n, C))


# Row-wise loops come in two layers: a body with ``inline="always"`` taking the number
# of classes C as an argument, and a dispatcher that calls it with C = 2, 3 and 4 as
# literal constants.  After numba inlines the body, LLVM sees a constant C, unrolls the
# class loop and vectorises across rows (about 3x faster than the generic loop, which
# remains the fallback for other C).


@numba.njit(inline="always", **_JIT)
def _margin_body(T, out, least_confidence, C):
    for j in range(T.shape[0]):
        best = np.float64(T[j, 0])
        second = -np.inf
        bad = best != best
        for c in range(1, C):
            v = np.float64(T[j, c])
            bad |= v != v
            low = v if v < best else best
            second = low if low > second else second
            best = v if v > best else best
        if bad:
            out[j] = np.nan
        elif least_confidence:
            out[j] = 1.0 - best
        else:
            out[j] = 1.0 - (best - second)


@numba.njit(**_JIT)
def _margin_rows(T, out, least_confidence):
    C = T.shape[1]
    if C == 2:
        _margin_body(T, out, least_confidence, 2)
    elif C == 3:
        _margin_body(T, out, least_confidence, 3)
    elif C == 4:
        _margin_body(T, out, least_confidence, 4)
    else:
        _margin_body(T, out, least_confidence, C)


@numba.njit(inline="always", **_JIT)
def _margin_reach_body(T, threshold, least_confidence, C):
    reach = 0
    for j in range(T.shape[0]):
        # In T's own dtype (exact: float32 -> float64 keeps the order); the two
        # largest of a row without NaN are those of _margin_body.
        a = T[j, 0]
        b = T[j, 1]
        best = a if a > b else b
        second = b if a > b else a
        for c in range(2, C):
            v = T[j, c]
            low = v if v < best else best
            second = low if low > second else second
            best = v if v > best else best
        top = np.float64(best)
        score = 1.0 - top if least_confidence else 1.0 - (top - np.float64(second))
        reach += 1 if score >= threshold else 0
    return reach


@numba.njit(inline="always", **_JIT)
def _margin_reach_blocks(T, threshold, least_confidence, C):
    mask = 0
    n = T.shape[0]
    for b in range((n + REACH_ROWS - 1) // REACH_ROWS):
        lo = b * REACH_ROWS
        part = T[lo : min(n, lo + REACH_ROWS)]
        if _margin_reach_body(part, threshold, least_confidence, C) > 0:
            mask |= np.int64(1) << b
    return mask


@numba.njit(inline="always", **_JIT)
def _margin_reach_of(T, threshold, least_confidence):
    C = T.shape[1]
    if C == 2:
        return _margin_reach_blocks(T, threshold, least_confidence, 2)
    if C == 3:
        return _margin_reach_blocks(T, threshold, least_confidence, 3)
    if C == 4:
        return _margin_reach_blocks(T, threshold, least_confidence, 4)
    return _margin_reach_blocks(T, threshold, least_confidence, C)


@numba.njit(**_JIT)
def margin_reach(T, threshold, least_confidence):
    """Which blocks of :data:`REACH_ROWS` rows of the (n, C) tile ``T`` hold a row
    that may score at least ``threshold``: bit ``b`` for rows ``b * REACH_ROWS`` on.

    One pass that reads the tile and stores nothing, for a full top-k heap: most tiles
    of a large pool hold no row that reaches it (mask 0), and are then done with at
    the speed of reading them; in the others only the marked blocks need scoring.  A
    row without NaN scores exactly as in :func:`_margin_rows` (same arithmetic); a row
    with a NaN scores NaN there and may count here, so a block left unmarked holds no
    row that can be picked.  ``least_confidence`` stays a run-time flag (a literal
    would compile every body twice, for a few per cent on the least confidence).
    """
    return _margin_reach_of(T, threshold, least_confidence)


@numba.njit(**_JIT)
def margin_blocks(T, out, least_confidence, mask):
    """Margins (or least confidences) of the blocks of rows marked in ``mask`` (from
    :func:`margin_reach`) into ``out``; NaN, which is never picked, elsewhere."""
    n = T.shape[0]
    for b in range((n + REACH_ROWS - 1) // REACH_ROWS):
        lo = b * REACH_ROWS
        hi = min(n, lo + REACH_ROWS)
        if (mask >> b) & 1:
            _margin_rows(T[lo:hi], out[lo:hi], least_confidence)
        else:
            out[lo:hi] = np.nan


@numba.njit(**_JIT)
def _load(flat, start, m, values, clamped):
    """``values[:m] = flat[start : start + m]`` in float64; ``clamped`` likewise, with
    entries below :data:`TINY` (and NaN) replaced by 1, whose log is 0."""
    tile = flat[start : start + m]
    for e in range(m):
        v = np.float64(tile[e])
        values[e] = v
        clamped[e] = v if v >= TINY else 1.0


@numba.njit(**_JIT)
def _clamp(values, m, clamped):
    for e in range(m):
        v = values[e]
        clamped[e] = v if v >= TINY else 1.0


@numba.njit(inline="always", **_JIT)
def _entropy_body(V, L, out, C):
    for j in range(V.shape[0]):
        h = 0.0
        negative = False
        for c in range(C):
            p = V[j, c]
            negative |= p < 0.0
            h -= p * L[j, c]
        out[j] = np.nan if negative else h


@numba.njit(**_JIT)
def _entropy_of(values, logs, n, C, out):
    """Row entropies of ``n`` rows of float64 ``values`` with their clamped ``logs``."""
    V = values[: n * C].reshape((n, C))
    L = logs[: n * C].reshape((n, C))
    if C == 2:
        _entropy_body(V, L, out, 2)
    elif C == 3:
        _entropy_body(V, L, out, 3)
    elif C == 4:
        _entropy_body(V, L, out, 4)
    else:
        _entropy_body(V, L, out, C)


@numba.njit(**_JIT)
def member_sums(flat, M, N, C, start, total):
    """``total[e]`` = the sum over members of ``flat[m * N * C + start + e]``, for ``e <
    len(total)``, added in member order as ``numpy.mean`` does before it divides.

    Members are added three, then two at a time (``((a + b) + c)``, ``(t + a) + b``:
    the same order, the same rounding), so the running sums go through the L1 cache
    less often: for M = 5, one pass of three and one of two.
    """
    w = total.shape[0]
    stride = N * C
    a = flat[start : start + w]
    if M >= 3:
        b = flat[start + stride : start + stride + w]
        c = flat[start + 2 * stride : start + 2 * stride + w]
        for e in range(w):
            total[e] = (np.float64(a[e]) + np.float64(b[e])) + np.float64(c[e])
        member = 3
    else:
        for e in range(w):
            total[e] = np.float64(a[e])
        member = 1
    while member + 1 < M:
        lo = start + member * stride
        a = flat[lo : lo + w]
        b = flat[lo + stride : lo + stride + w]
        for e in range(w):
            total[e] = (total[e] + np.float64(a[e])) + np.float64(b[e])
        member += 2
    if member < M:
        lo = start + member * stride
        a = flat[lo : lo + w]
        for e in range(w):
            total[e] = total[e] + np.float64(a[e])


@numba.njit(**_JIT)
def _consensus(flat, M, N, C, i0, n, mean):
    """Members' mean probabilities of ``n`` rows, as ``numpy.mean`` computes it (sum in
    member order, then divide), in chunks that keep the running sums in L1."""
    m = n * C
    for lo in range(0, m, SUM_CHUNK):
        total = mean[lo : min(m, lo + SUM_CHUNK)]
        member_sums(flat, M, N, C, i0 * C + lo, total)
        for e in range(total.shape[0]):
            total[e] = total[e] / M


@numba.njit(**_JIT)
def _entropy_rows(flat, M, N, C, i0, n, out, floats, ints, consensus):
    values, clamped, logs = floats[0], floats[1], floats[2]
    m = n * C
    if consensus:
        _consensus(flat, M, N, C, i0, n, values)
        _clamp(values, m, clamped)
    else:
        _load(flat, i0 * C, m, values, clamped)
    log_tile(clamped, ints, logs, m)
    _entropy_of(values, logs, n, C, out)


@numba.njit(inline="always", **_JIT)
def _vote_body(T, votes, out, C):
    for j in range(T.shape[0]):
        best = T[j, 0]
        arg = 0
        bad = best != best
        for c in range(1, C):
            v = T[j, c]
            bad |= v != v
            arg = c if v > best else arg  # the first maximum, as numpy.argmax
            best = v if v > best else best
        for c in range(C):  # one-hot rather than a scatter: vectorises across rows
            votes[j, c] += 1 if c == arg else 0
        out[j] = np.nan if bad else out[j]


@numba.njit(inline="always", **_JIT)
def _vote_sum_body(votes, table, out, C):
    for j in range(votes.shape[0]):
        total = 0
        for c in range(C):
            total += np.int64(table[votes[j, c]])
        out[j] = out[j] + total * VOTE_UNIT  # NaN stays NaN


@numba.njit(**_JIT)
def _vote_entropy_rows(flat, M, N, C, i0, n, out, ints, table):
    """Vote entropies; ``table[v]`` is ``-(v/M) ln(v/M)`` in units of :data:`VOTE_UNIT`
    (exact integers), summed as integers: exact, so rows whose votes are a permutation
    of each other tie bit for bit whatever the class order."""
    votes = ints[: n * C].reshape((n, C))
    votes[:, :] = 0
    out[:n] = 0.0
    for member in range(M):
        # Not specialised on C (unlike the single-model measures): compile time.
        _vote_body(member_tile(flat, N, C, member, i0, n), votes, out, C)
    _vote_sum_body(votes, table, out, C)


def vote_table(M: int) -> np.ndarray:
    """``table[v] = round(-(v / M) ln(v / M) / VOTE_UNIT)`` for v = 0 .. M, as float64
    holding exact integers (``table[0] = 0``)."""
    share = np.arange(M + 1, dtype=np.float64) / M
    table = np.zeros(M + 1, dtype=np.float64)
    table[1:] = np.round(-share[1:] * np.log(share[1:]) / VOTE_UNIT)
    return table
