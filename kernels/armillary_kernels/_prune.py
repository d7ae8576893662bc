"""Upper bounds that let a top-k skip rows, and the pruned logarithmic measures.

Once a thread's heap is full, a row can only enter it by scoring at least the heap's
minimum (the *threshold*).  For the logarithmic measures a cheap bound (no logarithm)
shows that almost every row of a large pool cannot, so only the few others are scored
exactly.  A skipped row is left NaN, which the selection never picks, exactly as it
would have rejected the row's true score: the picks are those of scoring every row, and
the rows that are scored go through the very same arithmetic as in the unpruned path
(same elementwise logarithm, same summation order), so their scores are bit-identical.

Bounds (``d`` = :data:`ROW_SUM_SLACK`; rows with a NaN are always scored, and so are
rows further than ``d`` from summing to 1 where a bound below needs ``d``):

- entropy of a row with largest entry ``q``:  ``H <= (1 + d) Hmax(q / (1 + d)) + 2d``
  with ``Hmax(q) = -q ln q - (1 - q) ln((1 - q) / (C - 1))``, tabulated over ``q``
  (:func:`entropy_bound_table`).  Tight for peaked rows.
- entropy of a row with sum ``s`` and largest entry ``q`` (any sum, no ``d``):
  ``H <= ln C + (ln C - 1)(s - 1) - sum_c (p_c - 1/C)**2 / (2 Q)``, ``Q = max(q, 1/C)``:
  ``g(p) = -p ln p`` has ``g'' = -1/p <= -1/Q`` on ``(0, Q]``, which holds every
  ``p_c`` and ``1/C``, so ``g(p) <= g(1/C) + g'(1/C)(p - 1/C) - (p - 1/C)**2 / (2Q)``;
  sum over c.  Tight for nearly uniform rows, where the highest entropies of a large
  pool lie (and where the table is loosest).  A row is skipped if either bound is
  below the threshold; both are used for the consensus entropy too.
- ``KL(p || mean)``: ``KL(u || v) <= ln(1 + chi2(u || v)) = ln(sum_c u_c**2 / v_c)`` for
  distributions u, v; with rows summing to ``s`` within ``d`` of 1 this gives
  ``KL <= (1 + d) max(0, ln(S / (1 - d)))``, ``S = sum_c p_c**2 / mean_c``.
"""

from __future__ import annotations

import numba
import numpy as np

from ._fastlog import TINY, log_tile
from ._measures import SUM_CHUNK, _consensus, _entropy_of, member_sums, tile_rows

#: Bins of the largest probability in :func:`entropy_bound_table`.
BOUND_BINS = 4096
#: Rows whose sum is further than this from 1 are never skipped.
ROW_SUM_SLACK = 1e-4
#: Margin for rounding in the bounds and in the exact scores.
_EPSILON = 1e-9

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


