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

from collections.abc import Sequence
from typing import Any, NamedTuple

import numba
import numpy as np

from . import _validate
from ._select import in_blocks, run_block, top_k_blocks
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


class TreeEnsemble(NamedTuple):
    """Trees packed for walking; see :func:`pack_trees`.

    Nodes are renumbered level by level (breadth first), so that a node's right child
    follows its left child, and each node is one 16-byte record: one memory access per
    step of a walk.  A leaf points to itself with threshold +inf, so a walk can take
    more steps than the leaf's depth without testing for leaves.
    """

    nodes: np.ndarray  # int64 (n_nodes, 2): threshold bits; left << 32 | feature
    nan_child: np.ndarray  # int32 (n_nodes,): where a NaN feature goes
    value: np.ndarray  # float64 (n_nodes, n_classes): class fractions at leaves
    roots: np.ndarray  # int64 (n_trees,)
    depths: np.ndarray  # int64 (n_trees,): longest root-to-leaf path
    n_features: int


class LinearModel(NamedTuple):
    """A linear classifier: ``coef`` (K, F), ``intercept`` (K,); K = 1 means binary."""

    coef: np.ndarray
    intercept: np.ndarray


# --------------------------------------------------------------------------- kernels


#: Probabilities per tile (rows x classes; 2 MiB): each tree's nodes are read from
#: memory once per tile, so a tile has many rows (65,536 for 4 classes) to reuse
#: them, while its features and probabilities stay in the L3 cache.
_TILE_NUMBERS = 2**18
#: Rows walked down a tree together: independent walks keep the memory system busy
#: while each one waits for its next node (a single walk is one long chain of loads).
_LANES = 8
_LOW = np.int64(0xFFFFFFFF)


@numba.njit(inline="always", **_JIT)
def _walk(X, g0, m, root, depth, trees, lanes, nan_aware):
    """Walk rows ``g0 .. g0 + m - 1`` of ``X`` down one tree; leaves into ``lanes``.

    The step is branch-free, ``left + (x > threshold)``: a data-dependent branch would
    be mispredicted half the time.  ``nan_aware`` (a literal, so each variant compiles
    on its own) adds the test for NaN features, which costs about a third more.
    """
    nodes, nan_child = trees[0], trees[1]
    thresholds = nodes.view(np.float64)
    for g in range(m):
        lanes[g] = root
    for _ in range(depth):
        moved = 0
        for g in range(m):
            node = lanes[g]
            bits = nodes[node, 1]
            x = np.float64(np.float32(X[g0 + g, bits & _LOW]))
            child = (bits >> 32) + (1 if x > thresholds[node, 0] else 0)
            if nan_aware and x != x:
                child = nan_child[node]
            moved += 0 if child == node else 1
            lanes[g] = child
        if moved == 0:  # every walk has reached its leaf
            return


@numba.njit(inline="always", **_JIT)
def _step(X, row, node, nodes, thresholds):
    bits = nodes[node, 1]
    x = np.float64(np.float32(X[row, bits & _LOW]))
    return (bits >> 32) + (1 if x > thresholds[node, 0] else 0)


@numba.njit(**_JIT)
def _walk8(X, g0, root, depth, nodes, lanes):
    """:func:`_walk` for 8 rows without NaN, the walks held in registers."""
    thresholds = nodes.view(np.float64)
    c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = root
    for _ in range(depth):
        n0 = _step(X, g0, c0, nodes, thresholds)
        n1 = _step(X, g0 + 1, c1, nodes, thresholds)
        n2 = _step(X, g0 + 2, c2, nodes, thresholds)
        n3 = _step(X, g0 + 3, c3, nodes, thresholds)
        n4 = _step(X, g0 + 4, c4, nodes, thresholds)
        n5 = _step(X, g0 + 5, c5, nodes, thresholds)
        n6 = _step(X, g0 + 6, c6, nodes, thresholds)
        n7 = _step(X, g0 + 7, c7, nodes, thresholds)
        same = (n0 == c0) & (n1 == c1) & (n2 == c2) & (n3 == c3)
        same &= (n4 == c4) & (n5 == c5) & (n6 == c6) & (n7 == c7)
        c0, c1, c2, c3, c4, c5, c6, c7 = n0, n1, n2, n3, n4, n5, n6, n7
        if same:
            break
    lanes[0], lanes[1], lanes[2], lanes[3] = c0, c1, c2, c3
    lanes[4], lanes[5], lanes[6], lanes[7] = c4, c5, c6, c7


