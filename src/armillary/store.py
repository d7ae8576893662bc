"""The label store: an append-only log of labelling events in one SQLite file.

Every act of an annotator is one or more rows of the ``events`` table: a label, a relabel
(a label of a row that has one; :meth:`LabelStore.append` records it so by itself),
unsure, skip, a note, a test-set label, and a bulk label of many rows under one selection
id. Undo and redo are events too. Rows are only ever inserted, never updated or deleted
(triggers refuse both), so the whole history is always there
(:meth:`LabelStore.history`). The labels in force are a view of the log: for each row, its
latest state-setting act that is not undone (:meth:`LabelStore.current`), separately for
human labels and for labels taken from the catalogue itself (provenance ``"catalogue"``).

A label is acknowledged only after :meth:`LabelStore.append` returns, and by then it is
committed and synced to disk (WAL, ``synchronous=FULL``).

Another backend
---------------
The interface is small on purpose, so that a PostgreSQL store for teams on JupyterHub can
follow without touching callers: the constructor, ``append``, ``append_many``, ``undo``,
``redo``, ``current``, ``labels``, ``test_set``, ``events``, ``history``, ``snapshot``,
``state_version``, ``meta`` and ``close`` (and, optionally, ``catalogue_fingerprint``:
a :class:`~armillary.pool.Pool` takes the catalogue rows recorded with events only from
a store that says whose rows they are). What such a backend must keep: event ids that
grow in commit order (here SQLite's single writer gives that; in PostgreSQL take
``LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE`` in each write transaction, or readers
that page through ids could skip a late commit), the append-only rule (a trigger, or
``REVOKE UPDATE, DELETE``), and the views in :mod:`armillary._store_schema`, whose SQL
carries over with ``DISTINCT ON`` in place of SQLite's bare-column ``MAX``. Field checks
live in :mod:`armillary._store_values` and need no SQL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from armillary import _store_schema as schema
from armillary._store_digest import LogDigest
from armillary._store_file import SQLiteFile
from armillary._store_frames import LEAN_COLUMNS, lean_frame, stack
from armillary._store_schema import ACTS, KINDS, SCHEMA_VERSION, STATE_OF
from armillary._store_values import (
    CURRENT_COLUMNS,
    EVENTS_COLUMNS,
    check_kind,
    check_label,
    check_labels,
    check_name,
    check_row,
    check_rows,
    default_annotator,
    fold,
    frame,
    id_text,
    ids_text,
    now,
    per_row,
    provenance_values,
)
from armillary._store_write import INSERT, insert_many, reverse_act
from armillary.errors import (
    InvalidEventError,
)

__all__ = [
    "ACTS",
    "KINDS",
    "SCHEMA_VERSION",
    "STATE_OF",
    "Event",
    "LabelStore",
    "default_annotator",
]


@dataclass(frozen=True)
class Event:
    """One event of the label log, as stored.

    Attributes
    ----------
    event_id : int
        Position in the log, from 1, increasing in commit order.
    row_id : int or str
        The catalogue row id, with the type it was given in.
    kind : str
        One of :data:`KINDS`.
    label : str or None
        The class name of a label event, else None.
    annotator, session_id : str
        Who acted, and in which session.
    time : datetime.datetime
        When, in UTC (timezone-aware).
    model_version, score, note : int, float, str or None
        The model that proposed the row, the query strategy's score of the row then,
        and free text from the annotator.
    target_event : int or None
        For an undo or redo: the event it reverses or restores.
    act_id : int or None
        The first event of the act this event belongs to (itself for one-row acts).
    provenance : str
        ``"human"`` or ``"catalogue"``.
    round, strategy, confidence, selection_id, source : optional
        The active-learning round, the query strategy, the annotator's confidence
        (0 to 1), the selection a bulk label labelled, and the file or column an
        imported event came from.
    catalogue_row : int or None
        The row position of ``row_id`` in the store's catalogue, where the appender
        gave it and the store keeps rows (see :attr:`LabelStore.keeps_rows`).
    """

    event_id: int
    row_id: int | str
    kind: str
    label: str | None
    annotator: str
    time: datetime
    session_id: str
    model_version: int | None = None
    score: float | None = None
    note: str | None = None
    target_event: int | None = None
    act_id: int | None = None
    provenance: str = "human"
    round: int | None = None
    strategy: str | None = None
    confidence: float | None = None
    selection_id: str | None = None
    source: str | None = None
    catalogue_row: int | None = None

    @classmethod
    def _from_row(cls, row: Sequence) -> Event:
        """Build an event from a row in ``EVENT_COLUMNS`` order."""
        values = dict(zip(schema.EVENT_COLUMNS, row, strict=True))
        if values.pop("row_id_type") == "int":
            values["row_id"] = int(values["row_id"])
        values["time"] = datetime.fromisoformat(values["time"])
        return cls(**values)


class LabelStore(SQLiteFile):
    """Append-only log of label events in one SQLite file.

    Parameters
    ----------
    path : str or os.PathLike
        The store's file; created when missing (its folder must exist).
        ``":memory:"`` gives a private in-memory store, handy in tests.
    catalogue_fingerprint : str, optional
        Identifies the catalogue the labels belong to. A store created for one
        catalogue refuses to open for another. A store that has none yet takes this one.
    id_column : str, optional
        Name of the catalogue's id column, recorded and checked the same way.
    match_by_id : bool
        Open the store for a catalogue with another fingerprint (a new data release,
        a copy with more columns), matching labels to rows by id. The id column must
        still be the same. The store keeps its first fingerprint.
    readonly : bool
        Open for reading only. A file without write permission bits (``chmod a-w``) is
        opened read-only even when asked otherwise; writes then raise
        :class:`~armillary.errors.ReadOnlyStoreError`.
    classes : sequence of str, optional
        When given, every label must be one of these class names.

    Raises
    ------
    StoreError
        If the file is not an Armillary label store, was written by a newer Armillary,
        or belongs to another catalogue (:class:`~armillary.errors.CatalogueMismatchError`).
        Nothing is written then.

    Notes
    -----
    An older store (version 1, the walking skeleton's, or 2) is upgraded on open, in one
    transaction; opened read-only, it is upgraded in a private in-memory copy instead.
    One connection is shared by every thread; a lock serialises all use of it.

    Appends may give the catalogue row of each id (``row``, ``rows``); the store keeps
    them only when opened with its own ``catalogue_fingerprint`` (:attr:`keeps_rows`),
    so every recorded row is a row of the catalogue of :attr:`catalogue_fingerprint`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        catalogue_fingerprint: str | None = None,
        id_column: str | None = None,
        match_by_id: bool = False,
        readonly: bool = False,
        classes: Collection[str] | None = None,
    ) -> None:
        self.classes = (
            None if classes is None else tuple(check_name("class name", c) for c in classes)
        )
        self._id_type: str | None = None
        self._digests: dict[str, LogDigest] = {}
        self._frames: dict[str, tuple[int, pd.DataFrame]] = {}
        self._lean: dict[str, tuple[int, pd.DataFrame]] = {}
        super().__init__(
            path,
            catalogue_fingerprint=catalogue_fingerprint,
            id_column=id_column,
            match_by_id=match_by_id,
            readonly=readonly,
        )

    # -- writing ---------------------------------------------------------------

    def append(
        self,
        kind: str,
        row_id: int | str,
        label: str | None = None,
        *,
        annotator: str | None = None,
        session_id: str,
        model_version: int | None = None,
        score: float | None = None,
        note: str | None = None,
        round: int | None = None,
        strategy: str | None = None,
        confidence: float | None = None,
        selection_id: str | None = None,
        provenance: str = "human",
        source: str | None = None,
        row: int | None = None,
    ) -> Event:
        """Append one act on one row to the log and commit it to disk.

        Parameters
        ----------
        kind : str
            One of :data:`ACTS`: ``'label'``, ``'unsure'``, ``'skip'``, ``'note'``
            (free text about the row, its state unchanged), ``'test_label'`` (a label
            made in test-set mode: kept out of training and of the pool),
            ``'bulk_label'`` (prefer :meth:`append_many`) or ``'relabel'``. A
            ``'label'`` of a row whose state is a label is recorded as ``'relabel'``.
        row_id : int or str
            Catalogue row id. A store holds ids of one type: the first event fixes it.
        label : str, optional
            The class name; required for label kinds and refused otherwise.
        annotator, session_id : str
            Who acts (default :func:`default_annotator`) and in which session.
        model_version, score, round, strategy : optional
            What proposed the row: the model, its score of the row, the
            active-learning round and the query strategy.
        note, confidence : optional
            Free text, and the annotator's confidence from 0 to 1.
        selection_id, provenance, source : optional
            The selection labelled, ``"human"`` or ``"catalogue"``, and where an
            imported event came from.
        row : int, optional
            The position of ``row_id`` in the catalogue, when the caller knows it: a
            pool on that catalogue then takes it instead of looking the id up. Kept
            only where :attr:`keeps_rows` (the store is open for its own catalogue).

        Returns
        -------
        Event
            The stored event. When this returns, the event is durable. A bad kind,
            label, id or field raises :class:`~armillary.errors.InvalidEventError` (a
            ``ValueError``; an unknown class, ``UnknownClassEventError``), and nothing
            is written.
        """
        kind = check_kind(kind)
        label = check_label(kind, label, self.classes)
        position = check_row(row)
        values = provenance_values(
            (kind,),
            annotator=annotator,
            session_id=session_id,
            provenance=provenance,
            model_version=model_version,
            score=score,
            note=note,
            round=round,
            strategy=strategy,
            confidence=confidence,
            selection_id=selection_id,
            source=source,
        )
        text, id_type = id_text(row_id)
        with self._transaction():
            self._check_id_type(id_type, row_id)
            if kind == "label" and self._state(text, id_type, provenance) == "label":
                kind = "relabel"
            first = self._next_id()
            event = {
                **values,
                "event_id": first,
                "act_id": first,
                "row_id": text,
                "row_id_type": id_type,
                "kind": kind,
                "label": label,
                "time": now(),
                "target_event": None,
                "catalogue_row": position if self._keeps_rows else None,
            }
            ordered = tuple(event[c] for c in schema.EVENT_COLUMNS)
            self._conn.execute(INSERT, ordered)
            self._id_type = id_type
        return Event._from_row(ordered)

    def append_many(
        self,
        kind: str | Sequence[str],
        row_ids: Sequence | np.ndarray,
        labels: str | Sequence[str | None] | np.ndarray | None = None,
        *,
        annotator: str | None = None,
        session_id: str,
        rows: Sequence[int] | np.ndarray | None = None,
        **fields: object,
    ) -> range:
        """Append one act on many rows (a bulk label, an import) in one transaction.

        Parameters
        ----------
        kind : str or sequence of str
            One kind for every row, or one per row. Kinds are stored as given
            (no automatic ``'relabel'``). ``'bulk_label'`` needs ``selection_id``.
        row_ids : sequence or array of int or str
        labels : str, sequence or array, optional
            One class for every row, or one per row (None where the kind takes none).
        rows : sequence or array of int, optional
            The catalogue position of each id, as for :meth:`append`'s ``row``.
        annotator, session_id, **fields
            As for :meth:`append` (``model_version, score, note, round, strategy,
            confidence, selection_id, provenance, source``), shared by every row.

        Returns
        -------
        range
            The event ids written, in the order of ``row_ids``; all one act, so one
            :meth:`undo` reverses them all. Empty when ``row_ids`` is.
        """
        texts, id_type = ids_text(row_ids)
        n = len(texts)
        kinds = per_row(kind, n, "kind")
        per_label = per_row(labels, n, "labels")
        check_labels(kinds, per_label, self.classes)
        positions = check_rows(rows, n)
        values = provenance_values(
            set(kinds.tolist()), annotator=annotator, session_id=session_id, **fields
        )
        if n == 0:
            return range(0)
        with self._transaction():
            self._check_id_type(id_type, texts[0])
            first = self._next_id()
            kept = positions if self._keeps_rows else None
            insert_many(self._conn, first, id_type, texts, kinds, per_label, values, kept)
            self._id_type = id_type
        return range(first, first + n)

    def undo(self, *, annotator: str | None = None, session_id: str) -> Event | None:
        """Undo the annotator's latest act in a session that is not undone yet.

        Returns
        -------
        Event or None
            The (first event of the) act that was reversed, or None when there is
            nothing left to undo (then nothing is written). Calling again walks further
            back; a bulk act is undone whole.
        """
        annotator = check_name("annotator", annotator)
        session_id = check_name("session_id", session_id)
        with self._transaction():
            for act_id, _, undone in self._conn.execute(
                schema.ACTOR_ACTS_SQL, (session_id, annotator)
            ):
                if not undone:
                    return self._reverse(act_id, "undo", annotator, session_id)
        return None

    def redo(self, *, annotator: str | None = None, session_id: str) -> Event | None:
        """Restore the act that the annotator's latest undo in this session reversed.

        Redo is possible until the annotator acts again in that session (as in an
        editor); successive redos walk forward through successive undos.

        Returns
        -------
        Event or None
            The (first event of the) act restored, or None when there is nothing to
            redo (then nothing is written).
        """
        annotator = check_name("annotator", annotator)
        session_id = check_name("session_id", session_id)
        with self._transaction():
            stack: list[int] = []
            trail = self._conn.execute(
                schema.ACTOR_TRAIL_SQL, (session_id, annotator, session_id, annotator)
            )
            for kind, _, target in trail:
                if kind == "undo":
                    stack.append(target)
                elif stack:
                    stack.pop()
            if stack:
                return self._reverse(stack[-1], "redo", annotator, session_id)
        return None

    def _reverse(self, act_id: int, kind: str, annotator: str, session_id: str) -> Event:
        """Undo or redo act ``act_id`` (see :func:`~armillary._store_write.reverse_act`);
        inside a transaction. Returns the reversed act's first event."""
        first = self._next_id()
        return Event._from_row(reverse_act(self._conn, act_id, first, kind, annotator, session_id))

    def _next_id(self) -> int:
        """The id of the next event; inside a write transaction (one writer at a time)."""
        return self._conn.execute("SELECT COALESCE(MAX(event_id), 0) + 1 FROM events").fetchone()[0]

    def _state(self, text: str, id_type: str, provenance: str) -> str | None:
        """The state of one row now (label, unsure, skip, test or None)."""
        rows = self._conn.execute(
            f"{schema.SELECT_EVENTS} WHERE row_id = ? AND row_id_type = ? ORDER BY event_id",
            (text, id_type),
        ).fetchall()
        _, live = fold([r for r in rows if r[6] == provenance or r[4] in ("undo", "redo")])
        return None if live is None else STATE_OF[live[4]]

    def _check_id_type(self, id_type: str, row_id: object) -> None:
        """Refuse an id of another type than the store's; call inside a transaction."""
        if self._id_type is None:
            first = self._conn.execute(
                "SELECT row_id_type FROM events ORDER BY event_id LIMIT 1"
            ).fetchone()
            self._id_type = first[0] if first else None
        if self._id_type not in (None, id_type):
            msg = (
                f"row id {row_id!r} is a {id_type}, but the ids in label store "
                f"{self.path} are {self._id_type}s; convert it"
            )
            raise InvalidEventError(msg)

    # -- reading ---------------------------------------------------------------

    def current(
        self, provenance: str = "human", columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Return each row's state now: its latest state-setting act not undone.

        Parameters
        ----------
        provenance : {'human', 'catalogue'}
            Human acts (made here or imported from a labelling tool), or the
            catalogue's own labels; the two never mix.
        columns : sequence of str, optional
            Only these columns. ``id, kind, label, event_id, event_kind`` alone come
            from memory without reading whole events: the fast path for masks.

        Returns
        -------
        pandas.DataFrame
            One row per catalogue id with a state, ordered by ``event_id``. ``kind`` is
            the state (``label``, ``unsure``, ``skip`` or ``test``) and ``event_kind``
            the act that set it; then the provenance columns (see :class:`Event`).
            Undoing an act brings back the row's act before it, if any.
        """
        if provenance not in schema.PROVENANCES:
            msg = f"provenance must be one of {list(schema.PROVENANCES)}, not {provenance!r}"
            raise ValueError(msg)
        wanted = list(CURRENT_COLUMNS if columns is None else columns)
        unknown = set(wanted) - set(CURRENT_COLUMNS)
        if unknown:
            msg = f"unknown columns {sorted(unknown)}; current() has {CURRENT_COLUMNS}"
            raise ValueError(msg)
        with self.snapshot():
            digest = self._digest(provenance)
            if set(wanted) <= set(LEAN_COLUMNS):
                hit = self._lean.get(provenance)
                if hit is None or hit[0] != digest.last:
                    hit = self._lean[provenance] = (digest.last, lean_frame(digest))
                return hit[1][wanted]
            return self._full_frame(provenance, digest)[wanted].copy()

    def _in_force(
        self, provenance: str = "human"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray, list[str], np.ndarray]:
        """:meth:`current`'s lean columns as codes, for :class:`~armillary.pool.Pool`.

        Returns event ids and ids (as in ``current``), the states as codes into a list
        of state names, the labels as codes into a list of label names (-1: none), and
        the catalogue row recorded with each event (int64, -1: none; rows of the
        catalogue of :attr:`catalogue_fingerprint`). Private and optional: a caller falls
        back to ``current`` where it is missing.
        """
        with self.snapshot():
            digest = self._digest(provenance)
            event_id, row, kind, label, _, position = digest.arrays
            chosen = digest.in_force()
            return (
                event_id[chosen],
                row[chosen],
                kind[chosen],
                [STATE_OF.get(k, "") for k in schema.KINDS],
                label[chosen],
                list(digest.label_names),
                position[chosen],
            )

    def _digest(self, provenance: str) -> LogDigest:
        """The provenance's digest, brought up to the log's end; inside a snapshot."""
        digest = self._digests.get(provenance)
        if digest is None:
            first = self._conn.execute(
                "SELECT row_id_type FROM events ORDER BY event_id LIMIT 1"
            ).fetchone()
            if first is None:
                return LogDigest(provenance, int_ids=True)  # empty log: nothing to keep
            digest = self._digests[provenance] = LogDigest(provenance, first[0] == "int")
        digest.update(self._conn, self.state_version)
        return digest

    def _full_frame(self, provenance: str, digest: LogDigest) -> pd.DataFrame:
        """current() with every column: the last frame, with only what changed re-read."""
        hit = self._frames.get(provenance)
        if hit is not None and hit[0] == digest.last:
            return hit[1]
        want = digest.arrays[0][digest.in_force()]
        old = hit[1] if hit is not None else frame([], CURRENT_COLUMNS, state=True)
        kept = old["event_id"].isin(want).to_numpy()
        missing = want[~np.isin(want, old["event_id"].to_numpy())]
        rows = self._conn.execute(
            f"{schema.SELECT_EVENTS} WHERE event_id IN (SELECT value FROM json_each(?))",
            (json.dumps(missing.tolist()),),
        ).fetchall()
        out = stack(old if kept.all() else old[kept], frame(rows, CURRENT_COLUMNS, state=True))
        if not out["event_id"].is_monotonic_increasing:  # an undo brought back an old act
            out = out.sort_values("event_id", ignore_index=True)
        self._frames[provenance] = (digest.last, out)
        return out

    def labels(self, provenance: str = "human") -> pd.DataFrame:
        """Return :meth:`current` restricted to rows whose state is a label (the
        training labels; test-set labels are in :meth:`test_set`)."""
        cur = self.current(provenance)
        return cur[cur["kind"] == "label"].reset_index(drop=True)

    def test_set(self) -> pd.DataFrame:
        """Return the curated test set: rows whose state is a test-set label."""
        cur = self.current("human")
        return cur[cur["kind"] == "test"].reset_index(drop=True)

    def events(
        self, row_id: int | str | None = None, *, provenance: str | None = None
    ) -> pd.DataFrame:
        """Return the raw log, in order, optionally only one row's or one provenance's.

        Returns
        -------
        pandas.DataFrame
            Columns ``id, kind, label, annotator, time, session_id, model_version,
            score, note, event_id, target_event, act_id, provenance, round, strategy,
            confidence, selection_id, source, catalogue_row``; ``kind`` is the event's
            own kind, ``catalogue_row`` the row recorded with it (see :class:`Event`).
        """
        clauses, params = [], []
        if row_id is not None:
            text, id_type = id_text(row_id)
            clauses.append("row_id = ? AND row_id_type = ?")
            params += [text, id_type]
        if provenance is not None:
            clauses.append("provenance = ?")
            params.append(provenance)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"{schema.SELECT_EVENTS}{where} ORDER BY event_id", tuple(params))
        return frame(rows, EVENTS_COLUMNS)

    def history(self, row_id: int | str) -> pd.DataFrame:
        """Return one row's whole story: every event about it, oldest first.

        Returns
        -------
        pandas.DataFrame
            The columns of :meth:`events`, plus ``undone`` (whether that act is undone
            now; False for undo and redo events themselves).
        """
        text, id_type = id_text(row_id)
        rows = self._query(
            f"{schema.SELECT_EVENTS} WHERE row_id = ? AND row_id_type = ? ORDER BY event_id",
            (text, id_type),
        )
        undone, _ = fold(rows)
        out = frame(rows, EVENTS_COLUMNS)
        out["undone"] = np.array([undone.get(r[0], False) for r in rows], dtype=bool)
        return out
