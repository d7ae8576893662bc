"""2-D binning for density plots: counts, per-class counts and per-bin statistics.

Bins follow :func:`numpy.histogram2d` exactly: ``shape = (nx, ny)`` equal bins between
``limits = ((xmin, xmax), (ymin, ymax))``, edges ``numpy.linspace(min, max, n + 1)``,
each bin half-open ``[left, right)`` except the last, which includes its right edge.
Points outside the limits are dropped (as numpy does).  A row whose ``x`` or ``y`` (or,
for :func:`stat2d`, value) is NaN or infinite is skipped and counted: every function
returns ``(grid, n_skipped)``.  Grids are indexed ``grid[ix, iy]``, like numpy's.

The pool is cut into one block of rows per numba thread; each block fills a private
grid (the kernels release the GIL and run on a thread pool), and the grids are summed
(or min/max-ed) at the end.  Each block reads its rows once.
"""

from __future__ import annotations

import numba
import numpy as np

from . import _validate
from ._select import in_blocks

__all__ = ["counts2d", "stat2d"]

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}

STATISTICS = ("count", "sum", "mean", "min", "max")
_SUM, _MIN, _MAX = 0, 1, 2


#: Points closer than this (in bin widths) to a bin edge get the exact edge test.
_NEAR_EDGE = 1e-7
#: Points per tile: bin indices are computed a tile at a time into a small buffer.
_TILE = 1024
_OUTSIDE = -1
_NOT_FINITE = -2


@numba.njit(**_JIT)
def _bin(v, edges, scale):
    """Bin of finite ``v`` among ``len(edges) - 1`` equal bins, or -1 outside.

    The arithmetic guess is corrected against the edges themselves, so the result is
    exactly ``searchsorted(edges, v, side="right") - 1`` (last bin closed).
    """
    nb = edges.shape[0] - 1
    lo = edges[0]
    if v < lo or v > edges[nb]:
        return -1
    i = int((v - lo) * scale)
    i = min(max(i, 0), nb - 1)
    if v < edges[i]:
        i -= 1
    elif i < nb - 1 and v >= edges[i + 1]:
        i += 1
    return i


@numba.njit(**_JIT)
def _tile_bins(x, y, xe, ye, xs, ys, idx, near):
    """Flat bin ``ix * ny + iy`` of each point of a tile into ``idx`` (vectorised).

    ``idx`` is -1 outside the limits and -2 for a NaN or infinite coordinate.  The
    arithmetic bin is exact unless the point lies within :data:`_NEAR_EDGE` bin widths
    of an edge (rounding in ``(u - min) * scale`` and in the edges themselves is below
    1e-11 bin widths for any grid up to a million bins); those few are flagged in
    ``near`` for :func:`_bin`.  Returns the number of non-finite points.
    """
    nx = xe.shape[0] - 1
    ny = ye.shape[0] - 1
    x0, x1, y0, y1 = xe[0], xe[nx], ye[0], ye[ny]
    skipped = 0
    for j in range(x.shape[0]):
        u = np.float64(x[j])
        v = np.float64(y[j])
        finite = (abs(u) < np.inf) & (abs(v) < np.inf)  # False for NaN and +-inf
        skipped += 0 if finite else 1
        inside = finite & (u >= x0) & (u <= x1) & (v >= y0) & (v <= y1)
        a = (u - x0) * xs if inside else 0.5
        b = (v - y0) * ys if inside else 0.5
        ix = int(a)
        iy = int(b)
        fa = a - ix
        fb = b - iy
        near[j] = (
            (fa < _NEAR_EDGE)
            | (fa > 1.0 - _NEAR_EDGE)
            | (fb < _NEAR_EDGE)
            | (fb > 1.0 - _NEAR_EDGE)
            | (ix >= nx)
            | (iy >= ny)
        )
        outside = _OUTSIDE if finite else _NOT_FINITE
        idx[j] = ix * ny + iy if inside else outside
    return skipped


@numba.njit(**_JIT)
def _exact_bin(u, v, xe, ye, xs, ys):
    return _bin(np.float64(u), xe, xs) * (ye.shape[0] - 1) + _bin(np.float64(v), ye, ys)


@numba.njit(**_JIT)
def _count_block(x, y, by, has_by, xe, ye, xs, ys, grid):
    """Count one block's points into the flat ``grid`` (K * nx * ny); return skipped."""
    cells = (xe.shape[0] - 1) * (ye.shape[0] - 1)
    n_classes = grid.shape[0] // cells
    idx = np.empty(_TILE, dtype=np.int64)
    near = np.empty(_TILE, dtype=np.bool_)
    skipped = 0
    for start in range(0, x.shape[0], _TILE):
        m = min(_TILE, x.shape[0] - start)
        xt = x[start : start + m]
        yt = y[start : start + m]
        skipped += _tile_bins(xt, yt, xe, ye, xs, ys, idx, near)
        for j in range(m):
            cell = idx[j]
            if cell < 0:
                continue
            if near[j]:
                cell = _exact_bin(xt[j], yt[j], xe, ye, xs, ys)
            if has_by:
                k = by[start + j]
                if k < 0 or k >= n_classes:
                    continue
                cell += k * cells
            grid[cell] += 1
    return skipped