@numba.njit(**_JIT)
def _has_nan(X):
    count = 0
    for j in range(X.shape[0]):
        for f in range(X.shape[1]):
            count += 1 if X[j, f] != X[j, f] else 0
    return count > 0


@numba.njit(**_JIT)
def _trees_tile(X, trees, A):
    """Mean class fractions of the trees for the rows of ``X`` into ``A`` (n, C).

    Tree by tree over the whole tile (not row by row), so that a tree's nodes are
    fetched once per tile; ``_LANES`` rows walk the tree together.
    """
    value, roots, depths = trees[2], trees[3], trees[4]
    n, C = A.shape
    A[:, :] = 0.0
    lanes = np.empty(_LANES, dtype=np.int64)
    nan_aware = _has_nan(X)
    full = n - n % _LANES
    for t in range(roots.shape[0]):
        for g0 in range(0, n, _LANES):
            # A constant lane count (after inlining) lets LLVM unroll the lanes into
            # registers: twice as fast as a variable count.
            m = _LANES if g0 < full else n - full
            if g0 < full and nan_aware:
                _walk(X, g0, _LANES, roots[t], depths[t], trees, lanes, True)
            elif g0 < full:
                _walk8(X, g0, roots[t], depths[t], trees[0], lanes)
            else:
                _walk(X, g0, m, roots[t], depths[t], trees, lanes, True)
            for g in range(m):
                node = lanes[g]
                for c in range(C):
                    A[g0 + g, c] += value[node, c]
    count = roots.shape[0]
    for j in range(n):
        for c in range(C):
            A[j, c] = A[j, c] / count


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
        _trees_tile(X, trees, A)
    else:
        _linear_tile(X, linear[0], linear[1], A)


