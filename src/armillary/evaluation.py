"""Rounds of a session: held-out sets, metrics per round, stopping advice, suspects, saving.

Each model the trainer publishes is a round. The round is scored on a fixed validation set
(and, on request, a test set), both drawn stratified from the catalogue's own labels and
never trained on or queried; successive models are compared on a fixed stop set of pool
rows, and the agreement becomes plain-words advice on whether more labels are likely to
change much. Advice only: nothing stops the labeller.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from armillary import metrics as mt
from armillary import strategies as st

if TYPE_CHECKING:
    from armillary.learners import Learner
    from armillary.session import Session

STOP_SET_SIZE = 2000


class Evaluation:
    """The learning curve of one session."""

    def __init__(self, session: Session, *, validation: float, test: float) -> None:
        self.session = session
        codes = session.catalogue_codes()
        self.codes = codes
        if (codes >= 0).sum() >= 2 * len(session.classes):
            val, tst = mt.holdout_split(
                codes, validation=validation, test=test, random_state=session.random_state
            )
        else:
            val, tst = np.empty(0, np.int64), np.empty(0, np.int64)
        self.validation = np.asarray(val, dtype=np.int64)
        self.test = np.asarray(tst, dtype=np.int64)
        self.held_out = np.union1d(self.validation, self.test)
        self.stop = mt.stop_set(
            len(session.catalogue), STOP_SET_SIZE, session.random_state, exclude=self.held_out
        )
        self.log = mt.MetricsLog()
        self._lock = threading.Lock()
        self._previous: np.ndarray | None = None
        self._agreements: list[mt.Agreement] = []
        self._advice = ""
        self._rounds = 0
        self._scored_version = 0

    @property
    def frame(self) -> pd.DataFrame:
        with self._lock:
            return self.log.frame

    def latest_advice(self) -> str:
        return self._advice

    def on_model(self, model: Learner, version: int) -> None:
        """Score a new model (called by the trainer when it publishes one).

        Models are scored in version order: a model that reaches here after a newer one
        (a blocking ``refresh()`` racing the background trainer) is skipped, so the
        learning curve and the stop-set agreements never step backwards.
        """
        session = self.session
        X = session._X
        with self._lock:
            if version <= self._scored_version:
                return
            self._scored_version = version
            self._rounds += 1
            predict = _predictor(model)
            pred = predict(X[self.stop]) if self.stop.size else np.empty(0, np.int64)
            agreement = None
            if self._previous is not None and pred.size:
                agreement = mt.agreement(self._previous, pred)
                self._agreements.append(agreement)
                self._advice = mt.advice(self._agreements)
            self._previous = pred
            if self.validation.size:
                scores = mt.round_metrics(
                    self.codes[self.validation], predict(X[self.validation]), session.classes
                )
                self.log.record(
                    scores,
                    round=self._rounds,
                    n_labels=model.n_labels_,
                    model_version=version,
                    split="validation",
                    agreement=agreement,
                    advice=self._advice or None,
                )

    def evaluate(self, split: str = "test") -> dict[str, Any]:
        """Score the current model on ``"validation"`` or ``"test"`` now, and log it."""
        session = self.session
        model, version = session.model_and_version()
        if split == "curated":
            rows, truth = session.curated_rows()
        else:
            rows = {"validation": self.validation, "test": self.test}.get(split)
            if rows is None:
                raise ValueError(f"split must be 'validation', 'test' or 'curated', not {split!r}")
            truth = self.codes[rows]
        if model is None:
            raise ValueError("no model yet: label sources of at least two classes first")
        if rows.size == 0:
            raise ValueError(
                f"no {split} set: the catalogue has too few labels in its label column"
            )
        predicted = _predictor(model)(session._X[rows])
        scores = mt.round_metrics(truth, predicted, session.classes)
        with self._lock:
            return self.log.record(
                scores,
                round=self._rounds,
                n_labels=model.n_labels_,
                model_version=version,
                split=split,
            )

    def suspects(self, cv: int = 5) -> pd.DataFrame:
        """Labelled rows ranked by cross-validated self-confidence (lowest first)."""
        from armillary.learners import Learner

        session = self.session
        positions, codes = session.training_data()
        if positions.size == 0:
            return pd.DataFrame(columns=["id", "label", "self_confidence", "predicted", "margin"])
        estimator = Learner(
            session.settings.learner,
            scheme=session.settings.scheme,
            scale=session.settings.scale,
            n_classes=len(session.classes),
            random_state=session.random_state,
        )
        frame = mt.suspects(
            session._X[positions], codes, estimator, cv=cv, random_state=session.random_state
        )
        if frame.empty:
            return frame
        rows = positions[frame["position"].to_numpy()]
        names = np.array(session.classes)
        return pd.DataFrame(
            {
                "id": [session.catalogue.id_at(int(p)) for p in rows],
                "label": names[frame["label"].to_numpy()],
                "self_confidence": frame["self_confidence"].to_numpy(),
                "predicted": names[frame["predicted"].to_numpy()],
                "margin": frame["margin"].to_numpy(),
            }
        )

    def save_model(self, path: Any, *, overwrite: bool = False) -> Path:
        """Save the current model (skops) with a manifest that reproduces the run."""
        from armillary import __version__
        from armillary.model_io import save_model

        session = self.session
        model, version = session.model_and_version()
        if model is None:
            raise ValueError("no model yet: label sources of at least two classes first")
        objects = {
            "members": [_plain_member(m) for m in model.members_],
            "scaler": model.scaler_,
            "medians": model.medians_,
        }
        manifest = {
            "features": list(session.features),
            "classes": list(session.classes),
            "learner": _describe(session.settings.learner),
            "scheme": session.settings.scheme,
            "scale": session.settings.scale,
            "strategy": _describe(session.strategy),
            "random_state": session.random_state,
            "n_labels": int(model.n_labels_),
            "model_version": version,
            "catalogue": session.catalogue.name,
            "armillary": __version__,
        }
        return save_model(path, objects, manifest, overwrite=overwrite)


def _predictor(model: Learner) -> Any:
    """``model.predict``, through the fused tree kernel where it applies: the same
    classes (its probabilities are bit-identical), without building per-tree arrays."""
    scorer = st.fused_scorer(model, "margin")
    if scorer is None:
        return model.predict
    return lambda X: np.argmax(scorer.predict_proba(X), axis=1)


def _plain_member(member: Any) -> Any:
    """A member as scikit-learn objects only (a one-vs-rest member becomes a dict)."""
    estimators = getattr(member, "estimators_", None)
    if isinstance(estimators, dict):
        return {
            "one_vs_rest": {str(c): est for c, est in estimators.items()},
            "constant": {str(c): v for c, v in member.constant_.items()},
        }
    return member


def _describe(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    return getattr(value, "__name__", None) or repr(value)
