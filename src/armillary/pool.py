"""Pool bookkeeping: masks over the full catalogue, kept in step with the label store.

A :class:`Pool` turns the store's current labels into one status code per catalogue row
(unlabelled, labelled, unsure, skipped, test) and one class code per row, and answers
the questions a learner and a query strategy ask: which rows to train on, which rows the
test set holds, which rows may be proposed. A :class:`PoolView` maps positions in a
filtered pool (say, the unlabelled rows handed to a strategy) to catalogue rows and ids
and back, so that no caller does index arithmetic.

Rows are identified by the catalogue's ids, never by positions in a filtered array: the
store holds ids, and the positions are looked up in the catalogue once per id.
:meth:`Pool.refresh` re-reads only what changed in the log since the last call.

Example
-------
>>> pool = Pool(store, catalogue, classes=["Star", "Galaxy", "QSO"])
>>> positions, codes = pool.training()          # rows and classes to fit on
>>> view = pool.view()                          # the unlabelled rows
>>> X_pool = X[view.positions]
>>> best = view.ids(np.argsort(scores)[:10])    # top scores -> catalogue ids
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from armillary.errors import ArmillaryError, UnknownIdError

__all__ = [
    "LABELLED",
    "SKIPPED",
    "STATUS_NAMES",
    "TEST",
    "UNLABELLED",
    "UNSURE",
    "Pool",
    "PoolView",
]

#: Status codes of catalogue rows (those of the skeleton's session, plus TEST).
UNLABELLED, LABELLED, UNSURE, SKIPPED, TEST = 0, 1, 2, 3, 4
STATUS_NAMES = ("unlabelled", "labelled", "unsure", "skipped", "test")
_STATUS_OF_STATE = {"label": LABELLED, "unsure": UNSURE, "skip": SKIPPED, "test": TEST}
_LEAN = ["id", "kind", "label", "event_id"]


class Pool:
    """Status and class of every catalogue row, from a label store.

    Parameters
    ----------
    store : LabelStore
        The log (any object with ``current(provenance, columns=...)`` and
        ``state_version``).
    catalogue : Catalogue
        The rows: ``len``, ``index_of(ids)`` and ``ids`` are used.
    classes : sequence of str, optional
        Class names in code order; default the store's ``classes``, else the label
        names in the order they first appear. Labels of names outside given classes
        are kept out of training and listed in :attr:`unknown_labels`.

    Attributes
    ----------
    missing_ids : numpy.ndarray
        Ids that the store holds but the catalogue lacks (possible when the store was
        opened with ``match_by_id=True``); they are in no mask.
    unknown_labels : set of str
        Label names not among ``classes``.
    changed : numpy.ndarray
        Catalogue positions whose status or class the last :meth:`refresh` that
        returned True rewrote (sorted), so that a caller keeping its own overlay of the
        masks updates only those rows.
    """

    def __init__(self, store: Any, catalogue: Any, classes: Sequence[str] | None = None) -> None:
        self.store = store
        self.catalogue = catalogue
        names = classes if classes is not None else getattr(store, "classes", None)
        self.classes = list(names) if names is not None else None
        self._learn_classes = self.classes is None
        self._status = np.zeros(len(catalogue), dtype=np.int8)
        self._codes = np.full(len(catalogue), -1, dtype=np.int16)
        # The events in force at the last refresh and the catalogue row of each (-1: an
        # id the catalogue lacks), as plain arrays: a refresh after one label is a
        # couple of set differences, not a frame rebuild.
        self._event_ids = np.empty(0, np.int64)
        self._event_pos = np.empty(0, np.int64)
        self.missing_ids = np.empty(0, dtype=object)
        self.unknown_labels: set[str] = set()
        self._version = -1
        self.changed = np.empty(0, dtype=np.int64)
        self.refresh()

    # -- keeping in step ----------------------------------------------------------------

    def refresh(self) -> bool:
        """Bring the masks up to date with the store; True if anything changed.

        Only rows whose state changed since the last call are looked up and written,
        so a refresh after one label costs about as much as reading that label.
        """
        version = self.store.state_version
        if version == self._version:
            return False
        self._version = version
        current = self.store.current("human", columns=_LEAN)
        event_ids = current["event_id"].to_numpy()
        old = self._event_ids
        gone = ~np.isin(old, event_ids)
        new = ~np.isin(event_ids, old)
        if not gone.any() and not new.any():
            return False
        stale = self._event_pos[gone]
        self._status[stale[stale >= 0]] = UNLABELLED
        self._codes[stale[stale >= 0]] = -1
        added = current if new.all() else current[new]  # all new: the first refresh
        positions = self._positions(added["id"].to_numpy())
        found = positions >= 0
        self._status[positions[found]] = _status_codes(added["kind"].to_numpy()[found])
        self._codes[positions[found]] = self._class_codes(added["label"].to_numpy()[found])
        self._event_ids = np.concatenate([old[~gone], event_ids[new]])
        self._event_pos = np.concatenate([self._event_pos[~gone], positions])
        missing = self._event_pos < 0
        if missing.any() or self.missing_ids.size:
            self.missing_ids = current["id"].to_numpy()[
                np.isin(event_ids, self._event_ids[missing])
            ]
        changed = np.concatenate([stale, positions])
        self.changed = _unique(changed[changed >= 0])
        return True

    def _positions(self, ids: np.ndarray) -> np.ndarray:
        """Catalogue positions of ids; -1 for ids the catalogue lacks."""
        if not len(ids):
            return np.empty(0, dtype=np.int64)
        try:  # the catalogue's id index sorts the queries itself
            return np.asarray(self.catalogue.index_of(ids), dtype=np.int64)
        except UnknownIdError:  # a store matched by id: find which are missing
            if hasattr(self.catalogue, "_lookup"):  # an armillary Catalogue: no id array
                return self.catalogue._lookup(ids)[1]
            index = pd.Index(self.catalogue.ids)
            return index.get_indexer(
                pd.Index(ids, dtype=index.dtype if index.dtype != object else object)
            )

    def _class_codes(self, labels: np.ndarray) -> np.ndarray:
        """Class codes of label names (-1 for None and unknown names).

        Without classes given, classes are the label names in the order they first
        appear, so that a code never changes meaning.
        """
        unseen = [x for x in pd.unique(labels) if x is not None and x not in (self.classes or ())]
        if self._learn_classes:
            self.classes = [*(self.classes or []), *unseen]
        else:
            self.unknown_labels |= set(unseen)
        codes = pd.Index(self.classes or [], dtype=object).get_indexer(labels)
        return codes.astype(np.int16)

    # -- masks --------------------------------------------------------------------------

    @property
    def status(self) -> np.ndarray:
        """Status code of every row (read-only int8 view; see :data:`STATUS_NAMES`)."""
        view = self._status.view()
        view.flags.writeable = False
        return view

    @property
    def codes(self) -> np.ndarray:
        """Class code of every row with a label or test label, else -1 (read-only)."""
        view = self._codes.view()
        view.flags.writeable = False
        return view

    @property
    def labelled(self) -> np.ndarray:
        """Rows whose state is a (training) label."""
        return self._status == LABELLED

    @property
    def unsure(self) -> np.ndarray:
        """Rows marked unsure."""
        return self._status == UNSURE

    @property
    def skipped(self) -> np.ndarray:
        """Rows skipped."""
        return self._status == SKIPPED

    @property
    def test(self) -> np.ndarray:
        """Rows of the curated test set."""
        return self._status == TEST

    @property
    def unlabelled(self) -> np.ndarray:
        """Rows with no state: the pool that queries may propose."""
        return self._status == UNLABELLED

    def masks(self) -> dict[str, np.ndarray]:
        """Every mask by name: ``labelled, unsure, skipped, test, unlabelled``."""
        return {name: self._status == code for code, name in enumerate(STATUS_NAMES)}

    def counts(self) -> dict[str, int]:
        """How many rows are in each status, and ``total``."""
        counts = np.bincount(self._status, minlength=len(STATUS_NAMES))
        return {
            **{n: int(c) for n, c in zip(STATUS_NAMES, counts, strict=True)},
            "total": len(self._status),
        }

    def training(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and class codes of every training label (test set excluded)."""
        positions = np.flatnonzero((self._status == LABELLED) & (self._codes >= 0))
        return positions, self._codes[positions].astype(np.int64)

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and class codes of the curated test set."""
        positions = np.flatnonzero((self._status == TEST) & (self._codes >= 0))
        return positions, self._codes[positions].astype(np.int64)

    def catalogue_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and class codes of the catalogue's own labels (provenance
        ``"catalogue"``): never in the masks above, never trained on."""
        current = self.store.current("catalogue", columns=_LEAN)
        positions = self._positions(current["id"].to_numpy())
        codes = self._class_codes(current["label"].to_numpy())
        keep = (positions >= 0) & (codes >= 0)
        return positions[keep], codes[keep].astype(np.int64)

    def view(self, mask: np.ndarray | str | None = None) -> PoolView:
        """The rows of a filtered pool, as a :class:`PoolView`.

        Parameters
        ----------
        mask : bool array over the catalogue, a status name, or None
            Which rows; default the unlabelled ones.
        """
        if mask is None or isinstance(mask, str):
            name = mask or "unlabelled"
            if name not in STATUS_NAMES:
                msg = f"unknown status {name!r}; valid names are {list(STATUS_NAMES)}"
                raise ValueError(msg)
            mask = self._status == STATUS_NAMES.index(name)
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != self._status.shape:
            msg = (
                f"a pool mask must be a bool array of one value per catalogue row "
                f"({self._status.shape[0]}), not {mask.dtype} of shape {mask.shape}"
            )
            raise ValueError(msg)
        return PoolView(self.catalogue, np.flatnonzero(mask))

    def __repr__(self) -> str:
        counts = ", ".join(f"{k} {v:,}" for k, v in self.counts().items())
        return f"<Pool {counts}>"


