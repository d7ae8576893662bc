"""Learners: scikit-learn classifiers by name, under a scheme, with imputation and scaling.

:class:`Learner` is what the session fits after each label. It follows scikit-learn's
conventions (parameters stored as given, validation in :meth:`Learner.fit`, learned
attributes end in ``_``) and offers what modAL's strategies call on a learner or a
committee (``predict_proba``, ``vote``, ``vote_proba``, ``classes_``), so modAL's own
query strategies can be passed to a session unchanged.

Schemes
-------
``"multiclass"``
    One estimator sees every class.
``"one-vs-rest"``
    One estimator per class (class vs the rest), as AstronomicAL trains; every label teaches
    all of them. Rows of ``predict_proba`` are the per-class probabilities, normalised.
A list of learners makes a committee (query by committee); each member follows the scheme.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import RobustScaler, StandardScaler
from sklearn.tree import DecisionTreeClassifier

SCHEMES = ("multiclass", "one-vs-rest")
SCALES = {"robust": RobustScaler, "standard": StandardScaler, None: None}


def _forest(random_state: int | None) -> ClassifierMixin:
    return RandomForestClassifier(n_estimators=100, n_jobs=-1, random_state=random_state)


def _extra(random_state: int | None) -> ClassifierMixin:
    return ExtraTreesClassifier(n_estimators=100, n_jobs=-1, random_state=random_state)


def _boosting(random_state: int | None) -> ClassifierMixin:
    return HistGradientBoostingClassifier(max_iter=100, random_state=random_state)


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
    "hist-gradient-boosting": _boosting,
    "logistic-regression": _logistic,
    "knn": _knn,
    "decision-tree": _tree,
}


def make_learner(learner: str | ClassifierMixin, random_state: int | None = 0) -> ClassifierMixin:
    """Return an unfitted classifier for a name or a scikit-learn estimator.

    An estimator instance is cloned, so the caller's object is never fitted or changed;
    a ``random_state`` it leaves as None (its own or a nested estimator's) is set to
    ``random_state`` in the clone, so that a session with an estimator is as reproducible
    as one with a name. One it sets is kept.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid names.
    TypeError
        For an object that is not a classifier with ``predict_proba``.
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
    estimator = clone(learner)
    if random_state is not None:
        unseeded = {
            name: random_state
            for name, value in estimator.get_params(deep=True).items()
            if value is None and (name == "random_state" or name.endswith("__random_state"))
        }
        estimator.set_params(**unseeded)
    return estimator


def learner_name(learner: Any) -> str:
    """A short name for people: the registry name, or the estimator's class."""
    if isinstance(learner, str):
        return learner
    if isinstance(learner, (list, tuple)):
        return "committee of " + ", ".join(learner_name(m) for m in learner)
    return type(learner).__name__


def aligned_proba(model: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
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


def _fit_estimator(estimator: Any, X: np.ndarray, y: np.ndarray) -> Any:
    """Fit, shrinking ``n_neighbors`` when there are fewer samples than neighbours."""
    params = estimator.get_params()
    for key, value in params.items():
        if key.endswith("n_neighbors") and isinstance(value, int) and value > len(y):
            estimator.set_params(**{key: max(1, len(y))})
    return estimator.fit(X, y)


class _OneVsRest:
    """One binary estimator per class; a class with no positives (or no negatives) is constant."""

    def __init__(self, template: Any, n_classes: int) -> None:
        self.template = template
        self.n_classes = n_classes

    def fit(self, X: np.ndarray, y: np.ndarray) -> _OneVsRest:
        self.estimators_: dict[int, Any] = {}
        self.constant_: dict[int, float] = {}
        for c in range(self.n_classes):
            target = (y == c).astype(np.int8)
            if 0 < target.sum() < len(target):
                self.estimators_[c] = _fit_estimator(clone(self.template), X, target)
            else:
                self.constant_[c] = float(target.mean()) if len(target) else 0.0
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        positive = {
            c: est.predict_proba(X)[:, list(est.classes_).index(1)]
            for c, est in self.estimators_.items()
        }
        return self.combine(positive, X.shape[0])

    def combine(self, positive: dict[int, np.ndarray], n_rows: int) -> np.ndarray:
        """Normalised ``(n_rows, n_classes)`` probabilities from each fitted estimator's
        probability of its class (``positive[c]``) and the constant classes.

        Public so that the fused scoring (:class:`armillary.strategies.FusedScorer`)
        combines its per-class outputs with exactly this arithmetic.
        """
        P = np.zeros((n_rows, self.n_classes), dtype=np.float64)
        for c in self.estimators_:
            P[:, c] = positive[c]
        for c, value in self.constant_.items():
            P[:, c] = value
        total = P.sum(axis=1, keepdims=True)
        empty = total[:, 0] <= 0
        P[empty] = 1.0 / self.n_classes
        total[empty] = 1.0
        return P / total


class Learner(ClassifierMixin, BaseEstimator):
    """The session's model: a scheme over one estimator or a committee of them.

    Parameters
    ----------
    learner : str, estimator, or list of them
        A name from :data:`LEARNERS`, a scikit-learn classifier (cloned, never mutated),
        or a list of these for a committee.
    scheme : {"multiclass", "one-vs-rest"}
    scale : {"robust", "standard", None}
        Feature scaling fitted on the labelled training rows only.
    n_classes : int
        Number of session classes; labels are codes ``0 .. n_classes - 1``.
    random_state : int
        Seeds every member (member ``i`` gets ``random_state + i``).

    Missing feature values (NaN, inf) are replaced by the median of the labelled training
    rows (``medians_``), learned in :meth:`fit` and kept with the model.
    """

    def __init__(
        self,
        learner: Any = "extra-trees",
        *,
        scheme: str = "multiclass",
        scale: str | None = None,
        n_classes: int = 2,
        random_state: int = 0,
    ) -> None:
        self.learner = learner
        self.scheme = scheme
        self.scale = scale
        self.n_classes = n_classes
        self.random_state = random_state

    # -- validation ------------------------------------------------------------------
    def members_spec(self) -> list[Any]:
        """The member learners as given (one unless this is a committee)."""
        if isinstance(self.learner, (list, tuple)):
            if len(self.learner) < 2:
                raise ValueError("a committee needs at least two learners")
            return list(self.learner)
        return [self.learner]

    def check(self) -> Learner:
        """Validate the parameters without fitting (clear errors at session start)."""
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {self.scheme!r}; valid: {', '.join(SCHEMES)}")
        if self.scale not in SCALES:
            valid = ", ".join(repr(k) for k in SCALES)
            raise ValueError(f"unknown scale {self.scale!r}; valid: {valid}")
        for i, spec in enumerate(self.members_spec()):
            make_learner(spec, self.random_state + i)
        return self

    @property
    def is_committee(self) -> bool:
        return isinstance(self.learner, (list, tuple))

    # -- fitting ---------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray) -> Learner:
        """Fit imputation, scaling and every member on labelled rows ``X``, codes ``y``."""
        self.check()
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64)
        if X.ndim != 2 or len(X) != len(y) or len(y) == 0:
            raise ValueError(f"fit needs matching 2-D X and 1-D y, got {X.shape} and {y.shape}")
        finite = np.where(np.isfinite(X), X, np.nan)
        with warnings.catch_warnings():  # a feature no labelled row has: median 0 below
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.nanmedian(finite, axis=0)
        self.medians_ = np.where(np.isfinite(medians), medians, 0.0).astype(np.float32)
        Xt = self._impute(X)
        scaler_cls = SCALES[self.scale]
        self.scaler_ = scaler_cls().fit(Xt) if scaler_cls is not None else None
        if self.scaler_ is not None:
            Xt = self.scaler_.transform(Xt).astype(np.float32)
        self.members_ = []
        for i, spec in enumerate(self.members_spec()):
            estimator = make_learner(spec, self.random_state + i)
            if self.scheme == "one-vs-rest":
                member: Any = _OneVsRest(estimator, self.n_classes).fit(Xt, y)
            else:
                member = _fit_estimator(estimator, Xt, y)
            self.members_.append(member)
        self.classes_ = np.arange(self.n_classes)
        self.n_labels_ = len(y)
        return self

    def _impute(self, X: np.ndarray) -> np.ndarray:
        X = np.array(X, dtype=np.float32, copy=True)
        bad = ~np.isfinite(X)
        if bad.any():
            X[bad] = np.broadcast_to(self.medians_, X.shape)[bad]
        return X

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Impute and scale raw features as in training."""
        Xt = self._impute(X)
        if self.scaler_ is not None:
            Xt = self.scaler_.transform(Xt).astype(np.float32)
        return Xt

    # -- predicting ------------------------------------------------------------------
    def member_proba(self, X: np.ndarray) -> np.ndarray:
        """Per-member probabilities, shape ``(M, N, n_classes)``."""
        Xt = self.transform(X)
        return np.stack([aligned_proba(m, Xt, self.n_classes) for m in self.members_])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, n_classes)``; a committee's is the members' mean."""
        Xt = self.transform(X)
        if len(self.members_) == 1:
            return aligned_proba(self.members_[0], Xt, self.n_classes)
        return np.mean([aligned_proba(m, Xt, self.n_classes) for m in self.members_], axis=0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(X), axis=1)

    def vote(self, X: np.ndarray) -> np.ndarray:
        """Each member's predicted class, shape ``(N, M)`` (modAL's ``Committee.vote``)."""
        return np.argmax(self.member_proba(X), axis=2).T

    def vote_proba(self, X: np.ndarray) -> np.ndarray:
        """Each member's probabilities, ``(N, M, C)`` (modAL's ``Committee.vote_proba``)."""
        return np.transpose(self.member_proba(X), (1, 0, 2))

    def __len__(self) -> int:
        """Number of members (modAL's strategies call ``len(committee)``)."""
        return len(self.members_spec())

    def __repr__(self) -> str:
        return (
            f"Learner({learner_name(self.learner)!s}, scheme={self.scheme!r}, "
            f"scale={self.scale!r}, n_classes={self.n_classes})"
        )
