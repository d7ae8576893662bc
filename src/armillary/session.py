"""Session: a catalogue, a label store and a learner, tied into one labelling loop.

The session is the public API. It answers :meth:`Session.next` from the current candidate
queue at once; after each label a background thread refits the learner on every current
label, rescores the whole pool in chunks with the compiled core, and replaces the queue.
Each queue carries the model version that made it, and a queue is replaced whole, never
mixed with an older one.
"""

from __future__ import annotations

import getpass
import hashlib
import math
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import armillary_kernels
import numpy as np
import pandas as pd
from sklearn.base import clone

from armillary.catalogue import Catalogue, open_catalogue
from armillary.errors import ArmillaryError, ColumnNotFoundError, UnknownClassError, UnknownIdError
from armillary.learners import aligned_proba, make_learner
from armillary.store import LabelStore

#: Status codes of pool rows (the session's bookkeeping over the full catalogue).
POOL, LABELLED, UNSURE, SKIPPED = 0, 1, 2, 3
_KIND_STATUS = {"label": LABELLED, "unsure": UNSURE, "skip": SKIPPED}
STRATEGIES = ("margin", "least-confidence")
#: Rows scored per chunk when the pool is rescored (bounds memory: chunk x classes).
CHUNK_ROWS = 262_144


@dataclass(frozen=True)
class Candidate:
    """The source the session proposes to label next."""

    id: Any
    position: int
    score: float | None
    model_version: int
    values: dict[str, Any] = field(default_factory=dict)
    images: dict[str, Path | None] = field(default_factory=dict)


@dataclass(frozen=True)
class _Queue:
    """Ranked candidates from one model version; replaced whole, never edited."""

    version: int
    positions: np.ndarray
    scores: np.ndarray
    trained_on: int = 0


def default_annotator() -> str:
    """``JUPYTERHUB_USER`` when set (JupyterHub), else the operating-system user."""
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def _check_classes(classes: Sequence[str]) -> list[str]:
    names = list(classes)
    if len(names) < 2:
        raise ArmillaryError(f"a session needs at least two classes, got {names!r}")
    if any(not isinstance(c, str) or not c.strip() for c in names):
        raise ArmillaryError(f"class names must be non-empty strings, got {names!r}")
    if len(set(names)) != len(names):
        raise ArmillaryError(f"class names must be unique, got {names!r}")
    return names


def _catalogue_identity(catalogue: Catalogue) -> str:
    """A content identity for the store: row count, id column and ids at both ends.

    Unlike the cache fingerprint it survives a copy or a ``touch`` of the source file.
    """
    n = len(catalogue)
    ends = [*range(min(n, 1000)), *range(max(1000, n - 1000), n)]
    ids = (catalogue.id_at(i) for i in ends)
    digest = hashlib.sha1("\x1f".join(map(str, ids)).encode()).hexdigest()[:16]
    return f"{catalogue.id_column}:{len(catalogue)}:{digest}"