def _run(X, model: tuple, start: int, stop: int, sink: tuple) -> int:
    """Rows ``start .. stop - 1``, a tile at a time: probabilities from
    :func:`_fused_tile`, then scores and selection from the shared compiled
    :func:`run_block` (so the scoring code is compiled once for all models).

    ``sink`` is ``("proba", array)``, ``("scores", code, table, out)`` or
    ``("top_k", code, table, mask, has_exclude, offset, seed, hs, hh, hi)``.
    """
    kind, trees, linear, C = model
    tile = max(1024, _TILE_NUMBERS // C)
    buffer = np.empty((tile, C), dtype=np.float64)
    count = 0
    for i0 in range(start, stop, tile):
        n = min(tile, stop - i0)
        A = buffer[:n]
        _fused_tile(X[i0 : i0 + n], kind, trees, linear, A)
        flat = A.reshape(-1)
        if sink[0] == "proba":
            sink[1][i0 : i0 + n] = A
        elif sink[0] == "scores":
            _, code, table, out = sink
            run_block(
                flat,
                1,
                n,
                C,
                0,
                n,
                code,
                table,
                out[i0 : i0 + n],
                _NO_MASK,
                False,
                0,
                np.uint64(0),
                *_NO_HEAP,
                0,
            )
        else:
            _, code, table, mask, has_exclude, offset, seed, hs, hh, hi = sink
            part = mask[i0 : i0 + n] if has_exclude else mask
            count = run_block(
                flat,
                1,
                n,
                C,
                0,
                n,
                code,
                table,
                _EMPTY,
                part,
                has_exclude,
                offset + i0,
                seed,
                hs,
                hh,
                hi,
                count,
            )
    return count


# ------------------------------------------------------------------------ packing


def _node_array(tree: Any, name: str, index: int) -> np.ndarray:
    try:
        return np.asarray(getattr(tree, name))
    except AttributeError:
        msg = f"tree {index} has no attribute {name!r}; pass sklearn's tree_ objects"
        raise ValueError(msg) from None


def _pack_one(tree: Any, index: int, n_features: int, n_classes: int | None, base: int):
    left = _node_array(tree, "children_left", index).astype(np.int64)
    right = _node_array(tree, "children_right", index).astype(np.int64)
    feature = _node_array(tree, "feature", index).astype(np.int64)
    threshold = _node_array(tree, "threshold", index).astype(np.float64)
    value = _node_array(tree, "value", index).astype(np.float64)
    n = left.shape[0]
    if value.ndim == 3:
        if value.shape[1] != 1:
            msg = (
                f"tree {index} has {value.shape[1]} outputs; only single-output trees are supported"
            )
            raise ValueError(msg)
        value = value[:, 0, :]
    if n == 0 or any(a.shape != (n,) for a in (right, feature, threshold)) or len(value) != n:
        msg = f"tree {index}: empty, or node arrays of different lengths"
        raise ValueError(msg)
    if n_classes is not None and value.shape[1] != n_classes:
        msg = f"tree {index} has {value.shape[1]} classes, tree 0 has {n_classes}"
        raise ValueError(msg)
    leaf = left < 0
    if np.any(leaf != (right < 0)) or np.any(left >= n) or np.any(right >= n):
        msg = f"tree {index}: children_left/children_right do not describe a binary tree"
        raise ValueError(msg)
    inner = feature[~leaf]
    if inner.size and (inner.min() < 0 or inner.max() >= n_features):
        msg = f"tree {index} splits on feature {int(inner.max())}, but n_features is {n_features}"
        raise ValueError(msg)
    order, depth = _level_order(left, right, leaf, index)
    new = np.empty(n, dtype=np.int64)
    new[order] = np.arange(n) + base
    leaf = leaf[order]
    own = np.arange(n, dtype=np.int64) + base
    missing = getattr(tree, "missing_go_to_left", None)
    missing = np.zeros(n, bool) if missing is None else np.asarray(missing).astype(bool)[order]
    first = np.where(leaf, own, new[np.where(leaf, 0, left[order])])
    second = np.where(leaf, own, new[np.where(leaf, 0, right[order])])
    nodes = np.empty((n, 2), dtype=np.int64)
    nodes[:, 0] = np.where(leaf, np.inf, threshold[order]).view(np.int64)
    nodes[:, 1] = (first << 32) | np.where(leaf, 0, feature[order])
    return {
        "nodes": nodes,
        "nan_child": np.where(missing, first, second),
        "value": value[order],
        "depth": depth,
        "size": n,
    }


def _level_order(left, right, leaf, index: int) -> tuple[np.ndarray, int]:
    """Nodes breadth first from the root (children in pairs), and the tree's depth."""
    levels = [np.zeros(1, dtype=np.int64)]
    while True:
        inner = levels[-1][~leaf[levels[-1]]]
        if inner.size == 0:
            break
        levels.append(np.stack([left[inner], right[inner]], axis=1).reshape(-1))
        if sum(level.size for level in levels) > left.shape[0]:
            break  # a node reached twice: caught below
    order = np.concatenate(levels)
    if order.size != left.shape[0] or np.unique(order).size != order.size:
        msg = f"tree {index}: children_left/children_right do not describe a binary tree"
        raise ValueError(msg)
    return order, len(levels) - 1


def pack_trees(trees: Sequence[Any], n_features: int) -> TreeEnsemble:
    """Pack fitted decision trees into one :class:`TreeEnsemble`.

    Parameters
    ----------
    trees : sequence
        Objects with scikit-learn's ``Tree`` arrays: ``children_left``,
        ``children_right`` (-1 at leaves; node 0 is the root),
        ``feature``, ``threshold``, ``value`` (n_nodes, [1,] n_classes) holding each
        node's class fractions, and optionally ``missing_go_to_left``.  E.g.
        ``[e.tree_ for e in forest.estimators_]``.
    n_features : int
        Number of columns of the feature matrix.

    Returns
    -------
    TreeEnsemble

    Raises
    ------
    ValueError
        If the trees are empty, malformed, multi-output, or disagree on the classes.
    """
    n_features = _validate.integer(n_features, "n_features", 1)
    parts: list[dict] = []
    base = 0
    for index, tree in enumerate(trees):
        n_classes = parts[0]["value"].shape[1] if parts else None
        parts.append(_pack_one(tree, index, n_features, n_classes, base))
        base += parts[-1]["size"]
    if not parts:
        msg = "pack_trees needs at least one tree"
        raise ValueError(msg)
    if parts[0]["value"].shape[1] < 2:
        msg = "the trees know 1 class; scores need at least 2"
        raise ValueError(msg)

    def join(name: str, dtype=np.float64) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate([part[name] for part in parts]), dtype=dtype)

    if base >= 2**31:
        msg = f"{base} nodes in all; at most 2**31 - 1 are supported"
        raise ValueError(msg)

    sizes = [part["size"] for part in parts]
    return TreeEnsemble(
        nodes=join("nodes", np.int64),
        nan_child=join("nan_child", np.int32),
        value=join("value"),
        roots=np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
        depths=np.array([part["depth"] for part in parts], dtype=np.int64),
        n_features=n_features,
    )


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

    def block(start: int, stop: int, hs, hh, hi) -> int:
        sink = ("top_k", code, table, mask, has_exclude, offset, seed, hs, hh, hi)
        return _run(X, model_arrays, start, stop, sink)

    return top_k_blocks(block, n, k, _validate.n_blocks(n))
