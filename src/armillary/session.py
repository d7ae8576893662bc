"""Session: a catalogue, a label store and a learner, tied into one labelling loop.

The session is the public API. It answers :meth:`Session.next` from the current candidate
queue at once; after each label a background trainer (:mod:`armillary.trainer`) refits
on every current label, rescores the pool in chunks with the compiled core, and replaces
the queue. Each queue carries the model version that made it, and a queue is replaced
whole, never mixed with an older one. Rounds are evaluated on held-out catalogue labels
(:mod:`armillary.evaluation`), never trained on.
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from armillary import strategies as st
from armillary._ids import catalogue_identity
from armillary._setup import (
    check_axes,
    check_classes,
    check_columns,
    check_features,
    check_label_column,
    default_colours,
    feature_report,
)
from armillary._store_values import default_annotator
from armillary.catalogue import Catalogue, open_catalogue
from armillary.cutouts import check_cutouts
from armillary.errors import UnknownIdError
from armillary.evaluation import Evaluation
from armillary.learners import Learner, learner_name
from armillary.pool import Pool
from armillary.session_io import LabelsMixin
from armillary.session_views import ViewsMixin
from armillary.store import LabelStore
from armillary.trainer import CHUNK_ROWS, Settings, Snapshot, Trainer

#: Availability codes of catalogue rows: the :class:`~armillary.pool.Pool`'s statuses
#: (which come from the label store) overlaid with the rows this session keeps out of
#: the pool itself (held out for validation and test, or lacking features).
POOL, LABELLED, UNSURE, SKIPPED, HELD_OUT, NO_FEATURES, TEST = 0, 1, 2, 3, 4, 5, 6
#: Session code of each Pool status (UNLABELLED, LABELLED, UNSURE, SKIPPED, TEST).
_FROM_POOL = np.array([POOL, LABELLED, UNSURE, SKIPPED, TEST], dtype=np.int8)
MISSING = ("impute", "exclude")


@dataclass(frozen=True)
class Candidate:
    """The source the session proposes to label next."""

    id: Any
    position: int
    score: float | None
    model_version: int
    values: dict[str, Any] = field(default_factory=dict)
    images: dict[str, Path | None] = field(default_factory=dict)
    #: Survey cutout URLs by name (see :mod:`armillary.cutouts`); None where the source
    #: lacks a value the template needs.
    cutouts: dict[str, str | None] = field(default_factory=dict)


class Session(LabelsMixin, ViewsMixin):
    """Label a catalogue with a learner in the loop.

    Parameters
    ----------
    catalogue : Catalogue or path
        An opened catalogue, or a path passed to :func:`armillary.open_catalogue`.
    classes : sequence of str
        Class names, in button order (keys 1-9 follow this order).
    features : sequence of str
        Columns or vaex expressions (``"g - j"``) the learner sees.
    label_column, label_map : optional
        The catalogue's own label column and a map from its codes to class names. These
        labels are a separate provenance ("catalogue"): never trained on, they are split
        (stratified) into a validation and a test set that score every round, and they
        are the oracle of :meth:`simulate`.
    store : LabelStore, path or None
        Where labels go. ``None``: a file beside the catalogue's cache, so that labels
        survive a kernel restart and reopen with the session.
    learner : str, scikit-learn classifier, or list of them
        A name from :data:`armillary.learners.LEARNERS`, an estimator (cloned, never
        fitted in place), or a list of them for a committee (query by committee).
        The default, extra trees (100), learns faster from few labels than a random
        forest: every tree sees every label (no bootstrap) and its random thresholds give
        smoother probabilities to rank by; ``tests/benchmarks/bench_learning.py`` compares
        the two on four data sets.
    strategy : str or callable
        A name from :data:`armillary.strategies.NAMES` or a modAL-style function
        ``(learner, X, n_instances=1) -> (indices, scores)``.
    scheme : {"multiclass", "one-vs-rest"}
    scale : {"robust", "standard", None}
        Feature scaling, fitted on labelled rows only.
    missing : {"impute", "exclude"}
        Rows with a missing (NaN, inf) feature: impute the median of the labelled rows,
        or keep them out of the pool. Either way :attr:`report` counts them.
    extra_columns, image_columns : sequences of str
        Columns shown with each candidate; image columns hold paths to image files,
        relative to the catalogue's folder or absolute.
    cutouts : mapping of str to str, optional
        Survey cutouts shown with each candidate: a name for each and a URL template
        filled in with the candidate's columns, e.g. ``{"Legacy Survey":
        armillary.cutouts.legacy_survey("RA", "DEC")}``. The browser fetches them; see
        :mod:`armillary.cutouts`.
    axes : sequence of (str, str), optional
        Pairs of columns or expressions on which the pane shows where the candidate sits
        on a density map of the whole catalogue; default the first two features, ``[]``
        for none. See :mod:`armillary.plots`.
    random_state : int
        Seeds learners, the cold-start order, samples and the tie-breaking of equal scores.
    annotator : str, optional
        Who labels; default ``JUPYTERHUB_USER`` or the OS user.
    queue_size : int
        How many ranked candidates each rescoring keeps.
    pool_sample, full_every : int, optional
        For huge catalogues: rescore a fresh random sample of ``pool_sample`` rows after
        each label, and the full pool every ``full_every`` refits.
    balance : bool
        Class-balanced querying: interleave the most informative rows predicted as each
        class, the class with fewest labels first (helps rare classes).
    validation, test : float
        Fractions of the catalogue-labelled rows held out for validation and test.
    """

    def __init__(
        self,
        catalogue: Catalogue | str | os.PathLike,
        classes: Sequence[str] = ("Star", "Galaxy", "QSO"),
        features: Sequence[str] = (),
        label_column: str | None = None,
        label_map: Mapping[Any, str] | None = None,
        store: LabelStore | str | os.PathLike | None = None,
        learner: Any = "extra-trees",
        strategy: Any = "margin",
        extra_columns: Sequence[str] = (),
        image_columns: Sequence[str] = (),
        random_state: int = 0,
        annotator: str | None = None,
        queue_size: int = 256,
        colours: Sequence[str] | None = None,
        *,
        scheme: str = "multiclass",
        scale: str | None = None,
        missing: str = "impute",
        pool_sample: int | None = None,
        full_every: int = 20,
        balance: bool = False,
        cutouts: Mapping[str, str] | None = None,
        axes: Sequence[Sequence[str]] | None = None,
        validation: float = 0.2,
        test: float = 0.2,
    ) -> None:
        # What save_config records (the checked values replace these where there are some).
        self._made_with = {
            k: v
            for k, v in locals().items()
            if k not in ("self", "catalogue", "store", "annotator")
        }
        if not isinstance(catalogue, Catalogue):
            catalogue = open_catalogue(catalogue)
        self.catalogue = catalogue
        self.classes = check_classes(classes)
        self.colours = list(colours) if colours else default_colours(len(self.classes))
        self.random_state = int(random_state)
        self.annotator = annotator or default_annotator()
        self.session_id = uuid.uuid4().hex
        self.features = check_features(features)
        self.extra_columns = check_columns(catalogue, extra_columns, "extra_columns")
        self.image_columns = check_columns(catalogue, image_columns, "image_columns")
        self.cutouts = check_cutouts(cutouts, list(catalogue.columns), catalogue.source.name)
        self.axes = check_axes(axes, self.features, catalogue)
        self.label_column, self.label_map = check_label_column(
            catalogue, self.classes, label_column, label_map
        )
        self.learner = learner
        Learner(learner, scheme=scheme, scale=scale, n_classes=len(self.classes)).check()
        self.strategy = st.resolve_strategy(strategy, committee=isinstance(learner, list | tuple))
        if missing not in MISSING:
            raise ValueError(f"unknown missing={missing!r}; valid: {', '.join(MISSING)}")
        self.missing = missing
        self._X = self.catalogue.to_numpy(self.features, dtype=np.float32)
        self.report = feature_report(catalogue, self.features, self._X, missing)
        self.store = self._open_store(store)
        self._record_catalogue_labels()
        self.pool = Pool(self.store, catalogue, classes=self.classes)
        self._lock = threading.RLock()
        self._status = np.zeros(len(catalogue), dtype=np.int8)
        self._labels_version = 0
        self.evaluation = Evaluation(self, validation=validation, test=test)
        self._mark_unavailable()
        self._sync(full=True)
        settings = Settings(
            learner=learner,
            scheme=scheme,
            scale=scale,
            n_classes=len(self.classes),
            strategy=self.strategy,
            random_state=self.random_state,
            queue_size=int(queue_size),
            pool_sample=pool_sample,
            full_every=int(full_every),
            balance=bool(balance),
        )
        self.settings = settings
        self._trainer = Trainer(self._X, settings, self, on_model=self.evaluation.on_model)
        self._cold = np.random.default_rng(self.random_state).permutation(len(catalogue))
        self._pane: Any = None
        self._dock: Any = None
        self._trainer.start()

    # ------------------------------------------------------------------ set-up
    def _open_store(self, store: LabelStore | str | os.PathLike | None) -> LabelStore:
        if isinstance(store, LabelStore):
            return store
        if store is None:
            cache = Path(self.catalogue.cache_path)
            store = cache.parent / f"{self.catalogue.name}.labels.sqlite"
        return LabelStore(
            store,
            catalogue_fingerprint=catalogue_identity(self.catalogue),
            id_column=self.catalogue.id_column,
        )

    def _record_catalogue_labels(self) -> None:
        """Write the label column into the store as provenance ``"catalogue"``, once.

        Only labels the store does not hold yet are written (none on a reopen). They
        never enter training, the pool masks or :attr:`labels`; exports include them
        with ``provenance=("human", "catalogue")``, told apart by a column.
        """
        if self.label_column is None or self.store.readonly:
            return
        from armillary.labels_io import import_label_column

        import_label_column(
            self.store,
            self.catalogue,
            self.label_column,
            self.label_map or None,  # without a map, the column holds class names
            annotator=self.annotator,  # who opened it; its own import session id, so
        )  # that this session's undo never reverses the import

    def _mark_unavailable(self) -> None:
        """Held-out rows and (with ``missing="exclude"``) rows lacking features."""
        self._unavailable = np.zeros(len(self.catalogue), dtype=np.int8)
        self._unavailable[self.evaluation.held_out] = HELD_OUT
        if self.missing == "exclude":
            self._unavailable[~np.isfinite(self._X).all(axis=1)] = NO_FEATURES

    def _sync(self, *, full: bool = False) -> None:
        """Bring the availability codes in step with the pool (and so the store).

        After one act only the rows the pool rewrote are touched, so a label costs the
        same on a 10-million-row catalogue as on a small one. Held-out rows stay held
        out whatever their label: validation and test are never trained on.
        """
        changed = self.pool.refresh()
        if full:
            rows: Any = slice(None)
        elif changed:
            rows = self.pool.changed
        else:
            return
        status = _FROM_POOL[self.pool.status[rows]]
        unavailable = self._unavailable[rows]
        keep_out = (status == POOL) | (unavailable == HELD_OUT)
        self._status[rows] = np.where(keep_out, unavailable, status)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self.catalogue)

    @property
    def model_version(self) -> int:
        """Version of the model behind the current queue (0: no model yet)."""
        return self._trainer.queue.version

    @property
    def model(self) -> Learner | None:
        """The latest fitted :class:`~armillary.learners.Learner` (``None`` before one)."""
        return self._trainer.model

    def model_and_version(self) -> tuple[Learner | None, int]:
        """The latest model and the version of the queue it made, read together."""
        with self._trainer._publish_lock:
            return self._trainer.model, self._trainer.queue.version

    @property
    def labels(self) -> pd.DataFrame:
        """Current human labels: ``id, label, annotator, time`` and provenance columns."""
        df = self.store.labels()
        return df.drop(columns=["kind"], errors="ignore").reset_index(drop=True)

    @property
    def metrics(self) -> pd.DataFrame:
        """The learning curve: one row per round (and split), see :mod:`armillary.metrics`."""
        return self.evaluation.frame

    @property
    def counts(self) -> dict[str, int]:
        """How many rows are labelled, unsure, skipped, held out, and in the catalogue."""
        with self._lock:
            counts = np.bincount(self._status, minlength=7)
        return {
            "labelled": int(counts[LABELLED]),
            "unsure": int(counts[UNSURE]),
            "skipped": int(counts[SKIPPED]),
            "held_out": int(counts[HELD_OUT]),
            "test": int(counts[TEST]),
            "pool": len(self.catalogue),
        }

    def catalogue_codes(self) -> np.ndarray:
        """The catalogue's own labels as class codes (-1 where unknown or unmapped)."""
        if self.label_column is None:
            return np.full(len(self.catalogue), -1, dtype=np.int64)
        raw = pd.Series(self.catalogue.column(self.label_column))
        mapping = self.label_map or {name: name for name in self.classes}  # names as codes
        lookup = {code: self.classes.index(name) for code, name in mapping.items()}
        return raw.map(lookup).fillna(-1).to_numpy(dtype=np.int64)

    def catalogue_labels(self) -> pd.DataFrame:
        """The catalogue's own labels (provenance "catalogue"), mapped to class names."""
        codes = self.catalogue_codes()
        keep = np.flatnonzero(codes >= 0)
        return pd.DataFrame(
            {
                "id": [self.catalogue.id_at(int(p)) for p in keep],
                "label": [self.classes[c] for c in codes[keep]],
                "provenance": "catalogue",
            }
        )

    def next(self) -> Candidate | None:
        """The candidate to label now, from the current queue; never waits for training.

        Returns ``None`` when every row of the pool has been labelled, marked unsure or
        skipped.
        """
        with self._lock:
            queue = self._trainer.queue
            for pos, score in zip(queue.positions, queue.scores, strict=True):
                if self._status[pos] == POOL:
                    return self.candidate(int(pos), _score(score), queue.version)
            pos = self._next_cold()
        return None if pos is None else self.candidate(pos, None, queue.version)

    def _next_cold(self) -> int | None:
        """The next pool row in the seeded random order (queue used up or not built)."""
        for pos in self._cold:
            if self._status[pos] == POOL:
                return int(pos)
        return None

    def candidate(self, position: int, score: float | None = None, version: int = 0) -> Candidate:
        """A :class:`Candidate` for a row position: its shown values, images and cutouts."""
        values = self.catalogue.row(position, self.extra_columns) if self.extra_columns else {}
        images = {}
        if self.image_columns:
            raw = self.catalogue.row(position, self.image_columns)
            images = {name: self._image_path(raw[name]) for name in self.image_columns}
        cutouts = {}
        if self.cutouts:
            needed = list(dict.fromkeys(c for t in self.cutouts for c in t.columns))
            raw = self.catalogue.row(position, needed) if needed else {}
            cutouts = {t.name: t.url(raw) for t in self.cutouts}
        return Candidate(
            id=self.catalogue.id_at(position),
            position=position,
            score=score,
            model_version=version,
            values=values,
            images=images,
            cutouts=cutouts,
        )

    def _image_path(self, value: Any) -> Path | None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        text = str(value).strip()
        if not text:
            return None
        path = Path(text)
        return path if path.is_absolute() else Path(self.catalogue.source).parent / path

    def query(self, k: int = 10, *, diverse: bool | str = False) -> list[Any]:
        """Ids of the top-``k`` pool rows of the current ranking (best first).

        With ``diverse=True`` the ``k`` rows are picked for information *and* variety
        from the top ``10 k`` of the ranking, so that a batch does not spend ten labels
        on ten near-identical sources: the row nearest the centre of each of ``k``
        uncertainty-weighted k-means clusters. ``diverse="ranked"`` uses ranked batch
        mode instead (each pick trades its score against its distance to the labelled
        rows and the picks before it); see :func:`armillary.strategies.diverse_batch`.
        """
        if not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        method = diverse if isinstance(diverse, str) else "auto"
        want = max(k * 10, k) if diverse else k
        positions, scores = self._ranked(want)
        if diverse and len(positions) > k and self.model is not None:
            feats = self.model.transform(self._X[positions])
            labelled = self.model.transform(self._X[self.training_data()[0]])
            clean = st.batch_scores(self.strategy, scores)
            pick = st.diverse_batch(
                feats,
                clean,
                k,
                random_state=self.random_state,
                labelled=labelled,
                method=method,
            )
            positions = positions[pick]
        return [self.catalogue.id_at(int(p)) for p in positions[:k]]

    def _ranked(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """At least ``k`` pool rows in ranking order, rescoring when the queue is short."""
        with self._lock:
            queue, model = self._trainer.queue, self._trainer.model
            ok = self._status[queue.positions] == POOL
            positions, scores = queue.positions[ok], queue.scores[ok]
            snap = self.snapshot()
        as_set = callable(self.strategy) and model is not None and queue.kind == "model"
        if len(positions) >= k and not as_set:
            return positions[:k], scores[:k]
        if model is not None:  # a callable ranks a set: ask it for exactly k (modAL's way)
            ranked = self._trainer.rank(model, k, snap)
            if ranked is not None:
                return ranked
        taken = set(positions.tolist())
        cold = self._cold[self._status[self._cold] == POOL]
        extra = np.array([p for p in cold[: k + len(taken)] if p not in taken], dtype=np.int64)
        positions = np.concatenate([positions, extra])[:k]
        return positions, np.concatenate([scores, np.full(len(extra), np.nan)])[:k]

    # ------------------------------------------------------------------ acting
    def label(self, id: Any, cls: str, *, note: str | None = None) -> Any:
        """Label row ``id`` as class ``cls``; committed to the store before returning."""
        self._check_class(cls)
        return self._act("test_label" if self.test_mode else "label", id, cls, note=note)

    def unsure(self, id: Any, *, note: str | None = None) -> Any:
        """Mark row ``id`` as unsure: kept out of training and out of the queue."""
        return self._act("unsure", id, None, note=note)

    def skip(self, id: Any, *, note: str | None = None) -> Any:
        """Skip row ``id`` (not now): kept out of the queue, not trained on."""
        return self._act("skip", id, None, note=note)

    def _act(self, kind: str, id: Any, cls: str | None, *, note: str | None) -> Any:
        pos = self._position(id)
        with self._lock:
            queue = self._trainer.queue
            hits = np.flatnonzero(queue.positions == pos)
            score = _score(queue.scores[hits[0]]) if hits.size else None
            event = self.store.append(
                kind,
                self.catalogue.id_at(pos),
                cls,
                annotator=self.annotator,
                session_id=self.session_id,
                model_version=queue.version or None,
                score=score,
                note=note,
                row=pos,
            )
            self._sync()
            self._labels_version += 1
        self._trainer.wake()
        return event

    def _position(self, id: Any) -> int:
        try:
            return int(self.catalogue.position(id))
        except UnknownIdError:
            raise
        except (KeyError, ValueError, TypeError) as err:
            raise UnknownIdError(
                f"id {id!r} is not in catalogue {self.catalogue.source.name} "
                f"(id column {self.catalogue.id_column!r})"
            ) from err

    def undo(self) -> Any:
        """Reverse this annotator's last act in this session; returns the reversed event.

        Returns ``None`` when there is nothing left to undo. The row goes back to the
        state it had before (its earlier label, or the pool).
        """
        with self._lock:
            event = self.store.undo(annotator=self.annotator, session_id=self.session_id)
            if event is None:
                return None
            self._sync()
            self._labels_version += 1
        self._trainer.wake()
        return event

    # ------------------------------------------------------------------ learning
    def snapshot(self) -> Snapshot:
        """The labels and pool mask at this moment (what the trainer fits on)."""
        with self._lock:
            positions, codes = self.pool.training()
            trained = self._status[positions] == LABELLED  # not held out
            return Snapshot(
                labels_version=self._labels_version,
                positions=positions[trained],
                codes=codes[trained],
                exclude=self._status != POOL,
            )

    def labels_version(self) -> int:
        return self._labels_version

    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and class codes of every current human label."""
        snap = self.snapshot()
        return snap.positions, snap.codes

    def refresh(self) -> int:
        """Refit and rescore now, blocking; returns the model version (0: no model yet).

        A model needs labels of at least two classes; until then the queue is a
        cold-start order (a diverse seed set, or a search for other classes).
        """
        return self._trainer.run()

    def status_text(self) -> str:
        """One line about the model, for people."""
        queue = self._trainer.queue
        mode = "Test-set mode: labels go to the curated test set. " if self.test_mode else ""
        if queue.kind != "model":
            what = {
                "seed": "a diverse seed set (k-means++ over the pool)",
                "explore": "sources far from those labelled, to find other classes",
            }.get(queue.kind, "a random order")
            return f"{mode}No model yet (needs labels of two classes): showing {what}."
        line = mode + (
            f"Model v{queue.version} ({learner_name(self.learner)}) trained on "
            f"{queue.trained_on} labels; ranking by {st.strategy_name(self.strategy)}."
        )
        advice = self.evaluation.latest_advice()
        return f"{line} {advice}" if advice else line

    @property
    def _last_error(self) -> str:
        return self._trainer.last_error

    def on_change(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(event)`` when a new model (``"model"``) or queue lands, or fails."""
        self._trainer.on_change(callback)

    def wait_for_model(self, version: int = 1, timeout: float = 60.0) -> bool:
        """Block until the model version reaches ``version`` (for scripts and tests)."""
        done = threading.Event()

        def check(_event: str) -> None:
            if self._trainer.queue.version >= version:
                done.set()

        self._trainer.on_change(check)
        try:
            check("")
            return done.wait(timeout)
        finally:
            self._trainer.remove_listener(check)

    def suspects(self, cv: int = 5) -> pd.DataFrame:
        """Labelled rows ranked by how strongly cross-validated models disagree with them."""
        return self.evaluation.suspects(cv=cv)

    def simulate(self, oracle: Any = "labels", budget: int = 200, **kwargs: Any) -> pd.DataFrame:
        """Run the loop with known labels as the oracle; see :func:`armillary.simulate.simulate`."""
        from armillary.simulate import simulate_session

        return simulate_session(self, oracle=oracle, budget=budget, **kwargs)

    def save_model(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save the current model with skops (a safe format) and a manifest.

        Load it with :func:`armillary.model_io.load_model`, which never unpickles; tree
        models need ``trusted=armillary.model_io.TREE_TYPES`` (skops does not trust tree
        internals by default).
        """
        return self.evaluation.save_model(path, overwrite=overwrite)

    def close(self) -> None:
        """Stop the background trainer and close the store."""
        self._trainer.close()
        self.store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self.counts
        return (
            f"<Session {self.catalogue.name}: {c['pool']:,} rows, {c['labelled']} labelled, "
            f"model v{self.model_version}, annotator {self.annotator!r}>"
        )


def _score(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


__all__ = ["CHUNK_ROWS", "Candidate", "Session", "default_annotator"]
