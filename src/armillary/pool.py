"""Pool bookkeeping: masks over the full catalogue, kept in step with the label store.

A :class:`Pool` turns the store's current labels into one status code per catalogue row
(unlabelled, labelled, unsure, skipped, test) and one class code per row, and answers
the questions a learner and a query strategy ask: which rows to train on, which rows the
test set holds, which rows may be proposed. A :class:`PoolView` maps positions in a
filtered pool (say, the unlabelled rows handed to a strategy) to catalogue rows and ids
and back, so that no caller does index arithmetic.

Rows are identified by the catalogue's ids, never by positions in a filtered array: the
store holds ids, and the positions are looked up in the catalogue once per id. Where the
store also recorded the catalogue row of an event's id (an appender that knew it, on the
store's own catalogue), the pool takes that row instead, after checking that the store
belongs to this catalogue and that a sample of the rows hold their ids; it looks up only
the ids without one. :meth:`Pool.refresh` re-reads only what changed in the log since
the last call.

Example
-------
>>> pool = Pool(store, catalogue, classes=["Star", "Galaxy", "QSO"])
>>> positions, codes = pool.training()          # rows and classes to fit on
>>> view = pool.view()                          # the unlabelled rows
>>> X_pool = X[view.positions]
>>> best = view.ids(np.argsort(scores)[:10])    # top scores -> catalogue ids
"""

from __future__ import annotations

