"""Fused inference and scoring: from the feature matrix straight to scores and top-k.

For a tree ensemble (a random forest or extra-trees classifier) or a linear softmax /
logistic model, :func:`fused_top_k` computes each tile of rows' class probabilities in
a small buffer, scores them and offers them to the running top-k, so the N x C
probability matrix is never built.  The probabilities are those of scikit-learn's
``predict_proba``:

- trees: ``X`` is rounded to float32 (as scikit-learn does), each tree is walked from
  its root (left when ``x <= threshold``; a NaN goes where ``missing_go_to_left``
  says), the leaf's class fractions are summed over the trees in order and divided by
  the number of trees.  This is the same arithmetic in the same order, so the
  probabilities, scores and picks match ``predict_proba`` + :func:`top_k` exactly.
- linear: ``z = X @ coef.T + intercept``; softmax over the classes, or for one row of
  coefficients (binary) ``p1 = 1 / (1 + exp(-z))`` and ``P = [1 - p1, p1]``.  Dot
  products are summed in feature order (BLAS may use another), so this agrees to
  rounding.

The models are plain arrays (:class:`TreeEnsemble`, :class:`LinearModel`); this module
never imports scikit-learn.  :func:`armillary_kernels.sklearn_adapter.from_sklearn`
reads them off a fitted estimator.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from . import _validate
from ._select import in_blocks, run_block, top_k_blocks
from .forest import TreeEnsemble, pack_trees, trees_tile
from .scoring import METHODS, _table

__all__ = [
    "LinearModel",
    "TreeEnsemble",
    "fused_proba",
    "fused_scores",
    "fused_top_k",
    "linear_model",
    "pack_trees",
]

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_TREES, _LINEAR = 0, 1


class LinearModel(NamedTuple):
    """A linear classifier: ``coef`` (K, F), ``intercept`` (K,); K = 1 means binary."""

    coef: np.ndarray
    intercept: np.ndarray


# --------------------------------------------------------------------------- kernels


#: Probabilities per tile (rows x classes; 2 MiB): each tree's nodes are read from
#: memory once per tile, so a tile has many rows (65,536 for 4 classes) to reuse
#: them, while its features and probabilities stay in the L3 cache.
_TILE_NUMBERS = 2**18


@numba.njit(**_JIT)
def _linear_tile(X, coef, intercept, A):
    """Softmax (or, for one row of ``coef``, logistic) probabilities into ``A`` (n, C)."""
    n, C = A.shape
    K, F = coef.shape
    for j in range(n):
        for k in range(K):
            z = 0.0
            for f in range(F):
                z += np.float64(X[j, f]) * coef[k, f]
            A[j, k] = z + intercept[k]
        if K == 1:
            p = 1.0 / (1.0 + np.exp(-A[j, 0]))
            A[j, 0] = 1.0 - p
            A[j, 1] = p
            continue
        top = A[j, 0]
        for c in range(1, C):
            top = max(top, A[j, c])
        total = 0.0
        for c in range(C):
            A[j, c] = np.exp(A[j, c] - top)
            total += A[j, c]
        for c in range(C):
            A[j, c] = A[j, c] / total


@numba.njit(**_JIT)
def _fused_tile(X, kind, trees, linear, A):
    """Class probabilities of the rows of ``X`` into ``A`` (n, C)."""
    if kind == _TREES:
        trees_tile(X, trees, A)
    else:
        _linear_tile(X, linear[0], linear[1], A)


def _drain(A: np.ndarray, i0: int, sink: tuple, count: int) -> int:
    """Send the probabilities ``A`` of rows ``i0 ..`` to ``sink``; return the heap count.

    ``sink`` is ``("proba", array)``, ``("scores", code, table, out)`` or
    ``("top_k", code, table, mask, has_exclude, offset, seed, hs, hh, hi)``.  Scores
    and selection come from the shared compiled :func:`run_block`, so the scoring code
    is compiled once for all models.
    """
    n, C = A.shape
    if sink[0] == "proba":
        sink[1][i0 : i0 + n] = A
        return count
    flat = A.reshape(-1)
    if sink[0] == "scores":
        _, code, table, out = sink
        no_selection = (_NO_MASK, False, 0, np.uint64(0), *_NO_HEAP, 0)
        run_block(flat, 1, n, C, 0, n, code, table, out[i0 : i0 + n], *no_selection)
        return count
    _, code, table, mask, has_exclude, offset, seed, hs, hh, hi = sink
    part = mask[i0 : i0 + n] if has_exclude else mask
    heap = (part, has_exclude, offset + i0, seed, hs, hh, hi, count)
    return run_block(flat, 1, n, C, 0, n, code, table, _EMPTY, *heap)


def _run(X, model: tuple, start: int, stop: int, sink: tuple, count: int = 0) -> int:
    """Rows ``start .. stop - 1``, a tile at a time: probabilities from
    :func:`_fused_tile`, then :func:`_drain` to ``sink``; return the heap count (a
    top-k ``sink``'s heap holds ``count`` entries on entry)."""
    kind, trees, linear, C = model
    tile = max(1024, _TILE_NUMBERS // C)
    buffer = np.empty((tile, C), dtype=np.float64)
    for i0 in range(start, stop, tile):
        n = min(tile, stop - i0)
        _fused_tile(X[i0 : i0 + n], kind, trees, linear, buffer[:n])
        count = _drain(buffer[:n], i0, sink, count)
    return count


def linear_model(coef, intercept) -> LinearModel:
    """Check and hold a linear classifier's ``coef`` (K, F) and ``intercept`` (K,).

    K = 1 is a binary logistic model (class 1's log-odds); K >= 3 a softmax model.

    Raises
    ------
    ValueError
        On shapes that do not fit, K = 2, or non-finite coefficients.
    """
    coef = np.ascontiguousarray(np.asarray(coef, dtype=np.float64))
    intercept = np.ascontiguousarray(np.asarray(intercept, dtype=np.float64).reshape(-1))
    if coef.ndim != 2 or coef.shape[0] == 2 or intercept.shape != (coef.shape[0],):
        msg = (
            f"coef must be (K, F) with K = 1 (binary) or K >= 3 and intercept (K,); got "
            f"{coef.shape} and {intercept.shape}"
        )
        raise ValueError(msg)
    if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
        msg = "coef and intercept must be finite"
        raise ValueError(msg)
    return LinearModel(coef, intercept)


# ------------------------------------------------------------------------- public

_NO_TREES = (
    np.zeros((1, 2), np.int64),
    np.zeros(1, np.int32),
    np.zeros((1, 2)),
    *(np.zeros(0, np.int64),) * 2,
)
_NO_LINEAR = (np.zeros((1, 1)), np.zeros(1))
_NO_HEAP = (np.zeros(0), np.zeros(0, np.uint64), np.zeros(0, np.int64))
_EMPTY = np.zeros(0)
_NO_MASK = np.zeros(0, np.bool_)


def _prepare(X, model) -> tuple[np.ndarray, tuple]:
    """Validate ``X`` against ``model``; return X and (kind, trees, linear, n_classes)."""
    if isinstance(model, TreeEnsemble):
        kind, n_features, n_classes = _TREES, model.n_features, model.value.shape[1]
        trees, linear = tuple(model[:5]), _NO_LINEAR
    elif isinstance(model, LinearModel):
        kind, n_features = _LINEAR, model.coef.shape[1]
        n_classes = max(2, model.coef.shape[0])
        trees, linear = _NO_TREES, (model.coef, model.intercept)
    else:
        msg = (
            f"model must be a TreeEnsemble or LinearModel (see sklearn_adapter.from_sklearn); "
            f"got {type(model).__name__}"
        )
        raise ValueError(msg)
    X = _validate.float_array(X, "X", 2, "rows x features")
    if X.shape[1] != n_features:
        msg = f"X has {X.shape[1]} features but the model was fitted on {n_features}"
        raise ValueError(msg)
    return X, (kind, trees, linear, n_classes)


def fused_proba(X, model) -> np.ndarray:
    """Class probabilities of ``model`` for the rows of ``X`` (as ``predict_proba``).

    Parameters
    ----------
    X : array_like
        Features, shape (N, F), float32 or float64.
    model : TreeEnsemble or LinearModel

    Returns
    -------
    numpy.ndarray
        float64, shape (N, C).

    Raises
    ------
    ValueError
        On a bad ``X`` or ``model``.
    """
    X, model_arrays = _prepare(X, model)
    n = X.shape[0]
    proba = np.empty((n, model_arrays[3]), dtype=np.float64)

    def kernel(_b: int, start: int, stop: int) -> int:
        return _run(X, model_arrays, start, stop, ("proba", proba))

    if n:
        in_blocks(kernel, n, _validate.n_blocks(n))
    return proba


def fused_scores(X, model, method: str = "margin") -> np.ndarray:
    """Scores of ``model``'s probabilities for the rows of ``X``, never building them.

    Parameters
    ----------
    X : array_like
        Features, shape (N, F), float32 or float64.
    model : TreeEnsemble or LinearModel
    method : {"margin", "least-confidence", "least_confidence", "entropy"}

    Returns
    -------
    numpy.ndarray
        float64, shape (N,).

    Raises
    ------
    ValueError
        On a bad ``X``, ``model`` or ``method``.
    """
    code = _validate.method(method, METHODS)
    X, model_arrays = _prepare(X, model)
    n = X.shape[0]
    out = np.empty(n, dtype=np.float64)
    sink = ("scores", code, _table(code, model_arrays[3]), out)

    def kernel(_b: int, start: int, stop: int) -> int:
        return _run(X, model_arrays, start, stop, sink)

    if n:
        in_blocks(kernel, n, _validate.n_blocks(n))
    return out


def fused_top_k(
    X,
    model,
    k: int,
    method: str = "margin",
    exclude=None,
    random_state: int = 0,
    offset: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick the ``k`` most informative rows of ``X`` under ``model`` in one pass.

    Same selection as :func:`armillary_kernels.top_k` on ``fused_proba(X, model)``
    (and the same picks, see the module docstring), without the N x C matrix.

    Parameters
    ----------
    X : array_like
        Features, shape (N, F), float32 or float64.
    model : TreeEnsemble or LinearModel
        From :func:`pack_trees`, :func:`linear_model` or
        :func:`armillary_kernels.sklearn_adapter.from_sklearn`.
    k, method, exclude, random_state, offset
        As for :func:`armillary_kernels.top_k`.

    Returns
    -------
    indices, scores : numpy.ndarray
        Global row indices (int64) and scores (float64), best first.

    Raises
    ------
    ValueError
        On a bad ``X``, ``model``, ``k``, ``method``, ``exclude``, ``random_state`` or
        ``offset``.
    """
    code = _validate.method(method, METHODS)
    X, model_arrays = _prepare(X, model)
    k = _validate.integer(k, "k", 1)
    n = X.shape[0]
    mask, has_exclude = _validate.exclude_mask(exclude, n, "X")
    seed = _validate.random_state(random_state)
    offset = _validate.integer(offset, "offset", 0)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    table = _table(code, model_arrays[3])

    def block(start: int, stop: int, hs, hh, hi, count: int) -> int:
        sink = ("top_k", code, table, mask, has_exclude, offset, seed, hs, hh, hi)
        return _run(X, model_arrays, start, stop, sink, count)

    return top_k_blocks(block, n, k, _validate.n_blocks(n))
