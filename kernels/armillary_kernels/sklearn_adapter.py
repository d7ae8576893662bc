"""Read a fitted scikit-learn classifier into the plain arrays of :mod:`.fused`.

This is the only module of :mod:`armillary_kernels` that knows about scikit-learn, and
it imports scikit-learn only inside :func:`from_sklearn` (to check the estimator's
class), so ``import armillary_kernels`` never pulls it in.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .fused import LinearModel, TreeEnsemble, linear_model, pack_trees

__all__ = ["from_sklearn"]


def _sklearn_version() -> tuple[int, int]:
    import sklearn

    major, minor = sklearn.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


class _Fractions:
    """A tree whose ``value`` holds class fractions (scikit-learn < 1.4 stored counts)."""

    def __init__(self, tree: Any) -> None:
        self.children_left = tree.children_left
        self.children_right = tree.children_right
        self.feature = tree.feature
        self.threshold = tree.threshold
        self.missing_go_to_left = getattr(tree, "missing_go_to_left", None)
        value = np.asarray(tree.value, dtype=np.float64)[:, 0, :]
        total = value.sum(axis=1, keepdims=True)
        total[total == 0.0] = 1.0
        self.value = value / total  # what DecisionTreeClassifier.predict_proba did


def from_sklearn(estimator: Any) -> TreeEnsemble | LinearModel:
    """Arrays of a fitted ``RandomForestClassifier``, ``ExtraTreesClassifier``,
    ``DecisionTreeClassifier`` or ``LogisticRegression`` for :func:`.fused_top_k`.

    Parameters
    ----------
    estimator : fitted scikit-learn classifier
        Single-output.  Columns of the probabilities follow ``estimator.classes_``.

    Returns
    -------
    TreeEnsemble or LinearModel

    Raises
    ------
    ValueError
        If the estimator is of another kind, not fitted, or multi-output.
    """
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    kinds = (RandomForestClassifier, ExtraTreesClassifier, DecisionTreeClassifier)
    if not isinstance(estimator, (*kinds, LogisticRegression)):
        msg = (
            f"from_sklearn reads RandomForestClassifier, ExtraTreesClassifier, "
            f"DecisionTreeClassifier or LogisticRegression; got {type(estimator).__name__}"
        )
        raise ValueError(msg)
    if not hasattr(estimator, "classes_"):
        msg = f"{type(estimator).__name__} is not fitted; call fit first"
        raise ValueError(msg)
    if getattr(estimator, "n_outputs_", 1) != 1:
        msg = "multi-output estimators are not supported"
        raise ValueError(msg)
    if isinstance(estimator, LogisticRegression):
        return linear_model(estimator.coef_, estimator.intercept_)
    trees = (
        [estimator.tree_]
        if isinstance(estimator, DecisionTreeClassifier)
        else [member.tree_ for member in estimator.estimators_]
    )
    if _sklearn_version() < (1, 4):
        trees = [_Fractions(tree) for tree in trees]
    return pack_trees(trees, estimator.n_features_in_)
