"""The label store: an append-only log of labelling events in one SQLite file.

Every act of an annotator (a label, "unsure", a skip, an undo) is one row of the
``events`` table. Rows are only ever inserted, never updated or deleted (triggers in
the database refuse both), so the full history is always there. The labels in force
now are a view of that log: for each catalogue row, its latest act that has not been
undone (see :meth:`LabelStore.current`).

The store is the single source of truth for labels. A label is acknowledged to the
user only after :meth:`LabelStore.append` returns, and by then it is committed and
synced to disk.
"""

from __future__ import annotations

import getpass
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from armillary.errors import InvalidEventError, StoreError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

__all__ = ["ACTS", "KINDS", "SCHEMA_VERSION", "Event", "LabelStore"]

#: Version of the on-disk layout this module reads and writes.
SCHEMA_VERSION = 1
#: Kinds of event that set a row's state; ``undo`` reverses one of them.
ACTS = ("label", "unsure", "skip")
#: Every kind of event in the log.
KINDS = (*ACTS, "undo")

_EVENT_COLUMNS = ("event_id", "row_id", "row_id_type", "kind", "label", "annotator", "time",
                  "session_id", "model_version", "score", "note", "target_event")
_CURRENT_COLUMNS = ["id", "kind", "label", "annotator", "time", "session_id", "model_version",
                    "score", "note", "event_id"]
_EVENTS_FRAME_COLUMNS = [*_CURRENT_COLUMNS, "target_event"]

_APPEND_ONLY = "BEGIN SELECT RAISE(ABORT, 'armillary label events are append-only'); END"
# One statement per item: sqlite3 runs one at a time (executescript would commit).
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE events (
        event_id      INTEGER PRIMARY KEY AUTOINCREMENT,
        row_id        TEXT NOT NULL,
        row_id_type   TEXT NOT NULL CHECK (row_id_type IN ('int', 'str')),
        kind          TEXT NOT NULL CHECK (kind IN ('label', 'unsure', 'skip', 'undo')),
        label         TEXT CHECK ((kind = 'label') = (label IS NOT NULL)),
        annotator     TEXT NOT NULL,
        time          TEXT NOT NULL,
        session_id    TEXT NOT NULL,
        model_version INTEGER,
        score         REAL,
        note          TEXT,
        target_event  INTEGER REFERENCES events (event_id)
                      CHECK ((kind = 'undo') = (target_event IS NOT NULL))
    )""",
    # Covers the GROUP BY of current(): about 1.6 times faster than (row_id, event_id).
    "CREATE INDEX events_row ON events (row_id, kind, event_id)",
    "CREATE INDEX events_target ON events (target_event) WHERE target_event IS NOT NULL",
    "CREATE INDEX events_actor ON events (session_id, annotator, event_id)",
    f"CREATE TRIGGER events_no_update BEFORE UPDATE ON events {_APPEND_ONLY}",
    f"CREATE TRIGGER events_no_delete BEFORE DELETE ON events {_APPEND_ONLY}",
)

# Acts that no 'undo' event targets.
_LIVE_ACTS = """
    SELECT * FROM events AS e
    WHERE e.kind != 'undo'
      AND NOT EXISTS (SELECT 1 FROM events AS u WHERE u.target_event = e.event_id)
"""
# For each row, its latest live act. (An IN list over the primary key is about twice
# as fast here as a CTE joined on event_id.)
_CURRENT_SQL = f"""
    SELECT {", ".join(_EVENT_COLUMNS)} FROM events WHERE event_id IN (
        SELECT MAX(e.event_id) FROM ({_LIVE_ACTS}) AS e GROUP BY e.row_id
    ) ORDER BY event_id
"""
_LAST_ACT_SQL = f"""
    {_LIVE_ACTS} AND e.session_id = ? AND e.annotator = ?
    ORDER BY e.event_id DESC LIMIT 1
