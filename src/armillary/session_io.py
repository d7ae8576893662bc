"""The label-store side of a Session: bulk labels, notes, redo, the curated test set,
import and export. Mixed into :class:`armillary.session.Session`."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from armillary.errors import UnknownClassError


class LabelsMixin:
    """Methods of :class:`~armillary.session.Session` that go through the label store."""

    #: When true, labels are test-set labels (AstronomicAL's labelling mode): kept out of
    #: training and of the pool, and scored with ``session.evaluate("curated")``.
    test_mode: bool = False

    def label_many(self, ids: Any, cls: str, *, selection_id: str | None = None) -> range:
        """Label many rows as one act (one undo reverses it all), e.g. a plot selection.

        ``selection_id`` names the selection in the log (default: a fresh
        ``"selection-<hex>"``), so that the act can be told apart from others later.
        """
        self._check_class(cls)
        ids = list(ids)
        positions = [self._position(i) for i in ids]  # every id checked before writing
        row_ids = [self.catalogue.id_at(p) for p in positions]
        if selection_id is None:
            selection_id = f"selection-{uuid.uuid4().hex[:12]}"
        with self._lock:
            events = self.store.append_many(
                "bulk_label", row_ids, cls, annotator=self.annotator,
                session_id=self.session_id, selection_id=selection_id, rows=positions,
            )  # fmt: skip
        self._reload()
        return events

    def note(self, id: Any, text: str) -> Any:
        """Attach a note to a row (an event of its own; the row's label is unchanged)."""
        pos = self._position(id)
        return self.store.append(
            "note", self.catalogue.id_at(pos), annotator=self.annotator,
            session_id=self.session_id, note=text, row=pos,
        )  # fmt: skip

    def redo(self) -> Any:
        """Restore what this annotator's last undo in this session reversed."""
        with self._lock:
            event = self.store.redo(annotator=self.annotator, session_id=self.session_id)
        if event is not None:
            self._reload()
        return event

    def history(self, id: Any) -> pd.DataFrame:
        """One row's whole story: every event about it, oldest first."""
        return self.store.history(self.catalogue.id_at(self._position(id)))

    def test_set(self) -> pd.DataFrame:
        """The curated test set (labels made with ``test_mode`` on)."""
        return self.store.test_set()

    def export(self, path: str | os.PathLike, *, join: bool = False, **kwargs: Any) -> Path:
        """Write labels with their provenance; the format follows the suffix
        (``.fits``, ``.xml``/``.vot``, ``.parquet``, ``.csv``, ``.ecsv``). With
        ``join=True`` the catalogue's columns come along."""
        from armillary.labels_io import export_labels

        return export_labels(self.store, self.catalogue, path, join=join, **kwargs)

    def import_labels(self, source: Any, **kwargs: Any) -> range:
        """Import labels: AstronomicAL's ``test_set.json`` or configuration, or a file
        of labels; see :func:`armillary.labels_io.import_labels`."""
        from armillary.labels_io import import_labels

        events = import_labels(
            self.store, self.catalogue, source, annotator=self.annotator, **kwargs
        )
        self._reload()
        return events

    # -- helpers ---------------------------------------------------------------------
    def _check_class(self, cls: str) -> None:
        if cls not in self.classes:
            raise UnknownClassError(
                f"unknown class {cls!r}; this session's classes are {', '.join(self.classes)}"
            )

    def _reload(self) -> None:
        """Rebuild the masks from the store (after acts that touch many rows)."""
        with self._lock:
            self._sync()
            self._labels_version += 1
        self._trainer.wake()

    def curated_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and class codes of the curated test set."""
        test = self.test_set()
        if test.empty:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        positions = np.asarray(self.catalogue.index_of(test["id"].to_numpy()), dtype=np.int64)
        codes = np.array([self.classes.index(c) for c in test["label"]], dtype=np.int64)
        return positions, codes
