"""How well the learners do, round by round: held-out sets, metrics, stopping advice, suspects.

Everything here is a plain function of arrays of class *codes* (positions in the session's
list of class names); the session decides which rows and which models they are applied to.

- :func:`holdout_split` picks fixed validation and test rows, stratified by class, from the
  catalogue's own labels. Those rows are never trained on: the session keeps them out of the
  labelled training set and out of the pool it queries from.
- :func:`round_metrics` scores one model's predictions on one held-out set, and
  :class:`MetricsLog` gathers those scores, one row per round and split: the learning curve.
- :func:`stop_set`, :func:`agreement` and :func:`advice` tell the labeller in plain words when
  predictions have stopped changing (stabilising predictions). This is advice, never enforced.
- :func:`suspects` ranks labelled rows by how little cross-validated models believe the label
  they were given (self-confidence, as cleanlab does), for review.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    matthews_corrcoef,
    precision_recall_fscore_support,
)
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from armillary.errors import ArmillaryWarning

__all__ = [
    "SPLITS",
    "Agreement",
    "MetricsLog",
    "SmallClassWarning",
    "advice",
    "agreement",
    "holdout_split",
    "round_metrics",
    "stop_set",
    "suspects",
]

#: The held-out sets a round is scored on.
SPLITS = ("validation", "test", "curated")

#: Columns of the frame :func:`suspects` returns, with their dtypes.
_SUSPECT_COLUMNS = {
    "position": np.int64,
    "label": np.int64,
    "self_confidence": np.float64,
    "predicted": np.int64,
    "margin": np.float64,
}

#: Columns that come first in :attr:`MetricsLog.frame`, in this order.
_LEAD_COLUMNS = [
    "round",
    "n_labels",
    "model_version",
    "split",
    "n",
    "accuracy",
    "balanced_accuracy",
    "matthews",
]


class SmallClassWarning(ArmillaryWarning):
    """A class has too few labelled rows to be held out, or to be cross-validated."""


# --- held-out sets -----------------------------------------------------------------------


def _as_codes(codes: Any, name: str) -> np.ndarray:
    """Return ``codes`` as a 1-D int64 array, or raise ``ValueError`` naming ``name``."""
    array = np.asarray(codes)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class codes, not shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{name} must hold integer class codes (positions in the list of classes), "
            f"not {array.dtype}"
        )
    return array.astype(np.int64, copy=False)


def _holdout_sizes(n: int, validation: float, test: float, keep: int) -> tuple[int, int]:
    """How many of a class's ``n`` rows go to validation and test.

    Each requested set gets its share (at least one row), as long as ``keep`` rows stay for
    training; when they would not, the test share shrinks first, then validation's.
    """
    n_val = max(1, round(validation * n)) if validation > 0 else 0
    n_test = max(1, round(test * n)) if test > 0 else 0
    spare = max(n - keep, 0)
    n_test = min(n_test, max(spare - n_val, 0))
    n_val = min(n_val, spare)
    return n_val, n_test


def holdout_split(
    codes: Any,
    *,
    validation: float = 0.2,
    test: float = 0.0,
    random_state: Any = 0,
    min_per_class: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick fixed validation and test rows, stratified by class, from catalogue labels.

    These rows are for scoring only and are never trained on: the session keeps them out of
    the labelled training set and out of the pool it queries.

    Parameters
    ----------
    codes : array-like of int, shape (n_rows,)
        The catalogue's label of each row as a class code (a position in the list of
        classes); negative codes (``-1``) mean unknown, and those rows are never picked.
    validation, test : float
        The fraction of each class's rows to hold out for validation and for test.
    random_state : int, numpy.random.Generator or None
        Seeds the choice; the same seed and codes give the same sets.
    min_per_class : int
        Rows of each class that stay out of both sets, so the class can still be learned.
        A class with too few rows for its full share loses test rows first (it goes to
        validation only), then validation rows; a class with ``min_per_class`` rows or
        fewer is not held out at all, and a :class:`SmallClassWarning` names it.

    Returns
    -------
    validation_idx, test_idx : numpy.ndarray of intp
        Sorted positions into ``codes``; the two never overlap.
    """
    codes = _as_codes(codes, "codes")
    if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
        raise ValueError(
            f"validation ({validation}) and test ({test}) must be fractions in [0, 1) "
            "whose sum is below 1"
        )
    if min_per_class < 0:
        raise ValueError(f"min_per_class must be 0 or more, not {min_per_class}")
    rng = np.random.default_rng(random_state)
    val_parts, test_parts, skipped = [], [], []
    for code in np.unique(codes[codes >= 0]):
        members = rng.permutation(np.flatnonzero(codes == code))
        n_val, n_test = _holdout_sizes(members.size, validation, test, min_per_class)
        if n_val + n_test == 0 and validation + test > 0:
            skipped.append(int(code))
        val_parts.append(members[:n_val])
        test_parts.append(members[n_val : n_val + n_test])
    if skipped:
        warnings.warn(
            f"class codes {skipped} have {min_per_class} labelled rows or fewer: none of "
            "their rows are held out, so validation scores say nothing about them",
            SmallClassWarning,
            stacklevel=2,
        )
    empty = np.empty(0, dtype=np.intp)
    return (
        np.sort(np.concatenate([empty, *val_parts])).astype(np.intp),
        np.sort(np.concatenate([empty, *test_parts])).astype(np.intp),
    )