def _status_codes(kinds: np.ndarray) -> np.ndarray:
    """Status codes of state names (``label``, ``unsure``, ``skip``, ``test``)."""
    codes = pd.Index(list(_STATUS_OF_STATE)).get_indexer(kinds)
    return np.array(list(_STATUS_OF_STATE.values()), dtype=np.int8)[codes]


def _unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values; numpy 2's ``np.unique`` hashes first, several times slower
    for 100,000 positions than a sort."""
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if values.size else values


class PoolView:
    """A filtered pool: entry ``i`` of the view is catalogue row ``positions[i]``.

    Parameters
    ----------
    catalogue : Catalogue
    positions : array of int
        Catalogue row positions in the view, increasing.
    """

    def __init__(self, catalogue: Any, positions: np.ndarray) -> None:
        self.catalogue = catalogue
        self.positions = np.asarray(positions, dtype=np.int64)
        self.positions.flags.writeable = False
        if np.any(np.diff(self.positions) <= 0):
            raise ValueError("PoolView positions must be strictly increasing")

    def __len__(self) -> int:
        return len(self.positions)

    def __repr__(self) -> str:
        return f"<PoolView {len(self):,} of {len(self.catalogue):,} rows>"

    def catalogue_positions(self, index: np.ndarray | Sequence[int] | int) -> np.ndarray:
        """Catalogue positions of entries of the view."""
        index = np.asarray(index)
        if index.size == 0:
            index = index.astype(np.int64)
        if index.dtype.kind not in "iu":
            msg = f"view entries must be integers, not {index.dtype}"
            raise TypeError(msg)
        if index.size and (index.min() < -len(self) or index.max() >= len(self)):
            msg = f"view entry out of range for a view of {len(self)} rows"
            raise IndexError(msg)
        return self.positions[index]

    def ids(self, index: np.ndarray | Sequence[int] | None = None) -> np.ndarray:
        """Catalogue ids of entries of the view (all of them by default)."""
        positions = self.positions if index is None else self.catalogue_positions(index)
        if positions.size <= 64:  # a few: no need to build the catalogue's id array
            values = [self.catalogue.id_at(int(p)) for p in positions.ravel()]
            strings = any(isinstance(v, str) for v in values)
            return np.array(values, dtype=object if strings else np.int64).reshape(positions.shape)
        return np.asarray(self.catalogue.ids)[positions]

    def index_of(self, ids: Sequence | np.ndarray) -> np.ndarray:
        """Entries of the view holding these catalogue ids.

        Raises
        ------
        UnknownIdError
            An id is not in the catalogue.
        ArmillaryError
            An id is in the catalogue but not in this view (labelled, say).
        """
        return self.from_catalogue(self.catalogue.index_of(ids), ids=ids)

    def from_catalogue(
        self, positions: np.ndarray | Sequence[int], ids: Sequence | np.ndarray | None = None
    ) -> np.ndarray:
        """Entries of the view holding these catalogue row positions."""
        positions = np.asarray(positions, dtype=np.int64)
        index = np.searchsorted(self.positions, positions)
        inside = index < len(self.positions)
        inside[inside] = self.positions[index[inside]] == positions[inside]
        if not inside.all():
            bad = np.flatnonzero(~inside)[:5]
            shown = [
                np.asarray(ids, dtype=object)[k] if ids is not None else f"row {positions[k]}"
                for k in bad
            ]
            msg = (
                f"{', '.join(map(repr, shown))} not in this pool view of {len(self):,} "
                "rows (labelled, marked, or filtered out)"
            )
            raise ArmillaryError(msg)
        return index
