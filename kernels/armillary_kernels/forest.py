"""Decision-tree ensembles as flat arrays, and the compiled walk down them.

:func:`pack_trees` turns fitted trees (scikit-learn's ``Tree`` arrays, or any objects
with the same attributes) into a :class:`TreeEnsemble`; :func:`trees_tile` computes the
mean leaf class fractions of a tile of rows, exactly as
``ForestClassifier.predict_proba`` does (see :mod:`armillary_kernels.fused`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numba
import numpy as np

from . import _validate

__all__ = ["TreeEnsemble", "pack_trees"]

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


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


# --------------------------------------------------------------------------- kernels

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
def trees_tile(X, trees, A):
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