def entropy_bound_table(C: int) -> np.ndarray:
    """Upper bounds of the entropy of a row of C probabilities given its largest entry.

    ``table[b]`` bounds the entropy of every row whose largest entry ``q`` has
    ``int(q * BOUND_BINS) == b`` and whose sum is within :data:`ROW_SUM_SLACK` of 1
    (see the module docstring).  The bin's lower edge is taken one bin low to absorb
    rounding in ``q * BOUND_BINS``, and :data:`_EPSILON` is added for rounding in the
    entropy itself.  Non-increasing, for :func:`_bound_limit`.
    """
    d = ROW_SUM_SLACK
    edges = (np.arange(BOUND_BINS + 1, dtype=np.float64) - 1.0) / BOUND_BINS
    q = np.clip(edges / (1.0 + d), 1.0 / C, 1.0)
    rest = (1.0 - q) / (C - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -q * np.log(q) - np.where(rest > 0, (1.0 - q) * np.log(rest), 0.0)
    return np.minimum.accumulate((1.0 + d) * h + 2.0 * d + _EPSILON)


@numba.njit(inline="always", **_JIT)
def _entropy_bound_body(T, limit, threshold, weight, flags, store, C):
    # T holds weight x probabilities; the bounds' constants are scaled, not the entries.
    inverse = 1.0 / weight
    centre = weight / C
    log_c = np.log(C)
    base = log_c - threshold + _EPSILON  # the quadratic bound's constant side
    bins = BOUND_BINS * inverse
    kept = 0
    for j in range(T.shape[0]):
        best = np.float64(T[j, 0])
        total = best
        square = (best - centre) * (best - centre)
        for c in range(1, C):
            v = np.float64(T[j, c])
            total += v
            square += (v - centre) * (v - centre)
            best = v if v > best else best
        s = total * inverse
        q = best * inverse
        top = q if q > 1.0 / C else 1.0 / C
        # All comparisons are False for NaN, so NaN rows are kept (and score NaN).
        tabled = (best * bins >= limit) & (abs(s - 1.0) <= ROW_SUM_SLACK)
        quadratic = 2.0 * top * (base + (log_c - 1.0) * (s - 1.0)) < square * inverse * inverse
        skip = tabled | quadratic
        if store:
            flags[j] = 0.0 if skip else 1.0
        kept += 0 if skip else 1
    return kept


@numba.njit(inline="always", **_JIT)
def _entropy_bound(T, limit, threshold, weight, flags, store):
    C = T.shape[1]
    if C == 2:
        return _entropy_bound_body(T, limit, threshold, weight, flags, store, 2)
    if C == 3:
        return _entropy_bound_body(T, limit, threshold, weight, flags, store, 3)
    if C == 4:
        return _entropy_bound_body(T, limit, threshold, weight, flags, store, 4)
    return _entropy_bound_body(T, limit, threshold, weight, flags, store, C)


@numba.njit(**_JIT)
def _entropy_flags(T, limit, threshold, flags):
    """Flag (1.0) the rows of the probabilities ``T`` whose entropy may reach
    ``threshold`` (by the table, whose ``limit`` comes from :func:`_bound_limit`, and
    by the quadratic bound); return how many."""
    return _entropy_bound(T, limit, threshold, 1.0, flags, True)


@numba.njit(**_JIT)
def _entropy_count(T, limit, threshold, weight):
    """How many rows of ``T / weight`` may reach ``threshold``, as :func:`_entropy_flags`
    would flag them, storing nothing.

    For the consensus ``T`` holds the members' sums and ``weight`` is M: the scaled
    ``sum * (1 / M)`` differs from the mean ``sum / M`` by an ulp or two, far inside
    the bin of rounding slack that :func:`entropy_bound_table` keeps and inside
    :data:`_EPSILON`, so the division by M waits for the few rows that are scored.
    """
    return _entropy_bound(T, limit, threshold, weight, T[0], False)


@numba.njit(**_JIT)
def _bound_limit(bound, threshold):
    """Number of bins whose bound reaches ``threshold`` (``bound`` is non-increasing).

    A row whose largest entry ``q`` has ``q * BOUND_BINS >= limit`` lies in a bin past
    them, so (if its sum is close to 1) its entropy is below ``threshold``.
    """
    lo = 0
    hi = bound.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if bound[mid] >= threshold:
            lo = mid + 1
        else:
            hi = mid
    return np.float64(lo)


@numba.njit(**_JIT)
def _chosen(flags, n, out, chosen):
    """Row numbers whose flag is set into ``chosen``; return how many.  If any, ``out``
    is set to NaN for all ``n`` rows (the chosen ones are overwritten later)."""
    count = 0
    for j in range(n):
        if flags[j] != 0.0:
            chosen[count] = j
            count += 1
    if count > 0:
        out[:n] = np.nan
    return count


@numba.njit(**_JIT)
def entropy_pruned(T, threshold, bound, out, floats, ints):
    """Entropies of the rows of the (n, C) tile ``T`` that may reach ``threshold``
    (NaN elsewhere); return how many were scored (0: ``out`` left untouched)."""
    n, C = T.shape
    flags = floats[3]
    if _entropy_flags(T, _bound_limit(bound, threshold), threshold, flags) == 0:
        return 0
    rows = tile_rows(C)
    chosen = ints[rows * C : rows * C + rows]
    count = _chosen(flags, n, out, chosen)
    if count == 0:
        return 0
    values, clamped, logs = floats[0], floats[1], floats[2]
    V = values[: count * C].reshape((count, C))
    K = clamped[: count * C].reshape((count, C))
    for i in range(count):
        for c in range(C):
            v = np.float64(T[chosen[i], c])
            V[i, c] = v
            K[i, c] = v if v >= TINY else 1.0
    log_tile(clamped, ints, logs, count * C)
    exact = floats[4]
    _entropy_of(values, logs, count, C, exact)
    for i in range(count):
        out[chosen[i]] = exact[i]
    return count


@numba.njit(**_JIT)
def consensus_entropy_pruned(flat, M, N, C, i0, n, threshold, bound, out, floats, ints):
    """Consensus entropies of the rows that may reach ``threshold`` (NaN elsewhere);
    return how many were scored (0: ``out`` left untouched).

    One pass over the members, a chunk of :data:`SUM_CHUNK` numbers at a time: the
    chunk's members' sums (kept in L1) are bounded straight away, before any division
    or logarithm, and only a chunk with a row that may reach ``threshold`` goes on to
    the exact means (as :func:`~armillary_kernels._measures._consensus` computes them)
    and :func:`entropy_pruned`.  Chunks, not the whole tile: while a heap fills, most
    tiles hold a candidate or two.
    """
    sums = floats[5]
    limit = _bound_limit(bound, threshold)
    rows = max(1, SUM_CHUNK // C)
    exact = 0  # bit b: chunk b went to the exact path (a tile has at most 32 chunks)
    for b in range((n + rows - 1) // rows):
        r0 = b * rows
        r1 = min(n, r0 + rows)
        part = sums[: (r1 - r0) * C]  # the same 2 KiB every time: stays in L1
        member_sums(flat, M, N, C, (i0 + r0) * C, part)
        T = part.reshape((r1 - r0, C))
        if _entropy_count(T, limit, threshold, np.float64(M)) == 0:
            continue
        for e in range(part.shape[0]):
            part[e] = part[e] / M
        if entropy_pruned(T, threshold, bound, out[r0:r1], floats, ints) == 0:
            out[r0:r1] = np.nan
        exact |= np.int64(1) << b
    if exact == 0:
        return 0
    for b in range((n + rows - 1) // rows):
        if not (exact >> b) & 1:
            out[b * rows : min(n, (b + 1) * rows)] = np.nan
    return n


@numba.njit(inline="always", **_JIT)
def _kl_flags_body(T, inverse, limit, flags, C):
    for j in range(T.shape[0]):
        square = 0.0
        total = 0.0
        for c in range(C):
            p = np.float64(T[j, c])
            total += p
            square += p * p * inverse[j, c]
        skip = square < limit and abs(total - 1.0) <= ROW_SUM_SLACK  # False for NaN
        flags[j] = flags[j] if skip else 1.0


@numba.njit(**_JIT)
def _kl_flags(flat, M, N, C, i0, n, mean, inverse, limit, flags):
    """Flag the rows whose chi-square bound reaches ``limit`` (or that are odd)."""
    for e in range(n * C):
        q = mean[e]
        inverse[e] = 1.0 / q if q > 0.0 else 0.0
    W = inverse[: n * C].reshape((n, C))
    flags[:n] = 0.0
    for member in range(M):
        start = (member * N + i0) * C
        T = flat[start : start + n * C].reshape((n, C))
        _kl_flags_body(T, W, limit, flags, C)  # not specialised on C: compile time


@numba.njit(**_JIT)
def kl_rows(flat, M, N, C, i0, chosen, count, out, floats, ints):
    """``max_m KL(p_m || mean)`` of the rows ``i0 + chosen[:count]`` into ``out[:count]``.

    ``floats[5]`` must hold the tile's members' mean (:func:`_consensus`).
    """
    values, clamped, logs, mean_logs = floats[0], floats[1], floats[2], floats[4]
    mean = floats[5]
    m = count * C
    Q = mean_logs[:m].reshape((count, C))
    V = values[:m].reshape((count, C))
    K = clamped[:m].reshape((count, C))
    for i in range(count):
        for c in range(C):
            q = mean[chosen[i] * C + c]
            K[i, c] = q if q >= TINY else 1.0
    log_tile(clamped, ints, mean_logs, m)
    L = logs[:m].reshape((count, C))
    out[:count] = -np.inf
    for member in range(M):
        T = flat[(member * N + i0) * C :]
        for i in range(count):
            for c in range(C):
                v = np.float64(T[chosen[i] * C + c])
                V[i, c] = v
                K[i, c] = v if v >= TINY else 1.0
        log_tile(clamped, ints, logs, m)
        for i in range(count):
            kl = 0.0
            negative = False
            for c in range(C):
                p = V[i, c]
                negative |= p < 0.0
                kl += p * (L[i, c] - Q[i, c])
            best = out[i]
            if negative or kl != kl or best != best:
                out[i] = np.nan
            elif kl > best:
                out[i] = kl


@numba.njit(**_JIT)
def max_disagreement_rows(flat, M, N, C, i0, n, threshold, out, floats, ints):
    """Max disagreement of rows ``i0 .. i0 + n - 1``; with ``threshold > 0`` only of
    those whose bound reaches it (NaN elsewhere).  Return how many were scored (0:
    ``out`` left untouched)."""
    mean, flags = floats[5], floats[3]
    _consensus(flat, M, N, C, i0, n, mean)
    rows = tile_rows(C)
    chosen = ints[rows * C : rows * C + rows]
    target = threshold - _EPSILON
    if target > 0.0:
        d = ROW_SUM_SLACK
        limit = (1.0 - d) * np.exp(target / (1.0 + d)) * (1.0 - 1e-12)
        _kl_flags(flat, M, N, C, i0, n, mean, floats[4], limit, flags)
        count = _chosen(flags, n, out, chosen)
    else:
        for j in range(n):
            chosen[j] = j
        count = n
    if count == 0:
        return 0
    exact = floats[3]
    kl_rows(flat, M, N, C, i0, chosen, count, exact, floats, ints)
    for i in range(count):
        out[chosen[i]] = exact[i]
    return count