import mmap
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from armillary._ids import catalogue_identity, ids_at
from armillary.errors import ArmillaryError, ArmillaryWarning, UnknownIdError

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
        The rows: ``len``, ``index_of(ids)`` and ``ids`` are used; ``id_at`` and
        ``fingerprint`` (or ``id_column``) to trust the catalogue rows a
        :class:`~armillary.store.LabelStore` recorded.
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
        self._status = _zeros(len(catalogue), np.int8)
        # The events in force at the last refresh, the catalogue row of each (-1: an id
        # the catalogue lacks) and its class code, as plain arrays: a refresh after one
        # label is a couple of set differences, not a frame rebuild. The class code of
        # every row (:attr:`codes`) is spread from them when first asked for.
        self._event_ids = np.empty(0, np.int64)
        self._event_pos = np.empty(0, np.int64)
        self._event_codes = np.empty(0, np.int16)
        self._codes: np.ndarray | None = None
        self.missing_ids = np.empty(0, dtype=object)
        self.unknown_labels: set[str] = set()
        self._version = -1
        self._changed = np.empty(0, dtype=np.int64)  # unsorted, may hold -1
        self._changed_sorted: np.ndarray | None = None
        # Recorded catalogue rows: trusted (None: not decided yet), taken at all, and
        # found wrong after some were taken (then every id is looked up again).
        self._rows_ok: bool | None = None
        self._took_rows = self._retake = False
        self._forgotten = np.empty(0, dtype=np.int64)
        self.refresh()

    # -- keeping in step ----------------------------------------------------------------

    def refresh(self) -> bool:
        """Bring the masks up to date with the store; True if anything changed.

        Only rows whose state changed since the last call are looked up and written,
        so a refresh after one label costs about as much as reading that label.
        """
        version = self.store.state_version
        if version == self._version and not self._retake:
            return False
        self._version = version
        state = self._in_force("human")
        if self._retake:
            self._forget()
        changed = self._apply(*state)
        if self._retake:  # recorded rows failed their check: every id looked up again
            self._forget()
            changed = self._apply(*state) or changed
        return changed

    def _apply(
        self,
        event_ids: np.ndarray,
        ids: np.ndarray,
        status: np.ndarray,
        labels: np.ndarray,
        names: list[str],
        rows: np.ndarray,
    ) -> bool:
        """Write the rows of the events now in force that are new, and clear those of
        events no longer in force (arrays as :meth:`_in_force` returns them)."""
        old = self._event_ids
        if old.size:
            gone, new = ~np.isin(old, event_ids), ~np.isin(event_ids, old)
        else:  # the first refresh: no sorting to find that everything is new
            gone, new = np.zeros(0, bool), np.ones(len(event_ids), bool)
        if not gone.any() and not new.any():
            return False
        every = ids
        if not new.all():  # all new: the first refresh
            ids, status, labels, rows = ids[new], status[new], labels[new], rows[new]
        positions = self._locate(ids, rows)
        stale = self._event_pos[gone]
        stale = stale[stale >= 0]
        self._status[stale] = UNLABELLED
        if self._codes is not None:
            self._codes[stale] = -1
        found = positions >= 0
        codes = np.full(len(positions), -1, dtype=np.int16)
        codes[found] = self._class_codes(labels[found], names)
        self._status[positions[found]] = status[found]
        if self._codes is not None:
            self._codes[positions[found]] = codes[found]
        self._event_ids = np.concatenate([old[~gone], event_ids[new]])
        self._event_pos = np.concatenate([self._event_pos[~gone], positions])
        self._event_codes = np.concatenate([self._event_codes[~gone], codes])
        missing = self._event_pos < 0
        if missing.any() or self.missing_ids.size:
            self.missing_ids = every[np.isin(event_ids, self._event_ids[missing])]
        self._changed = np.concatenate([self._forgotten, stale, positions])
        self._forgotten = self._forgotten[:0]
        self._changed_sorted = None
        return True

    def _forget(self) -> None:
        """Clear every row the events placed, to place them all again by id."""
        placed = self._event_pos[self._event_pos >= 0]
        self._status[placed] = UNLABELLED
        self._codes = None
        self._forgotten = np.concatenate([self._forgotten, placed])
        self._event_ids = np.empty(0, np.int64)
        self._event_pos = np.empty(0, np.int64)
        self._event_codes = np.empty(0, np.int16)
        self._retake = self._took_rows = False

    @property
    def changed(self) -> np.ndarray:
        """Catalogue positions whose status or class the last :meth:`refresh` that
        returned True rewrote (sorted)."""
        if self._changed_sorted is None:
            self._changed_sorted = _unique(self._changed[self._changed >= 0])
        return self._changed_sorted

    def _in_force(self, provenance: str) -> tuple[Any, ...]:
        """The store's current states as arrays: event ids, ids, status codes, label
        codes into the label names returned (-1: none), the names, and the catalogue
        rows recorded with the events (-1: none)."""
        fast = getattr(self.store, "_in_force", None)  # a LabelStore: codes, no strings
        if fast is not None:
            event_ids, ids, states, state_names, labels, names, rows = fast(provenance)
            status = np.array([_STATUS_OF_STATE.get(n, UNLABELLED) for n in state_names])
            return event_ids, ids, status.astype(np.int8)[states], labels, names, rows
        current = self.store.current(provenance, columns=_LEAN)
        labels, names = pd.factorize(current["label"].to_numpy())  # None: -1
        return (
            current["event_id"].to_numpy(),
            current["id"].to_numpy(),
            _status_codes(current["kind"].to_numpy()),
            labels,
            list(names),
            np.full(len(current), -1, dtype=np.int64),
        )

    def _locate(self, ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Catalogue positions of ids (-1: not in the catalogue): the rows recorded
        with their events where those pass :meth:`_rows_hold`, the others looked up."""
        take = rows >= 0
        if take.any() and not self._rows_hold(ids[take], rows[take]):
            take[:] = False
        if not take.any():
            return self._positions(ids)
        self._took_rows = True
        if take.all():
            return rows
        positions = rows.copy()
        positions[~take] = self._positions(ids[~take])
        return positions

    def _rows_hold(self, ids: np.ndarray, rows: np.ndarray) -> bool:
        """Whether recorded rows (all >= 0) are this catalogue's rows of ``ids``: the
        store belongs to this catalogue (:func:`_same_catalogue`), every row is in
        range, and an evenly spread sample of them holds its id. A failure turns
        recorded rows off for this pool, with a warning."""
        if self._rows_ok is None:
            self._rows_ok = _same_catalogue(self.store, self.catalogue)
        if not self._rows_ok:
            return False
        sample = np.linspace(0, len(rows) - 1, min(_ROW_SAMPLE, len(rows))).astype(np.intp)
        if rows.max() < len(self.catalogue) and all(
            bool(a == b)
            for a, b in zip(ids_at(self.catalogue, rows[sample]), ids[sample], strict=True)
        ):
            return True
        self._rows_ok = False
        self._retake = self._took_rows  # rows taken before may be wrong too
        warnings.warn(
            f"label store {getattr(self.store, 'path', self.store)}: the catalogue rows "
            f"recorded with its events do not hold their ids in catalogue "
            f"{getattr(self.catalogue, 'name', '')!r}; looking the ids up instead",
            ArmillaryWarning,
            stacklevel=5,  # refresh()'s caller
        )
        return False

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

    def _class_codes(self, labels: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """Class codes (int16; -1 for none and unknown names) of labels given as codes
        into ``names`` (-1: none).

        Without classes given, classes are the label names in the order they first
        appear, so that a code never changes meaning.
        """
        present = [names[k] for k in pd.unique(labels[labels >= 0]).tolist()]
        unseen = [x for x in present if x not in (self.classes or ())]
        if self._learn_classes:
            self.classes = [*(self.classes or []), *unseen]
        else:
            self.unknown_labels |= set(unseen)
        table = pd.Index(self.classes or [], dtype=object).get_indexer(list(names))
        return np.append(table, -1).astype(np.int16)[labels]  # code -1: the last entry

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
        view = self._full_codes().view()
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
        out = {}
        for code, name in enumerate(STATUS_NAMES):
            out[name] = np.equal(self._status, code, out=_zeros(len(self._status), bool))
        return out

    def counts(self) -> dict[str, int]:
        """How many rows are in each status, and ``total``."""
        counts = np.bincount(self._status, minlength=len(STATUS_NAMES))
        return {
            **{n: int(c) for n, c in zip(STATUS_NAMES, counts, strict=True)},
            "total": len(self._status),
        }

    def training(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and class codes of every training label (test set excluded)."""
        return self._of_status(LABELLED)

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and class codes of the curated test set."""
        return self._of_status(TEST)

    def _of_status(self, status: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted positions and class codes of the rows in a status with a known class."""
        positions, codes = self._event_pos, self._event_codes
        keep = positions >= 0
        keep[keep] = self._status[positions[keep]] == status
        keep &= codes >= 0
        order = np.argsort(positions[keep], kind="stable")
        return positions[keep][order], codes[keep][order].astype(np.int64)

    def _full_codes(self) -> np.ndarray:
        """The class code of every row, spread from the events in force on first use."""
        if self._codes is None:
            codes = np.full(len(self._status), -1, dtype=np.int16)
            found = self._event_pos >= 0
            codes[self._event_pos[found]] = self._event_codes[found]
            self._codes = codes
        return self._codes

    def catalogue_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and class codes of the catalogue's own labels (provenance
        ``"catalogue"``): never in the masks above, never trained on."""
        _, ids, _, labels, names, rows = self._in_force("catalogue")
        positions = self._locate(ids, rows)
        codes = self._class_codes(labels, names)
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


def _zeros(n: int, dtype: type) -> np.ndarray:
    """A new zeroed array, mapped with its pages in place at once where the system allows.

    A large numpy array gets its pages one fault at a time, in huge pages where the
    kernel has them; on a virtual machine a fresh huge page can cost milliseconds, and
    the masks of a 10M-row catalogue span 30 of them. One mapping populated in a
    single call (Linux ``MAP_POPULATE``) costs a small, steady fraction of that.
    """
    size = n * np.dtype(dtype).itemsize
    if size < _MAPPED_BYTES or not hasattr(mmap, "MAP_POPULATE"):
        return np.zeros(n, dtype=dtype)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE
    try:
        return np.frombuffer(mmap.mmap(-1, size, flags=flags), dtype=dtype)
    except OSError:  # no room for a mapping: numpy's allocator
        return np.zeros(n, dtype=dtype)


_MAPPED_BYTES = 1 << 22  # from 4 MiB, where numpy asks for huge pages
_ROW_SAMPLE = 32  # recorded rows checked against the catalogue's ids, per refresh


def _same_catalogue(store: Any, catalogue: Any) -> bool:
    """Whether the catalogue fingerprint the store recorded is this catalogue's: its
    cache fingerprint, or the content identity a Session records (see
    ``armillary._ids.catalogue_identity``). A catalogue without ``id_at`` never matches."""
    recorded = getattr(store, "catalogue_fingerprint", None)
    if not isinstance(recorded, str) or not hasattr(catalogue, "id_at"):
        return False
    if recorded == getattr(catalogue, "fingerprint", None):
        return True
    return hasattr(catalogue, "id_column") and recorded == catalogue_identity(catalogue)


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