class Session:
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
        labels are kept apart from human labels (provenance "catalogue"); they are not
        trained on, so that later issues can validate against them.
    store : LabelStore, path or None
        Where labels go. ``None``: a file beside the catalogue's cache, so that labels
        survive a kernel restart and reopen with the session.
    learner : str or scikit-learn classifier
        A name from :data:`armillary.learners.LEARNERS` or an estimator (cloned).
    strategy : str
        ``"margin"`` or ``"least-confidence"``.
    extra_columns, image_columns : sequences of str
        Columns shown with each candidate; image columns hold paths to image files,
        relative to the catalogue's folder or absolute.
    random_state : int
        Seeds the learner, the cold-start order and the tie-breaking of equal scores.
    annotator : str, optional
        Who labels; default ``JUPYTERHUB_USER`` or the OS user.
    queue_size : int
        How many ranked candidates each rescoring keeps.
    """

    def __init__(
        self,
        catalogue: Catalogue | str | os.PathLike,
        classes: Sequence[str] = ("Star", "Galaxy", "QSO"),
        features: Sequence[str] = (),
        label_column: str | None = None,
        label_map: Mapping[Any, str] | None = None,
        store: LabelStore | str | os.PathLike | None = None,
        learner: Any = "random-forest",
        strategy: str = "margin",
        extra_columns: Sequence[str] = (),
        image_columns: Sequence[str] = (),
        random_state: int = 0,
        annotator: str | None = None,
        queue_size: int = 256,
        colours: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(catalogue, Catalogue):
            catalogue = open_catalogue(catalogue)
        self.catalogue = catalogue
        self.classes = _check_classes(classes)
        self.colours = list(colours) if colours else _default_colours(len(self.classes))
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; valid names: {', '.join(STRATEGIES)}")
        self.strategy = strategy
        self.random_state = int(random_state)
        self.annotator = annotator or default_annotator()
        self.session_id = uuid.uuid4().hex
        self.queue_size = int(queue_size)
        self.features = self._check_features(features)
        self.extra_columns = self._check_columns(extra_columns, "extra_columns")
        self.image_columns = self._check_columns(image_columns, "image_columns")
        self.label_column, self.label_map = self._check_label_column(label_column, label_map)
        self._learner = make_learner(learner, self.random_state)
        self._X = self._pool_matrix()
        self.store = self._open_store(store)
        self._lock = threading.RLock()
        self._fit_lock = threading.Lock()
        self._status = np.zeros(len(catalogue), dtype=np.int8)
        self._label_of: dict[int, int] = {}
        self._labels_version = 0
        self._model: Any = None
        self._model_version = 0
        self._queue = _Queue(0, np.empty(0, np.int64), np.empty(0))
        self._cold = np.random.default_rng(self.random_state).permutation(len(catalogue))
        self._listeners: list[Callable[[str], None]] = []
        self._last_error = ""
        self._load_state()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._worker = threading.Thread(target=self._work, name="armillary-trainer", daemon=True)
        self._worker.start()
        self._wake.set()
        self._pane: Any = None
        self._dock: Any = None

    # ------------------------------------------------------------------ set-up
    def _check_columns(self, columns: Iterable[str], what: str) -> list[str]:
        names = list(columns)
        known = set(self.catalogue.columns)
        for name in names:
            if name not in known:
                raise ColumnNotFoundError(
                    f"{what}: column {name!r} is not in {self.catalogue.source.name}; "
                    f"available columns: {', '.join(self.catalogue.columns)}"
                )
        return names

    def _check_features(self, features: Sequence[str]) -> list[str]:
        names = list(features)
        if not names:
            raise ArmillaryError(
                "a session needs features: pass features=[...] with columns or "
                "expressions such as 'g - r'"
            )
        return names

    def _check_label_column(
        self, label_column: str | None, label_map: Mapping[Any, str] | None
    ) -> tuple[str | None, dict[Any, str]]:
        if label_column is None:
            return None, {}
        self._check_columns([label_column], "label_column")
        mapping = dict(label_map or {})
        for code, name in mapping.items():
            if name not in self.classes:
                raise UnknownClassError(
                    f"label_map maps {code!r} to {name!r}, which is not one of the "
                    f"classes {self.classes}"
                )
        return label_column, mapping

    def _pool_matrix(self) -> np.ndarray:
        """The feature matrix of the whole pool, float32, NaN/inf imputed by medians."""
        X = self.catalogue.to_numpy(self.features, dtype=np.float32)
        bad = ~np.isfinite(X)
        if bad.any():
            for j in np.flatnonzero(bad.any(axis=0)):
                good = X[~bad[:, j], j]
                if good.size == 0:
                    raise ArmillaryError(
                        f"feature {self.features[j]!r} has no finite value in "
                        f"{self.catalogue.source.name}; drop it from features"
                    )
                X[bad[:, j], j] = np.median(good)
        return X

    def _open_store(self, store: LabelStore | str | os.PathLike | None) -> LabelStore:
        if isinstance(store, LabelStore):
            return store
        if store is None:
            cache = Path(self.catalogue.cache_path)
            store = cache.parent / f"{self.catalogue.name}.labels.sqlite"
        return LabelStore(
            store,
            catalogue_fingerprint=_catalogue_identity(self.catalogue),
            id_column=self.catalogue.id_column,
        )

    def _load_state(self) -> None:
        """Rebuild the pool masks from the store's current labels."""
        self._status[:] = POOL
        self._label_of.clear()
        current = self.store.current()
        if current.empty:
            return
        positions = self.catalogue.index_of(current["id"].to_numpy())
        for pos, kind, label in zip(positions, current["kind"], current["label"], strict=True):
            self._set_row(int(pos), kind, label)

    def _set_row(self, pos: int, kind: str | None, label: str | None) -> None:
        self._status[pos] = _KIND_STATUS.get(kind, POOL) if kind else POOL
        if kind == "label" and label in self.classes:
            self._label_of[pos] = self.classes.index(label)
        else:
            self._label_of.pop(pos, None)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self.catalogue)

    @property
    def model_version(self) -> int:
        """Version of the model behind the current queue (0: no model yet)."""
        return self._queue.version

    @property
    def labels(self) -> pd.DataFrame:
        """Current human labels: ``id, label, annotator, time`` and provenance columns."""
        df = self.store.labels()
        return df.drop(columns=["kind"], errors="ignore").reset_index(drop=True)

    @property
    def counts(self) -> dict[str, int]:
        """How many rows are labelled, unsure, skipped, and in the catalogue."""
        with self._lock:
            counts = np.bincount(self._status, minlength=4)
        return {
            "labelled": int(counts[LABELLED]),
            "unsure": int(counts[UNSURE]),
            "skipped": int(counts[SKIPPED]),
            "pool": len(self.catalogue),
        }

    def catalogue_labels(self) -> pd.DataFrame:
        """The catalogue's own labels (provenance "catalogue"), mapped to class names."""
        if self.label_column is None:
            return pd.DataFrame({"id": [], "label": []})
        codes = self.catalogue.column(self.label_column)
        names = pd.Series(codes).map(self.label_map)
        keep = names.notna().to_numpy()
        return pd.DataFrame(
            {
                "id": self.catalogue.ids[keep],
                "label": names[keep].to_numpy(),
                "provenance": "catalogue",
            }
        )

    def next(self) -> Candidate | None:
        """The candidate to label now, from the current queue; never waits for training.

        Returns ``None`` when every row of the pool has been labelled, marked unsure or
        skipped.
        """
        with self._lock:
            queue = self._queue
            for pos, score in zip(queue.positions, queue.scores, strict=True):
                if self._status[pos] == POOL:
                    return self.candidate(int(pos), float(score), queue.version)
            pos = self._next_cold()
        return None if pos is None else self.candidate(pos, None, queue.version)

    def _next_cold(self) -> int | None:
        """The next pool row in the seeded random order (no model, or queue used up)."""
        for pos in self._cold:
            if self._status[pos] == POOL:
                return int(pos)
        return None

    def candidate(self, position: int, score: float | None = None, version: int = 0) -> Candidate:
        """A :class:`Candidate` for a row position, with its shown values and images."""
        values = self.catalogue.row(position, self.extra_columns) if self.extra_columns else {}
        images = {}
        if self.image_columns:
            raw = self.catalogue.row(position, self.image_columns)
            images = {name: self._image_path(raw[name]) for name in self.image_columns}
        return Candidate(
            id=self.catalogue.id_at(position),
            position=position,
            score=score,
            model_version=version,
            values=values,
            images=images,
        )

    def _image_path(self, value: Any) -> Path | None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        text = str(value).strip()
        if not text:
            return None
        path = Path(text)
        return path if path.is_absolute() else Path(self.catalogue.source).parent / path

    def query(self, k: int = 10) -> list[Any]:
        """Ids of the top-``k`` pool rows of the current ranking (best first)."""
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        with self._lock:
            queue, model = self._queue, self._model
            picks = [int(p) for p in queue.positions if self._status[p] == POOL][:k]
        if len(picks) < k and model is not None:
            exclude = self._status != POOL
            positions, _ = self._rank(model, k, exclude, supersede=None)
            picks = [int(p) for p in positions]
        elif len(picks) < k:
            taken = set(picks)
            cold = self._cold[self._status[self._cold] == POOL]
            picks += [int(p) for p in cold if int(p) not in taken][: k - len(picks)]
        return [self.catalogue.id_at(p) for p in picks]

    # ------------------------------------------------------------------ acting
    def label(self, id: Any, cls: str, *, note: str | None = None) -> Any:
        """Label row ``id`` as class ``cls``; committed to the store before returning."""
        if cls not in self.classes:
            raise UnknownClassError(
                f"unknown class {cls!r}; this session's classes are {', '.join(self.classes)}"
            )
        return self._act("label", id, cls, note=note)

    def unsure(self, id: Any, *, note: str | None = None) -> Any:
        """Mark row ``id`` as unsure: kept out of training and out of the queue."""
        return self._act("unsure", id, None, note=note)

    def skip(self, id: Any, *, note: str | None = None) -> Any:
        """Skip row ``id`` (not now): kept out of the queue, not trained on."""
        return self._act("skip", id, None, note=note)

    def _act(self, kind: str, id: Any, cls: str | None, *, note: str | None) -> Any:
        pos = self._position(id)
        with self._lock:
            score = self._score_of(pos)
            event = self.store.append(
                kind,
                self.catalogue.id_at(pos),
                cls,
                annotator=self.annotator,
                session_id=self.session_id,
                model_version=self._queue.version or None,
                score=score,
                note=note,
            )
            self._set_row(pos, kind, cls)
            self._labels_version += 1
        self._wake.set()
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

    def _score_of(self, pos: int) -> float | None:
        hits = np.flatnonzero(self._queue.positions == pos)
        return float(self._queue.scores[hits[0]]) if hits.size else None

    def undo(self) -> Any:
        """Reverse this annotator's last act in this session; returns the reversed event.

        Returns ``None`` when there is nothing left to undo. The row goes back to the
        state it had before (its earlier label, or the pool).
        """
        with self._lock:
            event = self.store.undo(annotator=self.annotator, session_id=self.session_id)
            if event is None:
                return None
            pos = self._position(event.row_id)
            history = self.store.current()
            row = history[history["id"].astype(str) == str(event.row_id)]
            if row.empty:
                self._set_row(pos, None, None)
            else:
                self._set_row(pos, row["kind"].iloc[-1], row["label"].iloc[-1])
            self._labels_version += 1
        self._wake.set()
        return event

    # ------------------------------------------------------------------ learning
    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and class codes of every current human label."""
        with self._lock:
            items = sorted(self._label_of.items())
        positions = np.array([p for p, _ in items], dtype=np.int64)
        codes = np.array([c for _, c in items], dtype=np.int64)
        return positions, codes

    def refresh(self) -> int:
        """Refit and rescore now, blocking; returns the new model version (0: no model).

        A model needs labels of at least two classes; until then the queue follows a
        seeded random order of the pool.
        """
        return self._fit_and_rank(supersede=None)

    def _fit_and_rank(self, supersede: int | None) -> int:
        with self._fit_lock:
            with self._lock:
                seen = self._labels_version
                positions, codes = self.training_data()
                exclude = self._status != POOL
            if np.unique(codes).size < 2:
                return self._queue.version
            model = clone(self._learner).fit(self._X[positions], codes)
            ranked = self._rank(
                model, self.queue_size, exclude, supersede=seen if supersede else None
            )
            if ranked is None:
                return self._queue.version
            with self._lock:
                self._model_version += 1
                self._model = model
                self._queue = _Queue(self._model_version, ranked[0], ranked[1], len(codes))
        self._notify("model")
        return self._model_version

    def _rank(
        self, model: Any, k: int, exclude: np.ndarray, supersede: int | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Score the pool chunk by chunk and keep the top ``k``; ``None`` if superseded."""
        parts = []
        n = len(self._X)
        for start in range(0, n, CHUNK_ROWS):
            if supersede is not None and self._labels_version != supersede:
                return None
            stop = min(start + CHUNK_ROWS, n)
            proba = aligned_proba(model, self._X[start:stop], len(self.classes))
            parts.append(
                armillary_kernels.top_k(
                    proba,
                    k,
                    method=self.strategy,
                    exclude=np.ascontiguousarray(exclude[start:stop]),
                    random_state=self.random_state,
                    offset=start,
                )
            )
        return armillary_kernels.merge_top_k(parts, k, random_state=self.random_state)

    def _work(self) -> None:
        """Background trainer: refit and rescore whenever labels change."""
        while not self._closed.is_set():
            self._wake.wait()
            if self._closed.is_set():
                return
            self._wake.clear()
            try:
                self._fit_and_rank(supersede=1)
            except Exception as err:  # keep the trainer alive; report in the pane
                self._last_error = f"training failed: {type(err).__name__}: {err}"
                self._notify("error")

    def status_text(self) -> str:
        """One line about the model, for people."""
        queue = self._queue
        if queue.version == 0:
            return "No model yet: candidates come in a random order until two classes have labels."
        return (
            f"Model v{queue.version} ({self._learner_name()}) trained on "
            f"{queue.trained_on} labels; ranking by {self.strategy}."
        )

    def _learner_name(self) -> str:
        return type(self._learner).__name__

    def on_change(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(event)`` when a new model lands (``"model"``) or fails."""
        self._listeners.append(callback)

    def _notify(self, event: str) -> None:
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:  # a broken view must not stop the trainer
                continue

    def wait_for_model(self, version: int = 1, timeout: float = 60.0) -> bool:
        """Block until the model version reaches ``version`` (for scripts and tests)."""
        done = threading.Event()

        def check(_event: str) -> None:
            if self._queue.version >= version:
                done.set()

        self.on_change(check)
        try:
            check("")
            return done.wait(timeout)
        finally:
            self._listeners.remove(check)

    # ------------------------------------------------------------------ views
    def pane(self) -> Any:
        """The labelling pane (a widget); the same pane on every call."""
        if self._pane is None:
            from armillary.presenter import PanePresenter

            self._pane = PanePresenter(self).pane
        return self._pane

    def dock(self, area: str = "right") -> None:
        """Show the pane in JupyterLab's side panel (again, if it was closed)."""
        from armillary.widget import Dock

        pane = self.pane()
        if self._dock is None:
            self._dock = Dock(child=pane, title=self.catalogue.name, area=area)
        elif self._dock.docked:
            self._dock.send({"type": "open"})
        else:
            self._dock.docked = True

    def undock(self) -> None:
        """Close the side-panel tab; the session and its labels stay."""
        if self._dock is not None:
            self._dock.docked = False

    def close(self) -> None:
        """Stop the background trainer and close the store."""
        self._closed.set()
        self._wake.set()
        self._worker.join(timeout=30)
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


def _default_colours(n: int) -> list[str]:
    """Distinct colours for class buttons (AstronomicAL's example used the first three)."""
    palette = [
        "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
        "#e377c2", "#17becf", "#bcbd22", "#1f77b4", "#7f7f7f",
    ]  # fmt: skip
    return [palette[i % len(palette)] for i in range(n)]