"""


@dataclass(frozen=True)
class Event:
    """One event of the label log, as stored.

    Attributes
    ----------
    event_id : int
        Position in the log, from 1, increasing.
    row_id : int or str
        The catalogue row id, with the type it was given in.
    kind : str
        One of ``'label'``, ``'unsure'``, ``'skip'``, ``'undo'``.
    label : str or None
        The class name for a ``'label'`` event, else None.
    annotator, session_id : str
        Who acted, and in which session.
    time : datetime.datetime
        When, in UTC (timezone-aware).
    model_version, score, note : int, float, str or None
        The model that proposed the row, the query strategy's score of the row then,
        and free text from the annotator; None when not given.
    target_event : int or None
        For ``'undo'``: the ``event_id`` of the event it reverses.
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

    @classmethod
    def _from_row(cls, row: tuple) -> Event:
        """Build an event from a row selected in ``_EVENT_COLUMNS`` order."""
        values = dict(zip(_EVENT_COLUMNS, row, strict=True))
        if values.pop("row_id_type") == "int":
            values["row_id"] = int(values["row_id"])
        values["time"] = datetime.fromisoformat(values["time"])
        return cls(**values)


def default_annotator() -> str:
    """Return the annotator name used when none is given.

    Returns
    -------
    str
        ``$JUPYTERHUB_USER`` when set (in JupyterHub containers the login name is
        often ``jovyan`` for everyone), else the login name from :func:`getpass.getuser`.
    """
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def _now() -> str:
    """Return the current UTC time as ISO-8601 with microseconds and ``+00:00``."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class LabelStore:
    """Append-only log of label events in one SQLite file.

    Parameters
    ----------
    path : str or os.PathLike
        The store's file; created when missing (its folder must exist).
        ``":memory:"`` gives a private in-memory store, handy in tests.
    catalogue_fingerprint : str, optional
        Identifies the catalogue the labels belong to. A store created for one
        catalogue refuses to open for another. A store that has none yet takes
        this one.
    id_column : str, optional
        Name of the catalogue's id column, recorded the same way.

    Attributes
    ----------
    path : pathlib.Path or str
        The file, or ``":memory:"``.

    Raises
    ------
    StoreError
        If the file is not an Armillary label store, was written by a newer
        Armillary, or belongs to another catalogue. Nothing is written then.

    Notes
    -----
    One connection is shared by every thread (the kernel thread writes, background
    workers read); a lock serialises all use of it.
    """

    def __init__(self, path: str | os.PathLike[str], *,
                 catalogue_fingerprint: str | None = None, id_column: str | None = None,
                 ) -> None:
        memory = os.fspath(path) == ":memory:"
        self.path: Path | str = ":memory:" if memory else Path(path)
        self._lock = threading.RLock()
        self._id_type: str | None = None
        self._current: tuple[int, pd.DataFrame] | None = None
        self._conn = self._connect()
        try:
            self._open(catalogue_fingerprint, id_column, memory=memory)
        except BaseException as exc:
            self._conn.close()
            if isinstance(exc, sqlite3.Error):
                msg = f"cannot open label store {self.path}: {exc}"
                raise StoreError(msg) from exc
            raise

    # -- opening ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """Open the SQLite connection (no reads or writes yet)."""
        try:
            # isolation_level=None: no implicit transactions; we BEGIN/COMMIT ourselves.
            return sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=30.0)
        except sqlite3.Error as exc:
            msg = (f"cannot open label store {self.path}: {exc}; check that its folder "
                   "exists and is writable")
            raise StoreError(msg) from exc

    def _open(self, fingerprint: str | None, id_column: str | None, *,
              memory: bool) -> None:
        """Check an existing store, or create a new one, then set durability."""
        tables = self._tables()
        if tables and not {"meta", "events"} <= tables:
            msg = (f"{self.path} is not an Armillary label store (it is an SQLite "
                   f"database with tables {sorted(tables)}); pass another store path")
            raise StoreError(msg)
        blanks = self._check_meta(fingerprint, id_column) if tables else []
        if not memory:
            # WAL: readers do not block the writer, and a commit is one append.
            self._conn.execute("PRAGMA journal_mode=WAL")
        # synchronous=FULL: every commit is fsynced before it returns, so a label that
        # was acknowledged to the user survives a power cut, not only a crash of the
        # process (in WAL mode, NORMAL could lose the last commits on power loss).
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        if not tables:
            self._create(fingerprint, id_column)
        elif blanks:  # a store without a catalogue yet takes this one's
            with self._transaction():
                self._conn.executemany(
                    "INSERT OR REPLACE INTO meta (value, key) VALUES (?, ?)", blanks)

    def _tables(self) -> set[str]:
        """Return the names of the tables in the file, refusing non-SQLite files."""
        try:
            rows = self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        except sqlite3.DatabaseError as exc:
            msg = (f"{self.path} is not an Armillary label store (not an SQLite "
                   f"database: {exc}); pass another store path")
            raise StoreError(msg) from exc
        return {name for (name,) in rows} - {"sqlite_sequence"}

    def _create(self, fingerprint: str | None, id_column: str | None) -> None:
        """Create the tables and the meta rows in one transaction."""
        with self._transaction():
            if self._tables():  # another process created it meanwhile
                return
            for statement in _SCHEMA:
                self._conn.execute(statement)
            self._conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("created", _now()),
                 ("catalogue_fingerprint", fingerprint), ("id_column", id_column)],
            )

    def _check_meta(self, fingerprint: str | None,
                    id_column: str | None) -> list[tuple[str, str]]:
        """Refuse stores from a newer Armillary or another catalogue.

        Returns
        -------
        list of (value, key)
            The given meta values that the store lacks.
        """
        meta = self.meta
        try:
            version = int(meta.get("schema_version") or "")
        except ValueError:
            msg = (f"{self.path} is not an Armillary label store (its schema_version "
                   f"is {meta.get('schema_version')!r}); pass another store path")
            raise StoreError(msg) from None
        if version > SCHEMA_VERSION:
            msg = (f"label store {self.path} has schema version {version}, newer than "
                   f"this Armillary reads ({SCHEMA_VERSION}); upgrade Armillary "
                   "(pip install -U armillary) to open it")
            raise StoreError(msg)
        given = {"catalogue_fingerprint": fingerprint, "id_column": id_column}
        for key, value in given.items():
            stored = meta.get(key)
            if value is not None and stored is not None and value != stored:
                msg = (f"label store {self.path} belongs to a catalogue with {key} "
                       f"{stored!r}, not {value!r}; pass another store path for "
                       "this catalogue")
                raise StoreError(msg)
        return [(v, k) for k, v in given.items() if v is not None and meta.get(k) is None]

    # -- plumbing --------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Hold the lock and one write transaction; SQLite failures become StoreError."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    if self._conn.in_transaction:  # SQLite may have rolled back itself
                        self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                msg = (f"cannot write label store {self.path}: {exc}; nothing was saved. "
                       "Check that the disk has space and the file is writable")
                raise StoreError(msg) from exc

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run a read under the lock and return all rows."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    @property
    def meta(self) -> dict[str, str | None]:
        """The store's metadata: schema_version, created, catalogue_fingerprint, id_column."""
        return dict(self._query("SELECT key, value FROM meta"))

    @property
    def n_events(self) -> int:
        """Number of events in the log; it changes exactly when the log does."""
        return self._query("SELECT COUNT(*) FROM events")[0][0]

    @property
    def state_version(self) -> int:
        """A number that changes whenever the log changes (now the same as n_events)."""
        return self.n_events

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
    ) -> Event:
        """Append one act to the log and commit it to disk.

        Parameters
        ----------
        kind : {'label', 'unsure', 'skip'}
            What the annotator did. Undo through :meth:`undo`.
        row_id : int or str
            Catalogue row id. A store holds ids of one type: the first event fixes it.
        label : str, optional
            The class name; required for ``'label'`` and refused otherwise.
        annotator : str, optional
            Defaults to :func:`default_annotator`.
        session_id : str
            The labelling session.
        model_version, score, note : optional
            Provenance: the model that proposed the row, its score, free text.

        Returns
        -------
        Event
            The stored event. When this returns, the event is durable.

        Raises
        ------
        InvalidEventError
            On a bad kind, label, id or session (a ``ValueError``). Nothing is written.
        """
        values = _act_values(kind, label, annotator=annotator, session_id=session_id,
                             model_version=model_version, score=score, note=note)
        with self._transaction():
            return self._insert(*self._check_id(row_id), values)

    def undo(self, *, annotator: str | None = None, session_id: str) -> Event | None:
        """Undo the annotator's latest act in a session that is not undone yet.

        Parameters
        ----------
        annotator : str, optional
            Defaults to :func:`default_annotator`.
        session_id : str
            Only acts of this session are undone.

        Returns
        -------
        Event or None
            The act that was reversed, or None when there is nothing left to undo
            (then nothing is written). Calling again walks further back.
        """
        annotator = _check_name("annotator", annotator)
        session_id = _check_name("session_id", session_id)
        with self._transaction():
            row = self._conn.execute(_LAST_ACT_SQL, (session_id, annotator)).fetchone()
            if row is None:
                return None
            target = Event._from_row(row)
            self._insert(row[1], row[2], {
                "kind": "undo", "label": None, "target_event": target.event_id,
                "annotator": annotator, "session_id": session_id})
        return target

    def _check_id(self, row_id: object) -> tuple[str, str]:
        """Return the id as text and its type name; call inside a transaction."""
        if isinstance(row_id, str):
            id_type = "str"
        elif isinstance(row_id, Integral) and not isinstance(row_id, bool):
            id_type, row_id = "int", int(row_id)
        else:
            msg = f"row id {row_id!r} must be an int or a str, not {type(row_id).__name__}"
            raise InvalidEventError(msg)
        if self._id_type is None:
            first = self._conn.execute(
                "SELECT row_id_type FROM events ORDER BY event_id LIMIT 1").fetchone()
            self._id_type = first[0] if first else None
        if self._id_type not in (None, id_type):
            msg = (f"row id {row_id!r} is a {id_type}, but the ids in label store "
                   f"{self.path} are {self._id_type}s; convert it")
            raise InvalidEventError(msg)
        return str(row_id), id_type

    def _insert(self, id_text: str, id_type: str, values: dict) -> Event:
        """Insert one event inside the caller's transaction and return it."""
        row = {
            "row_id": id_text, "row_id_type": id_type, "time": _now(),
            "model_version": None, "score": None, "note": None, "target_event": None,
            **values,
        }
        names = ", ".join(row)
        marks = ", ".join("?" * len(row))
        cursor = self._conn.execute(
            f"INSERT INTO events ({names}) VALUES ({marks})", tuple(row.values()))
        self._id_type = id_type
        row["event_id"] = cursor.lastrowid
        return Event._from_row(tuple(row[c] for c in _EVENT_COLUMNS))

    # -- reading ---------------------------------------------------------------

    def current(self) -> pd.DataFrame:
        """Return each row's state now: its latest act that is not undone.

        Returns
        -------
        pandas.DataFrame
            One row per catalogue id whose latest live act is a label, unsure or
            skip, with columns ``id, kind, label, annotator, time, session_id,
            model_version, score, note, event_id``, ordered by ``event_id``.
            Undoing an act brings back the row's act before it, if any.
        """
        with self._lock:
            # The log only grows, so its length names its state: reuse the last
            # frame while no event (from this or another process) was added.
            n_events = self.n_events
            if self._current is None or self._current[0] != n_events:
                rows = self._conn.execute(_CURRENT_SQL).fetchall()
                self._current = (n_events, _frame(rows, _CURRENT_COLUMNS))
            return self._current[1].copy()

    def labels(self) -> pd.DataFrame:
        """Return :meth:`current` restricted to rows whose state is a label."""
        cur = self.current()
        return cur[cur["kind"] == "label"].reset_index(drop=True)

    def events(self, row_id: int | str | None = None) -> pd.DataFrame:
        """Return the raw log, in order, optionally only one row's history.

        Parameters
        ----------
        row_id : int or str, optional
            Only this row's events (its undo events included).

        Returns
        -------
        pandas.DataFrame
            Columns as :meth:`current` plus ``target_event``.
        """
        sql = f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events"
        params: tuple = ()
        if row_id is not None:
            id_type = "int" if isinstance(row_id, Integral) else "str"
            sql += " WHERE row_id = ? AND row_id_type = ?"
            params = (str(row_id), id_type)
        return _frame(self._query(sql + " ORDER BY event_id", params),
                      _EVENTS_FRAME_COLUMNS)

    # -- closing ---------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (every event is already committed)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStore({os.fspath(self.path)!r})"


