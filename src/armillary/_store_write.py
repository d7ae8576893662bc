"""The label store's multi-row writes: an act on many rows, and an undo or redo of an act.

Both run inside the caller's write transaction (:meth:`LabelStore._transaction`), on its
connection, and only insert: the log is append-only. Values reach here checked (see
:mod:`armillary._store_values`).
"""

from __future__ import annotations

import sqlite3

import numpy as np

from armillary import _store_schema as schema
from armillary._store_values import now

INSERT = (
    f"INSERT INTO events ({', '.join(schema.EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(schema.EVENT_COLUMNS))})"
)
"""One whole event, its values in :data:`~armillary._store_schema.EVENT_COLUMNS` order."""

_AT = {name: k for k, name in enumerate(schema.EVENT_COLUMNS)}


def insert_many(
    conn: sqlite3.Connection,
    first: int,
    id_type: str,
    texts: list[str],
    kinds: np.ndarray,
    labels: np.ndarray,
    values: dict[str, object],
    rows: np.ndarray | None,
) -> None:
    """Insert events ``first, first+1, ...`` of one act on the rows ``texts``.

    The per-row values go through a temporary table and the shared ones (``values``) are
    bound once: about twice as fast as an ``executemany`` of whole events.
    """
    big = len(texts) > 100_000  # room for the id index of a big import, meanwhile
    if big:
        conn.execute("PRAGMA cache_size=-262144")
    try:
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staged (k INTEGER PRIMARY KEY, "
            "row_id TEXT, kind TEXT, label TEXT, catalogue_row INTEGER)"
        )
        staged = [range(len(texts)), texts, kinds.tolist(), labels.tolist()]
        columns = "k, row_id, kind, label"
        if rows is not None:
            staged.append(rows.tolist())
            columns += ", catalogue_row"
        conn.executemany(
            f"INSERT INTO temp.staged ({columns}) VALUES ({', '.join('?' * len(staged))})",
            zip(*staged, strict=True),
        )
        shared = {**values, "act_id": first, "row_id_type": id_type, "time": now()}
        names = [c for c in schema.EVENT_COLUMNS if c in shared]
        conn.execute(
            "INSERT INTO events (event_id, row_id, kind, label, catalogue_row, "
            f"{', '.join(names)}) SELECT ? + k, row_id, kind, label, catalogue_row, "
            f"{', '.join('?' * len(names))} "
            "FROM temp.staged ORDER BY k",
            (first, *(shared[c] for c in names)),
        )
        conn.execute("DELETE FROM temp.staged")
    finally:
        if big:
            conn.execute("PRAGMA cache_size=-65536")


def reverse_act(
    conn: sqlite3.Connection,
    act_id: int,
    first: int,
    kind: str,
    annotator: str,
    session_id: str,
) -> tuple:
    """Write an undo or redo (``kind``) of every event of act ``act_id``.

    The new events are ``first, first+1, ...``, one act. Each names the event it reverses
    (``target_event``) and keeps its id, id type, provenance and catalogue row, so that a
    log written with rows has them on every event: the digest reads them at once. Returns
    the reversed act's first event, as a row of ``SELECT_EVENTS``.
    """
    events = []
    # An act's events are consecutive (one writer, one transaction).
    for row in conn.execute(
        f"{schema.SELECT_EVENTS} WHERE event_id >= ? ORDER BY event_id", (act_id,)
    ):
        if row[_AT["act_id"]] != act_id:
            break
        events.append(row)
    time = now()
    kept = ("row_id", "row_id_type", "provenance", "catalogue_row")
    written = []
    for k, event in enumerate(events):
        values = dict.fromkeys(schema.EVENT_COLUMNS)
        values.update({c: event[_AT[c]] for c in kept})
        values.update(
            event_id=first + k,
            act_id=first,
            kind=kind,
            annotator=annotator,
            time=time,
            session_id=session_id,
            target_event=event[_AT["event_id"]],
        )
        written.append(tuple(values[c] for c in schema.EVENT_COLUMNS))
    conn.executemany(INSERT, written)
    return events[0]