@numba.njit(**_JIT)
def _stat_block(x, y, z, mode, xe, ye, xs, ys, counts, acc):
    """Accumulate one block's values into the flat ``counts`` and ``acc`` (sum, min or
    max); return the rows skipped (non-finite coordinate or value)."""
    idx = np.empty(_TILE, dtype=np.int64)
    near = np.empty(_TILE, dtype=np.bool_)
    skipped = 0
    for start in range(0, x.shape[0], _TILE):
        m = min(_TILE, x.shape[0] - start)
        xt = x[start : start + m]
        yt = y[start : start + m]
        skipped += _tile_bins(xt, yt, xe, ye, xs, ys, idx, near)
        for j in range(m):
            cell = idx[j]
            if cell == _NOT_FINITE:
                continue
            w = np.float64(z[start + j])
            if not np.isfinite(w):
                skipped += 1
                continue
            if cell < 0:
                continue
            if near[j]:
                cell = _exact_bin(xt[j], yt[j], xe, ye, xs, ys)
            counts[cell] += 1
            if mode == _SUM:
                acc[cell] += w
            elif mode == _MIN:
                acc[cell] = min(acc[cell], w)
            else:
                acc[cell] = max(acc[cell], w)
    return skipped


# --------------------------------------------------------------------- validation


def _column(values, name: str, n: int | None = None) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        msg = f"{name} must be a 1-D array; got shape {array.shape}"
        raise ValueError(msg)
    if array.dtype.kind in "iub":
        array = array.astype(np.float64)
    elif array.dtype.kind != "f" or array.dtype.itemsize not in (4, 8):
        msg = f"{name} has dtype {array.dtype}; it must be numeric (float32/float64 read directly)"
        raise ValueError(msg)
    if n is not None and array.shape[0] != n:
        msg = f"{name} has {array.shape[0]} rows but x has {n}; they must match"
        raise ValueError(msg)
    return _validate.native(array)


def _shape(shape) -> tuple[int, int]:
    if isinstance(shape, (tuple, list)):
        if len(shape) != 2:
            msg = f"shape must be an int or a pair (nx, ny); got {shape!r}"
            raise ValueError(msg)
        return (
            _validate.integer(shape[0], "shape[0]", 1),
            _validate.integer(shape[1], "shape[1]", 1),
        )
    size = _validate.integer(shape, "shape", 1)
    return size, size


def _edges(limits, shape: tuple[int, int]) -> list[tuple[np.ndarray, float]]:
    try:
        pairs = np.asarray(limits, dtype=np.float64)
    except (TypeError, ValueError):
        msg = f"limits must be ((xmin, xmax), (ymin, ymax)); got {limits!r}"
        raise ValueError(msg) from None
    if pairs.shape != (2, 2):
        msg = f"limits must be ((xmin, xmax), (ymin, ymax)); got {limits!r}"
        raise ValueError(msg)
    out = []
    for axis, ((lo, hi), nb) in enumerate(zip(pairs, shape, strict=True)):
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            msg = f"limits[{axis}] = ({lo}, {hi}): need finite values with min < max"
            raise ValueError(msg)
        out.append((np.linspace(lo, hi, nb + 1), nb / (hi - lo)))
    return out


def _classes(by, n: int, n_classes) -> tuple[np.ndarray, int]:
    codes = np.asarray(by)
    if codes.ndim != 1 or codes.shape[0] != n:
        msg = f"by must be a 1-D array of {n} class codes (one per row); got shape {codes.shape}"
        raise ValueError(msg)
    if codes.dtype.kind not in "iu":
        msg = f"by must hold integer class codes; got dtype {codes.dtype}"
        raise ValueError(msg)
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    top = int(codes.max()) if n else -1
    if n_classes is None:
        if top < 0:
            msg = "by holds no class code >= 0; pass n_classes to get empty grids"
            raise ValueError(msg)
        return codes, top + 1
    n_classes = _validate.integer(n_classes, "n_classes", 1)
    if top >= n_classes:
        msg = (
            f"by holds class code {top} but n_classes is {n_classes}; codes run 0 .. n_classes - 1"
        )
        raise ValueError(msg)
    return codes, n_classes


# ------------------------------------------------------------------------- public