def _act_values(kind: str, label: str | None, *, annotator: str | None, session_id: str,
                model_version: int | None, score: float | None,
                note: str | None) -> dict[str, object]:
    """Check an act's fields and return the columns to insert (all but the id)."""
    if kind not in ACTS:
        hint = "; call LabelStore.undo() to undo" if kind == "undo" else ""
        msg = f"unknown event kind {kind!r}; valid kinds are {list(ACTS)}{hint}"
        raise InvalidEventError(msg)
    if (label is None) == (kind == "label"):
        msg = (f"a {kind!r} event needs a class name as label" if kind == "label"
               else f"a {kind!r} event takes no label (got {label!r})")
        raise InvalidEventError(msg)
    if label is not None and (not isinstance(label, str) or not label):
        msg = f"label must be a non-empty string, not {label!r}"
        raise InvalidEventError(msg)
    if score is not None and not isinstance(score, Real):
        msg = f"score must be a number or None, not {score!r}"
        raise InvalidEventError(msg)
    if note is not None and not isinstance(note, str):
        msg = f"note must be a string or None, not {note!r}"
        raise InvalidEventError(msg)
    return {
        "kind": kind, "label": label, "model_version": _opt_int(model_version),
        "score": None if score is None else float(score), "note": note,
        "annotator": _check_name("annotator", annotator),
        "session_id": _check_name("session_id", session_id),
    }


