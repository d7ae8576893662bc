"""Learners by name: scikit-learn classifiers that retrain as labels arrive."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier


def _forest(random_state: int | None) -> ClassifierMixin:
    return RandomForestClassifier(n_estimators=100, n_jobs=-1, random_state=random_state)


def _extra(random_state: int | None) -> ClassifierMixin:
    return ExtraTreesClassifier(n_estimators=100, n_jobs=-1, random_state=random_state)


def _logistic(random_state: int | None) -> ClassifierMixin:
    return make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=1000, random_state=random_state)
    )


def _knn(random_state: int | None) -> ClassifierMixin:
    return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=5))


def _tree(random_state: int | None) -> ClassifierMixin:
    return DecisionTreeClassifier(random_state=random_state)


LEARNERS: dict[str, Callable[[int | None], ClassifierMixin]] = {
    "random-forest": _forest,
    "extra-trees": _extra,
    "logistic-regression": _logistic,
    "knn": _knn,
    "decision-tree": _tree,
}


def make_learner(learner: str | ClassifierMixin, random_state: int | None = 0) -> ClassifierMixin:
    """Return an unfitted classifier for a name or a scikit-learn estimator.

    An estimator instance is cloned, so the caller's object is never fitted or changed.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid names.
    """
    if isinstance(learner, str):
        try:
            factory = LEARNERS[learner]
        except KeyError:
            valid = ", ".join(sorted(LEARNERS))
            raise ValueError(f"unknown learner {learner!r}; valid names: {valid}") from None
        return factory(random_state)
    if not (hasattr(learner, "fit") and hasattr(learner, "predict_proba")):
        raise TypeError(
            f"learner must be a name or a scikit-learn classifier with predict_proba, "
            f"not {type(learner).__name__}"
        )
    return clone(learner)


def aligned_proba(model: ClassifierMixin, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` with one column per session class, in session order.

    A model fitted before every class had a label knows fewer classes; the missing
    columns are zero. ``model.classes_`` must hold integer class codes.
    """
    proba = model.predict_proba(X)
    if proba.shape[1] == n_classes:
        return np.ascontiguousarray(proba)
    full = np.zeros((X.shape[0], n_classes), dtype=proba.dtype)
    full[:, np.asarray(model.classes_, dtype=np.intp)] = proba
    return full
