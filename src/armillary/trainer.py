"""The live queue: a background trainer that refits and rescores as labels arrive.

After each label the session wakes the trainer. It takes a snapshot of the current labels,
fits a fresh :class:`~armillary.learners.Learner`, rescores the pool chunk by chunk with
the compiled core, and publishes a new :class:`Queue` whole (atomically: one reference
swap under a lock). Every queue carries the model version that made it. A rescoring in
progress is abandoned when newer labels arrive, so there is never a backlog. The session's
``next()`` reads the current queue and never waits.

Before a model can be fitted (labels of fewer than two classes), the queue is a cold-start
order: a diverse seed set (k-means++ over a sample of the pool) from zero labels, or a
farthest-first search for other classes when only one class has labels.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from armillary import strategies as st
from armillary.learners import Learner

#: Rows scored per chunk when the pool is rescored (bounds memory: chunk x classes).
CHUNK_ROWS = 262_144
#: Pool rows sampled for the cold-start seed set and the search for other classes.
COLD_SAMPLE = 20_000


@dataclass(frozen=True)
class Queue:
    """Ranked candidates from one model version; replaced whole, never edited."""

    version: int
    positions: np.ndarray
    scores: np.ndarray
    trained_on: int = 0
    kind: str = "model"  # "model", "seed" (zero labels) or "explore" (one class)


@dataclass(frozen=True)
class Snapshot:
    """What the trainer needs to know of the session's labels at one moment."""

    labels_version: int
    positions: np.ndarray  # labelled rows
    codes: np.ndarray  # their class codes
    exclude: np.ndarray  # rows not in the pool (labelled, unsure, skipped, held out)


class Source(Protocol):
    """The side of the session the trainer reads."""

    def snapshot(self) -> Snapshot: ...

    def labels_version(self) -> int: ...


@dataclass
class Settings:
    learner: Any
    scheme: str
    scale: str | None
    n_classes: int
    strategy: st.Strategy
    random_state: int
    queue_size: int
    pool_sample: int | None = None
    full_every: int = 20
    balance: bool = False
    chunk_rows: int = CHUNK_ROWS