def _check_name(what: str, value: str | None) -> str:
    """Return a non-empty string name, the default annotator for a missing one."""
    if value is None and what == "annotator":
        value = default_annotator()
    if not isinstance(value, str) or not value:
        msg = f"{what} must be a non-empty string, not {value!r}"
        raise InvalidEventError(msg)
    return value


def _opt_int(value: object) -> int | None:
    """Return None or an int, refusing anything else."""
    if value is None or (isinstance(value, Integral) and not isinstance(value, bool)):
        return value if value is None else int(value)
    msg = f"model_version must be an int or None, not {value!r}"
    raise InvalidEventError(msg)


def _frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    """Build a typed frame from rows selected in ``_EVENT_COLUMNS`` order."""
    columns_of_rows = zip(*rows, strict=True) if rows else [()] * len(_EVENT_COLUMNS)
    cols = dict(zip(_EVENT_COLUMNS, columns_of_rows, strict=True))

    def text(name: str) -> np.ndarray:
        return np.array(cols[name], dtype=object)

    out = {
        "id": _ids(cols["row_id"], cols["row_id_type"]),
        "kind": text("kind"),
        "label": text("label"),
        "annotator": text("annotator"),
        "time": pd.to_datetime(pd.Series(cols["time"], dtype=object), utc=True,
                               format="ISO8601"),
        "session_id": text("session_id"),
        "model_version": pd.array(cols["model_version"], dtype="Int64"),
        "score": np.array(cols["score"], dtype=np.float64),
        "note": text("note"),
        "event_id": np.array(cols["event_id"], dtype=np.int64),
        "target_event": pd.array(cols["target_event"], dtype="Int64"),
    }
    return pd.DataFrame({name: out[name] for name in columns})


def _ids(text: tuple[str, ...], types: tuple[str, ...]) -> np.ndarray:
    """Give ids back with their type: int64 when all are ints that fit, else objects."""
    kinds = set(types)
    if kinds == {"int"}:
        try:
            return np.fromiter(map(int, text), dtype=np.int64, count=len(text))
        except OverflowError:  # ids beyond int64 stay Python ints
            return np.array([int(t) for t in text], dtype=object)
    if kinds <= {"str"}:
        return np.array(text, dtype=object)
    return np.array([int(t) if k == "int" else t for t, k in zip(text, types, strict=True)],
                    dtype=object)
