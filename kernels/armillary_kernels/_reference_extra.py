"""Plain-numpy twins of the binning and fused-inference kernels.

:mod:`armillary_kernels._reference` holds the twins of the scoring kernels; these
define what :mod:`armillary_kernels.binning` and :mod:`armillary_kernels.fused` must
compute, written the straightforward way (``numpy.searchsorted``, ``numpy.add.at``, a
vectorised walk of scikit-learn's own tree arrays).  For tests and reading only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def bin_index_ref(v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value, as ``numpy.histogramdd`` assigns it; -1 outside the edges."""
    nb = edges.size - 1
    index = np.searchsorted(edges, v, side="right") - 1
    index[v == edges[-1]] = nb - 1  # the last bin includes its right edge
    index[(v < edges[0]) | (v > edges[-1]) | ~np.isfinite(v)] = -1
    return index


def _cells(x, y, limits, shape):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    (x0, x1), (y0, y1) = limits
    nx, ny = (shape, shape) if np.ndim(shape) == 0 else shape
    ix = bin_index_ref(x, np.linspace(x0, x1, nx + 1))
    iy = bin_index_ref(y, np.linspace(y0, y1, ny + 1))
    finite = np.isfinite(x) & np.isfinite(y)
    return ix, iy, finite, (nx, ny)


def counts2d_ref(x, y, limits, shape, by=None, n_classes=None) -> tuple[np.ndarray, int]:
    """Counts per bin (per class with ``by``) and the number of non-finite rows."""
    ix, iy, finite, (nx, ny) = _cells(x, y, limits, shape)
    keep = (ix >= 0) & (iy >= 0)
    if by is None:
        grid = np.zeros((nx, ny), dtype=np.int64)
        np.add.at(grid, (ix[keep], iy[keep]), 1)
        return grid, int((~finite).sum())
    codes = np.asarray(by, dtype=np.int64)
    n_classes = int(codes.max()) + 1 if n_classes is None else n_classes
    keep &= codes >= 0
    grid = np.zeros((n_classes, nx, ny), dtype=np.int64)
    np.add.at(grid, (codes[keep], ix[keep], iy[keep]), 1)
    return grid, int((~finite).sum())


def stat2d_ref(x, y, values, limits, shape, statistic="mean") -> tuple[np.ndarray, int]:
    """A per-bin statistic of ``values`` and the number of skipped (non-finite) rows."""
    ix, iy, finite, (nx, ny) = _cells(x, y, limits, shape)
    z = np.asarray(values, dtype=np.float64)
    finite &= np.isfinite(z)
    keep = finite & (ix >= 0) & (iy >= 0)
    cell = (ix[keep], iy[keep])
    count = np.zeros((nx, ny), dtype=np.int64)
    np.add.at(count, cell, 1)
    if statistic == "count":
        return count, int((~finite).sum())
    if statistic in ("sum", "mean"):
        grid = np.zeros((nx, ny))
        np.add.at(grid, cell, z[keep])
        if statistic == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                grid = grid / count
    else:
        grid = np.full((nx, ny), np.inf if statistic == "min" else -np.inf)
        (np.minimum if statistic == "min" else np.maximum).at(grid, cell, z[keep])
    if statistic != "sum":
        grid[count == 0] = np.nan
    return grid, int((~finite).sum())


def trees_proba_ref(X: np.ndarray, trees: Sequence[Any]) -> np.ndarray:
    """Mean leaf class fractions over scikit-learn ``Tree`` objects (as
    ``ForestClassifier.predict_proba``): X rounded to float32, left when
    ``x <= threshold``, a NaN where ``missing_go_to_left`` says."""
    X = np.asarray(X).astype(np.float32).astype(np.float64)
    rows = np.arange(X.shape[0])
    total = None
    for tree in trees:
        left, right = tree.children_left, tree.children_right
        missing = getattr(tree, "missing_go_to_left", np.zeros(left.size, bool)).astype(bool)
        node = np.zeros(X.shape[0], dtype=np.int64)
        while True:
            inner = left[node] >= 0
            if not inner.any():
                break
            x = X[rows, np.where(inner, tree.feature[node], 0)]
            go_left = np.where(np.isnan(x), missing[node], x <= tree.threshold[node])
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        value = np.asarray(tree.value)[:, 0, :][node]
        total = value if total is None else total + value
    return total / len(trees)


def linear_proba_ref(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Softmax of ``X @ coef.T + intercept``, or ``[1 - p, p]`` with the logistic
    ``p`` for a single row of ``coef``."""
    z = np.asarray(X, dtype=np.float64) @ np.asarray(coef).T + np.asarray(intercept)
    if z.shape[1] == 1:
        p = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.stack([1.0 - p, p], axis=1)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