class Trainer:
    """Fits, ranks and publishes queues, in the caller's thread or a background one."""

    def __init__(
        self,
        X: np.ndarray,
        settings: Settings,
        source: Source,
        on_model: Callable[[Any, int], None],
    ) -> None:
        self.X = X
        self.settings = settings
        self.source = source
        self.on_model = on_model
        self.queue = Queue(0, np.empty(0, np.int64), np.empty(0), kind="seed")
        self.model: Learner | None = None
        self.version = 0
        self.last_error = ""
        self._publish_lock = threading.Lock()
        self._fit_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="armillary-trainer", daemon=True)
        self._listeners: list[Callable[[str], None]] = []
        self._fits_since_full = 0
        self._trained_on_version = -1

    # -- the thread ------------------------------------------------------------------
    def start(self) -> None:
        """Publish a cold-start queue now if no model can be fitted yet, then start the
        background thread (which fits the first model when labels allow)."""
        snap = self.source.snapshot()
        if np.unique(snap.codes).size < 2:
            self._publish_cold(snap)
        self._thread.start()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait()
            if self._closed.is_set():
                return
            self._wake.clear()
            try:
                self.run(cancellable=True)
            except Exception as err:  # keep the trainer alive; the pane shows the error
                self.last_error = f"training failed: {type(err).__name__}: {err}"
                self._notify("error")

    # -- one round -------------------------------------------------------------------
    def run(self, *, cancellable: bool = False) -> int:
        """Refit and rescore once; returns the version of the queue now current."""
        with self._fit_lock:
            snap = self.source.snapshot()
            if cancellable and snap.labels_version == self._trained_on_version:
                return self.queue.version  # a blocking refresh already covered these labels
            if np.unique(snap.codes).size < 2:
                self.model = None  # e.g. undo back to one class: the old model is gone
                if self._publish_cold(snap):
                    self._trained_on_version = snap.labels_version
                return self.queue.version
            model = Learner(
                self.settings.learner,
                scheme=self.settings.scheme,
                scale=self.settings.scale,
                n_classes=self.settings.n_classes,
                random_state=self.settings.random_state,
            ).fit(self.X[snap.positions], snap.codes)
            cancelled = None
            if cancellable:
                seen = snap.labels_version
                cancelled = lambda: self.source.labels_version() != seen  # noqa: E731
            ranked = self.rank(model, self.settings.queue_size, snap, cancelled=cancelled)
            if ranked is None:
                return self.queue.version  # superseded: newer labels, the loop goes again
            with self._publish_lock:
                self.version += 1
                self.model = model
                self.queue = Queue(self.version, ranked[0], ranked[1], len(snap.codes))
                version = self.version
            self._trained_on_version = snap.labels_version
            self.last_error = ""
        self.on_model(model, version)
        self._notify("model")
        return version

    def rank(
        self, model: Learner, k: int, snap: Snapshot, cancelled: Callable[[], bool] | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Top ``k`` of the pool under ``model`` (the pool sample, or all of it)."""
        s = self.settings
        rows = self._sample_rows(snap)
        if s.balance and isinstance(s.strategy, str) and s.strategy in st.SINGLE:
            counts = np.bincount(snap.codes, minlength=s.n_classes)
            per_class = st.rank_pool_by_class(
                model, self.X, k, s.strategy, n_classes=s.n_classes, exclude=snap.exclude,
                random_state=s.random_state, chunk_rows=s.chunk_rows, rows=rows,
                cancelled=cancelled,
            )  # fmt: skip
            return None if per_class is None else st.balanced_merge(per_class, counts, k)
        return st.rank_pool(
            model, self.X, k, s.strategy, exclude=snap.exclude, random_state=s.random_state,
            chunk_rows=s.chunk_rows, rows=rows, cancelled=cancelled,
        )  # fmt: skip

    def _sample_rows(self, snap: Snapshot) -> np.ndarray | None:
        """With ``pool_sample``, a fresh seeded sample of the pool, except every
        ``full_every`` rounds, when the whole pool is rescored."""
        s = self.settings
        if not s.pool_sample or s.pool_sample >= len(self.X):
            return None
        self._fits_since_full += 1
        if self._fits_since_full >= s.full_every:
            self._fits_since_full = 0
            return None
        rng = np.random.default_rng([s.random_state, snap.labels_version])
        return np.sort(rng.choice(len(self.X), size=s.pool_sample, replace=False))

    def _publish_cold(self, snap: Snapshot) -> bool:
        """Seed set (zero labels) or farthest-first search (one class), as a queue.

        Not published (returns False) when newer labels arrived meanwhile: the loop goes
        again for them, and a queue for older labels never replaces the one on show.
        """
        s = self.settings
        rng = np.random.default_rng(s.random_state)
        pool = np.flatnonzero(~snap.exclude)
        if pool.size > COLD_SAMPLE:
            pool = np.sort(rng.choice(pool, size=COLD_SAMPLE, replace=False))
        if pool.size == 0:
            order, kind = pool, "seed"
        else:
            feats, labelled = _standardise(self.X[pool], self.X[snap.positions])
            if snap.positions.size == 0:
                order, kind = (
                    st.seed_order(feats, s.queue_size, random_state=s.random_state),
                    "seed",
                )
            else:
                order, kind = st.explore_order(feats, labelled, s.queue_size), "explore"
        with self._publish_lock:
            if self.source.labels_version() != snap.labels_version:
                return False
            self.queue = Queue(
                self.queue.version,
                pool[order],
                np.full(len(order), np.nan),
                len(snap.codes),
                kind,
            )
        self._notify("queue")
        return True

    # -- listeners -------------------------------------------------------------------
    def on_change(self, callback: Callable[[str], None]) -> None:
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[str], None]) -> None:
        self._listeners.remove(callback)

    def _notify(self, event: str) -> None:
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:  # a broken view must not stop the trainer
                continue


def _standardise(pool: np.ndarray, labelled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Impute with pool medians and scale by robust spread, for distances."""
    finite = np.where(np.isfinite(pool), pool, np.nan)
    # A feature no pool row has (a tiny pool at its end): numpy warns "All-NaN slice";
    # its median and spread fall back to 0 and 1 below.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(finite, axis=0)
        q75, q25 = np.nanpercentile(finite, [75, 25], axis=0)
    med = np.where(np.isfinite(med), med, 0.0)
    spread = np.where(np.isfinite(q75 - q25) & (q75 - q25 > 0), q75 - q25, 1.0)

    def fix(a: np.ndarray) -> np.ndarray:
        a = np.where(np.isfinite(a), a, med)
        return ((a - med) / spread).astype(np.float64)

    return fix(pool), fix(labelled)