# --- one round's scores ------------------------------------------------------------------


def _check_classes(classes: Sequence[Any]) -> list[str]:
    names = [str(name) for name in classes]
    if not names:
        raise ValueError("classes is empty: name at least one class")
    if len(set(names)) != len(names):
        raise ValueError(f"classes {names} name the same class more than once")
    return names


def _check_pair(y_true: Any, y_pred: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    y_true = _as_codes(y_true, "y_true")
    y_pred = _as_codes(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true has {y_true.size} rows but y_pred has {y_pred.size}: "
            "score predictions for the same rows"
        )
    for name, array in (("y_true", y_true), ("y_pred", y_pred)):
        bad = array[(array < 0) | (array >= n_classes)]
        if bad.size:
            raise ValueError(
                f"{name} holds class code {int(bad[0])}, but there are {n_classes} classes "
                f"(codes 0 to {n_classes - 1}); drop unknown (-1) rows before scoring"
            )
    return y_true, y_pred


def _quietly_score(y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> dict:
    """The sklearn scores, without the warnings small or one-class sets give."""
    with warnings.catch_warnings():
        # Absent classes make some scores 0/0; zero_division=0 decides them, and these
        # warnings would only repeat that every round.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=None, zero_division=0
        )
        return {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
            "matthews": float(matthews_corrcoef(y_true, y_pred)),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        }


def round_metrics(y_true: Any, y_pred: Any, classes: Sequence[Any]) -> dict[str, Any]:
    """Score one model's predictions on one held-out set.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (n,)
        True and predicted class codes (positions in ``classes``).
    classes : sequence of str
        The class names, in code order.

    Returns
    -------
    dict
        ``n`` (rows scored), ``accuracy``, ``balanced_accuracy``, ``matthews`` (Matthews
        correlation coefficient), ``precision_<class>``, ``recall_<class>`` and
        ``f1_<class>`` for every class (0 where undefined, e.g. a class never predicted),
        and ``confusion``: a list of lists with rows for true and columns for predicted
        classes, every class included. With no rows, the scores are NaN.
    """
    names = _check_classes(classes)
    y_true, y_pred = _check_pair(y_true, y_pred, len(names))
    labels = np.arange(len(names))
    if y_true.size == 0:
        nan = np.full(len(names), np.nan)
        scores = dict.fromkeys(("accuracy", "balanced_accuracy", "matthews"), np.nan)
        scores |= {"precision": nan, "recall": nan, "f1": nan}
        scores["confusion"] = np.zeros((len(names), len(names)), dtype=int).tolist()
    else:
        scores = _quietly_score(y_true, y_pred, labels)
    result: dict[str, Any] = {"n": int(y_true.size)}
    result |= {key: scores[key] for key in ("accuracy", "balanced_accuracy", "matthews")}
    for kind in ("precision", "recall", "f1"):
        for name, value in zip(names, scores[kind], strict=True):
            result[f"{kind}_{name}"] = float(value)
    result["confusion"] = scores["confusion"]
    return result


class MetricsLog:
    """The learning curve: one row of scores per round and held-out split.

    Examples
    --------
    >>> log = MetricsLog()
    >>> scores = round_metrics([0, 1, 1], [0, 1, 0], ["Star", "Galaxy"])
    >>> _ = log.record(scores, round=1, n_labels=10, model_version=1)
    >>> log.frame[["round", "split", "accuracy"]].round(3).to_dict("records")
    [{'round': 1, 'split': 'validation', 'accuracy': 0.667}]
    """

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def record(
        self,
        metrics: Mapping[str, Any],
        *,
        round: int,  # shadows the builtin on purpose: the column is called round
        n_labels: int,
        model_version: Any,
        split: str = "validation",
        agreement: Agreement | float | None = None,
        advice: str | None = None,
    ) -> dict[str, Any]:
        """Append one round's scores on one split, and return the row.

        Parameters
        ----------
        metrics : mapping
            What :func:`round_metrics` returned.
        round, n_labels, model_version
            Which round, how many labels the model was trained on, and its version.
        split : {"validation", "test"}
            Which held-out set was scored.
        agreement : Agreement or float, optional
            Agreement with the previous model on the stop set (:func:`agreement`); its
            Cohen's kappa goes in the ``kappa`` column.
        advice : str, optional
            The stopping advice (:func:`advice`) given this round.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, not {split!r}")
        kappa = agreement.kappa if isinstance(agreement, Agreement) else None
        row = {
            "round": int(round),
            "n_labels": int(n_labels),
            "model_version": model_version,
            "split": split,
            **metrics,
            "agreement": None if agreement is None else float(agreement),
            "kappa": kappa,
            "advice": advice,
        }
        self._rows.append(row)
        return dict(row)

    @property
    def frame(self) -> pd.DataFrame:
        """The rows so far as a new pandas DataFrame (``confusion`` is an object column)."""
        frame = pd.DataFrame(self._rows)
        if frame.empty:
            return pd.DataFrame(columns=[*_LEAD_COLUMNS, "agreement", "kappa", "advice"])
        lead = [c for c in _LEAD_COLUMNS if c in frame.columns]
        tail = [c for c in ("confusion", "agreement", "kappa", "advice") if c in frame.columns]
        middle = [c for c in frame.columns if c not in lead and c not in tail]
        frame = frame[lead + middle + tail]
        for column in ("agreement", "kappa"):
            frame[column] = frame[column].astype(float)
        return frame


# --- stopping advice ---------------------------------------------------------------------


class Agreement(NamedTuple):
    """How much two successive models agree on the stop set.

    ``float(agreement)`` is the :attr:`fraction`, so a list of these can be handed to
    :func:`advice` or plotted as it is.
    """

    #: Fraction of stop-set rows whose predicted class did not change.
    fraction: float
    #: Cohen's kappa between the two models' predictions (1.0 when they are identical).
    kappa: float
    #: Rows in the stop set.
    n: int

    def __float__(self) -> float:
        return self.fraction


def _exclusion_mask(exclude: Any, n_rows: int) -> np.ndarray:
    mask = np.zeros(n_rows, dtype=bool)
    if exclude is None:
        return mask
    exclude = np.asarray(exclude)
    if exclude.dtype == bool:
        if exclude.shape != (n_rows,):
            raise ValueError(f"an exclude mask must have {n_rows} entries, not {exclude.shape}")
        return exclude.copy()
    positions = exclude.ravel()
    if positions.size and not np.issubdtype(positions.dtype, np.integer):
        raise ValueError(f"exclude must be integer positions or a bool mask, not {exclude.dtype}")
    if positions.size and (positions.min() < 0 or positions.max() >= n_rows):
        raise ValueError(f"exclude holds positions outside 0 to {n_rows - 1}")
    mask[positions] = True
    return mask


def stop_set(
    n_rows: int, size: int = 2000, random_state: Any = 0, exclude: Any = None
) -> np.ndarray:
    """A fixed random sample of the pool on which successive models are compared.

    Parameters
    ----------
    n_rows : int
        Rows in the catalogue; positions are drawn from ``range(n_rows)``.
    size : int
        Rows to draw; all the available rows when fewer are.
    random_state : int, numpy.random.Generator or None
        Seeds the draw.
    exclude : array-like of int or bool, optional
        Positions (or a boolean mask of length ``n_rows``) never to draw, e.g. held-out rows.

    Returns
    -------
    numpy.ndarray of intp
        Sorted positions, each drawn uniformly and at most once.
    """
    if n_rows < 0 or size < 0:
        raise ValueError(f"n_rows ({n_rows}) and size ({size}) must be 0 or more")
    excluded = _exclusion_mask(exclude, n_rows)
    rng = np.random.default_rng(random_state)
    # Draw enough distinct rows that `size` survive dropping the excluded ones; the survivors
    # keep the draw's random order, so the first `size` are a uniform sample of the rest.
    n_draw = min(n_rows, size + int(excluded.sum()))
    drawn = rng.choice(n_rows, size=n_draw, replace=False)
    return np.sort(drawn[~excluded[drawn]][:size]).astype(np.intp)


def _kappa(a: np.ndarray, b: np.ndarray) -> float:
    n_codes = int(max(a.max(), b.max())) + 1
    table = np.bincount(a * n_codes + b, minlength=n_codes * n_codes).reshape(n_codes, -1)
    observed = np.trace(table) / a.size
    expected = float(table.sum(axis=1) @ table.sum(axis=0)) / a.size**2
    if expected == 1.0:  # both models predict one and the same class everywhere
        return 1.0
    return float((observed - expected) / (1.0 - expected))


def agreement(previous_pred: Any, pred: Any) -> Agreement:
    """Compare two successive models' predicted classes on the stop set.

    Parameters
    ----------
    previous_pred, pred : array-like of int, shape (n,)
        Predicted class codes of the previous and the current model on the same rows.

    Returns
    -------
    Agreement
        ``fraction`` of rows whose predicted class did not change, Cohen's ``kappa``, and
        ``n``; ``float()`` of it is the fraction.
    """
    a = _as_codes(previous_pred, "previous_pred")
    b = _as_codes(pred, "pred")
    if a.shape != b.shape:
        raise ValueError(f"the two predictions cover {a.size} and {b.size} rows: use one stop set")
    if a.size == 0:
        raise ValueError("the stop set is empty: draw one with stop_set()")
    if min(a.min(), b.min()) < 0:
        raise ValueError("predictions must be class codes of 0 or more")
    return Agreement(float(np.mean(a == b)), _kappa(a, b), int(a.size))


def _percent(fraction: float) -> str:
    """``0.0105`` -> ``"1.05%"``: to 0.01%, trailing zeros dropped."""
    return f"{100 * fraction:.2f}".rstrip("0").rstrip(".") + "%"


def advice(
    history: Iterable[Agreement | float], *, threshold: float = 0.99, window: int = 3
) -> str:
    """Say in plain words whether more labels are likely to change the model.

    Parameters
    ----------
    history : iterable of Agreement or float
        Agreement between each pair of successive models, oldest first.
    threshold : float
        Agreement at or above which predictions count as stable for a round.
    window : int
        Stable rounds in a row after which the advice is that predictions have settled.

    Returns
    -------
    str
        Advice only: nothing is stopped.
    """
    history = list(history)
    if not history:
        return (
            "Not enough models yet to judge: stability is measured between two successive "
            "models, so label on."
        )
    last = history[-1]
    where = f"{last.n:,} held-aside sources" if isinstance(last, Agreement) else "the stop set"
    changed = 1.0 - float(last)
    stable = 0
    for value in reversed(history):
        if float(value) < threshold:
            break
        stable += 1
    said = f"Predictions on {where} changed for {_percent(changed)} between the last two models"
    bar = f"stable (≥{100 * threshold:g}% agreement)"
    if stable >= window:
        return (
            f"{said}; they have been {bar} for {stable} rounds: "
            "more labels are unlikely to change much."
        )
    return (
        f"{said}; still changing: {bar} for {stable} of the {window} rounds in a row that "
        "would suggest stopping, so more labels are still likely to help."
    )


# --- suspect labels ----------------------------------------------------------------------


def _empty_suspects() -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series(dtype=v) for k, v in _SUSPECT_COLUMNS.items()})


def _n_folds(y: np.ndarray, cv: int) -> int:
    """Folds to use, or 0 (after a warning) when cross-validation is impossible."""
    present, counts = np.unique(y, return_counts=True)
    if present.size < 2:
        warnings.warn(
            "every labelled row has the same class: a model cannot doubt a label "
            "without a second class, so no suspects are ranked",
            SmallClassWarning,
            stacklevel=3,
        )
        return 0
    if counts.min() < 2:
        lonely = present[counts < 2].tolist()
        warnings.warn(
            f"class codes {lonely} have a single labelled row: cross-validation needs at "
            "least 2 of each class, so no suspects are ranked; label more of them",
            SmallClassWarning,
            stacklevel=3,
        )
        return 0
    return int(min(cv, counts.min()))


def suspects(X: Any, y: Any, estimator: Any, *, cv: int = 5, random_state: Any = 0) -> pd.DataFrame:
    """Rank labelled rows by how little cross-validated models believe their label.

    Each row's self-confidence is the out-of-fold ``predict_proba`` probability of the label
    it was given, from a clone of ``estimator`` fitted on the other folds; low means the
    label is suspect (cleanlab's ranking).

    Parameters
    ----------
    X : array-like, shape (n, n_features)
        Features of the labelled rows.
    y : array-like of int, shape (n,)
        Their class codes.
    estimator : scikit-learn classifier with ``predict_proba``
        Cloned, never fitted itself.
    cv : int
        Folds, reduced to the smallest class's count (at least 2).
    random_state : int or None
        Seeds the stratified folds.

    Returns
    -------
    pandas.DataFrame
        Columns ``position`` (into ``X`` and ``y``), ``label``, ``self_confidence``,
        ``predicted`` (code of the most probable class) and ``margin`` (self-confidence
        minus the highest probability of another class), lowest self-confidence first.
        Empty, with a :class:`SmallClassWarning`, when some class has a single row or there
        is only one class.
    """
    y = _as_codes(y, "y")
    if len(X) != y.size:
        raise ValueError(f"X has {len(X)} rows but y has {y.size}")
    if cv < 2:
        raise ValueError(f"cv must be at least 2, not {cv}")
    if not hasattr(estimator, "predict_proba"):
        raise TypeError(f"{type(estimator).__name__} has no predict_proba: suspects need one")
    n_folds = _n_folds(y, cv)
    if n_folds == 0:
        return _empty_suspects()
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    proba = cross_val_predict(clone(estimator), X, y, cv=folds, method="predict_proba")
    present = np.unique(y)  # cross_val_predict orders the columns like this
    column = np.searchsorted(present, y)
    rows = np.arange(y.size)
    confidence = proba[rows, column]
    others = proba.copy()
    others[rows, column] = -np.inf
    order = np.lexsort((rows, confidence - others.max(axis=1), confidence))
    frame = pd.DataFrame(
        {
            "position": rows,
            "label": y,
            "self_confidence": confidence,
            "predicted": present[np.argmax(proba, axis=1)],
            "margin": confidence - others.max(axis=1),
        }
    )
    return frame.iloc[order].reset_index(drop=True).astype(_SUSPECT_COLUMNS)