def counts2d(x, y, limits, shape, by=None, n_classes=None) -> tuple[np.ndarray, int]:
    """Count points in a regular 2-D grid, optionally one grid per class.

    Parameters
    ----------
    x, y : array_like
        Coordinates, 1-D, same length; float32/float64 are read in place, integers are
        converted.
    limits : ((xmin, xmax), (ymin, ymax))
        Outer edges of the grid (finite, min < max).
    shape : int or (int, int)
        Bins along x and y (tested up to 2048 x 2048).
    by : array_like of int, optional
        Class code of every row: one grid per class.  Negative codes (e.g. -1 for "no
        label") are left out without being counted as skipped.
    n_classes : int, optional
        Number of class grids; default ``max(by) + 1``.

    Returns
    -------
    grid : numpy.ndarray
        int64 counts, shape (nx, ny), or (n_classes, nx, ny) with ``by``.
    n_skipped : int
        Rows skipped because ``x`` or ``y`` is NaN or infinite.

    Raises
    ------
    ValueError
        On arrays of the wrong shape or dtype, bad ``limits`` or ``shape``, or a class
        code >= ``n_classes``.
    """
    x = _column(x, "x")
    y = _column(y, "y", x.shape[0])
    nx, ny = _shape(shape)
    (xe, xs), (ye, ys) = _edges(limits, (nx, ny))
    n = x.shape[0]
    has_by = by is not None
    codes, n_grids = _classes(by, n, n_classes) if has_by else (np.zeros(0, np.int64), 1)
    n_blocks = _validate.n_blocks(n)
    grids = np.zeros((n_blocks, n_grids * nx * ny), dtype=np.int64)

    def kernel(b: int, start: int, stop: int) -> int:
        part = codes[start:stop] if has_by else codes
        return _count_block(x[start:stop], y[start:stop], part, has_by, xe, ye, xs, ys, grids[b])

    skipped = sum(in_blocks(kernel, n, n_blocks)) if n else 0
    grid = (grids[0] if n_blocks == 1 else grids.sum(axis=0)).reshape(n_grids, nx, ny)
    return (grid if has_by else grid[0]), int(skipped)


def stat2d(x, y, values, limits, shape, statistic: str = "mean") -> tuple[np.ndarray, int]:
    """A statistic of ``values`` in each bin of a regular 2-D grid.

    Parameters
    ----------
    x, y : array_like
        Coordinates, 1-D, same length (see :func:`counts2d`).
    values : array_like
        The column to summarise, 1-D, same length.
    limits : ((xmin, xmax), (ymin, ymax))
        Outer edges of the grid.
    shape : int or (int, int)
        Bins along x and y.
    statistic : {"count", "sum", "mean", "min", "max"}
        Per-bin statistic.  Empty bins hold NaN for "mean", "min" and "max".

    Returns
    -------
    grid : numpy.ndarray
        float64 (int64 for "count"), shape (nx, ny).
    n_skipped : int
        Rows skipped because ``x``, ``y`` or the value is NaN or infinite.

    Raises
    ------
    ValueError
        On arrays of the wrong shape or dtype, bad ``limits`` or ``shape``, or an
        unknown ``statistic``.
    """
    if statistic not in STATISTICS:
        names = ", ".join(repr(name) for name in STATISTICS)
        msg = f"unknown statistic {statistic!r}; valid names are {names}"
        raise ValueError(msg)
    x = _column(x, "x")
    y = _column(y, "y", x.shape[0])
    z = _column(values, "values", x.shape[0])
    nx, ny = _shape(shape)
    (xe, xs), (ye, ys) = _edges(limits, (nx, ny))
    n = x.shape[0]
    mode = {"min": _MIN, "max": _MAX}.get(statistic, _SUM)
    start_value = {_SUM: 0.0, _MIN: np.inf, _MAX: -np.inf}[mode]
    n_blocks = _validate.n_blocks(n)
    counts = np.zeros((n_blocks, nx * ny), dtype=np.int64)
    acc = np.full((n_blocks, nx * ny), start_value, dtype=np.float64)

    def kernel(b: int, start: int, stop: int) -> int:
        return _stat_block(
            x[start:stop], y[start:stop], z[start:stop], mode, xe, ye, xs, ys, counts[b], acc[b]
        )

    skipped = int(sum(in_blocks(kernel, n, n_blocks))) if n else 0
    return _finish(statistic, mode, counts, acc, (nx, ny)), skipped


def _finish(statistic: str, mode: int, counts, acc, shape) -> np.ndarray:
    """Combine the blocks' grids into the statistic's grid."""
    count = counts.sum(axis=0).reshape(shape)
    if statistic == "count":
        return count
    reduce = {_SUM: np.sum, _MIN: np.min, _MAX: np.max}[mode]
    total = reduce(acc, axis=0).reshape(shape)
    if statistic == "sum":
        return total
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = total / count if statistic == "mean" else total
    grid[count == 0] = np.nan
    return grid
