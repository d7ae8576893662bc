"""The on-disk layout of the SQLite label store, its SQL, and its migrations.

Kept apart from :mod:`armillary.store` so that the class there reads as the store's
behaviour, and so that a second backend (PostgreSQL) has one file of SQLite specifics to
translate. Everything here is private to the store.

Schema history
--------------
1. The walking skeleton: kinds ``label, unsure, skip, undo``; provenance columns
   ``annotator, time, session_id, model_version, score, note``.
2. Adds the kinds ``relabel, note, bulk_label, test_label, redo``, and the columns
   ``act_id`` (the event that opened the act: a bulk label or its undo is one act of many
   events), ``provenance`` (``human`` or ``catalogue``), ``round``, ``strategy``,
   ``confidence``, ``selection_id`` and ``source``. A version-1 file is rebuilt into the
   new table in one transaction (event ids, times and texts kept as they were).
3. Adds the column ``catalogue_row``: the catalogue row position of the event's id, as
   the appender knew it (NULL where it did not, and in every older event), so that a
   pool on the same catalogue need not look the ids up (see :mod:`armillary.pool`). A
   version-2 file gains the column in place (``ALTER TABLE ... ADD COLUMN``: no event is
   rewritten); a version-1 file is rebuilt as above, then gains it.
"""

from __future__ import annotations

import sqlite3

#: Version of the on-disk layout this module reads and writes.
SCHEMA_VERSION = 3

#: The state an act puts its row in; acts missing here (notes) leave the state alone.
STATE_OF = {
    "label": "label",
    "relabel": "label",
    "bulk_label": "label",
    "test_label": "test",
    "unsure": "unsure",
    "skip": "skip",
}
#: Kinds of event that an annotator appends (an undo or a redo is asked for by name).
ACTS = ("label", "relabel", "unsure", "skip", "note", "bulk_label", "test_label")
#: Every kind of event in the log.
KINDS = (*ACTS, "undo", "redo")
#: Kinds that carry a class name.
LABEL_KINDS = ("label", "relabel", "bulk_label", "test_label")
#: Where a label comes from: a person (in Armillary or imported), or the catalogue itself.
PROVENANCES = ("human", "catalogue")

#: Columns of the events table, in the order every query selects them.
EVENT_COLUMNS = (
    "event_id",
    "act_id",
    "row_id",
    "row_id_type",
    "kind",
    "label",
    "provenance",
    "annotator",
    "time",
    "session_id",
    "round",
    "strategy",
    "model_version",
    "score",
    "confidence",
    "note",
    "selection_id",
    "source",
    "target_event",
    "catalogue_row",
)
SELECT_EVENTS = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events"


def _quoted(names: tuple[str, ...]) -> str:
    return ", ".join(f"'{n}'" for n in names)


_APPEND_ONLY = "BEGIN SELECT RAISE(ABORT, 'armillary label events are append-only'); END"
_EVENTS_V2 = f"""CREATE TABLE events (
    event_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    act_id        INTEGER NOT NULL,
    row_id        TEXT NOT NULL,
    row_id_type   TEXT NOT NULL CHECK (row_id_type IN ('int', 'str')),
    kind          TEXT NOT NULL CHECK (kind IN ({_quoted(KINDS)})),
    label         TEXT CHECK ((kind IN ({_quoted(LABEL_KINDS)})) = (label IS NOT NULL)),
    provenance    TEXT NOT NULL DEFAULT 'human'
                  CHECK (provenance IN ({_quoted(PROVENANCES)})),
    annotator     TEXT NOT NULL,
    time          TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    round         INTEGER,
    strategy      TEXT,
    model_version INTEGER,
    score         REAL,
    confidence    REAL CHECK (confidence IS NULL OR confidence BETWEEN 0 AND 1),
    note          TEXT CHECK (kind != 'note' OR note IS NOT NULL),
    selection_id  TEXT CHECK (kind != 'bulk_label' OR selection_id IS NOT NULL),
    source        TEXT,
    target_event  INTEGER REFERENCES events (event_id)
                  CHECK ((kind IN ('undo', 'redo')) = (target_event IS NOT NULL))
)"""
# Version 3's column, last in the table: where ALTER TABLE puts it in an upgraded file.
_CATALOGUE_ROW = "catalogue_row INTEGER CHECK (catalogue_row IS NULL OR catalogue_row >= 0)"
_EVENTS_V3 = _EVENTS_V2.removesuffix("\n)") + f",\n    {_CATALOGUE_ROW}\n)"
# One statement per item: sqlite3 runs one at a time (executescript would commit).
_INDEXES_AND_TRIGGERS = (
    # One row's history. (The digest reads ranges of event ids: the table itself.)
    "CREATE INDEX events_row ON events (row_id, event_id)",
    "CREATE INDEX events_target ON events (target_event, event_id) WHERE target_event IS NOT NULL",
    "CREATE INDEX events_actor ON events (session_id, annotator, event_id)",
    f"CREATE TRIGGER events_no_update BEFORE UPDATE ON events {_APPEND_ONLY}",
    f"CREATE TRIGGER events_no_delete BEFORE DELETE ON events {_APPEND_ONLY}",
)
SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    _EVENTS_V3,
    *_INDEXES_AND_TRIGGERS,
)

# -- reading the log ------------------------------------------------------------------

#: Acts that are undone now: the latest undo/redo aimed at them is an undo. (SQLite
#: gives the bare column ``kind`` from the row holding MAX(event_id).)
_UNDONE = """
    SELECT target_event FROM (
        SELECT target_event, kind, MAX(event_id) FROM events
        WHERE target_event IS NOT NULL GROUP BY target_event
    ) WHERE kind = 'undo'
"""
#: For each row, its latest state-setting act that is not undone, for one provenance.
CURRENT_SQL = f"""
    {SELECT_EVENTS} WHERE event_id IN (
        SELECT MAX(event_id) FROM events
        WHERE provenance = ? AND kind IN ({_quoted(tuple(STATE_OF))})
          AND event_id NOT IN ({_UNDONE})
        GROUP BY row_id
    ) ORDER BY event_id
"""
#: Is this act undone now?
IS_UNDONE_SQL = """
    SELECT kind = 'undo' FROM events WHERE target_event = ?
    ORDER BY event_id DESC LIMIT 1
"""
#: The acts of one annotator in one session, newest first, with whether each is undone.
ACTOR_ACTS_SQL = f"""
    SELECT e.act_id, e.event_id, (
        SELECT u.kind = 'undo' FROM events AS u WHERE u.target_event = e.event_id
        ORDER BY u.event_id DESC LIMIT 1) AS undone
    FROM events AS e
    WHERE e.session_id = ? AND e.annotator = ? AND e.kind IN ({_quoted(ACTS)})
      AND e.event_id = e.act_id
    ORDER BY e.event_id DESC
"""
#: The undo and redo acts of an actor after their latest act (the redo stack).
ACTOR_TRAIL_SQL = f"""
    SELECT e.kind, e.act_id, e.target_event FROM events AS e
    WHERE e.session_id = ? AND e.annotator = ? AND e.event_id = e.act_id
      AND e.event_id > (
        SELECT COALESCE(MAX(a.event_id), 0) FROM events AS a
        WHERE a.session_id = ? AND a.annotator = ? AND a.kind IN ({_quoted(ACTS)}))
    ORDER BY e.event_id
"""

# -- migrations -----------------------------------------------------------------------

#: The version-1 DDL, as the walking skeleton wrote it (kept for the record and tests).
SCHEMA_V1 = (
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
    "CREATE INDEX events_row ON events (row_id, kind, event_id)",
    "CREATE INDEX events_target ON events (target_event) WHERE target_event IS NOT NULL",
    "CREATE INDEX events_actor ON events (session_id, annotator, event_id)",
    f"CREATE TRIGGER events_no_update BEFORE UPDATE ON events {_APPEND_ONLY}",
    f"CREATE TRIGGER events_no_delete BEFORE DELETE ON events {_APPEND_ONLY}",
)

_V1_TO_V2 = (
    "DROP TRIGGER events_no_update",
    "DROP TRIGGER events_no_delete",
    _EVENTS_V2.replace("CREATE TABLE events", "CREATE TABLE events_v2", 1),
    # Every v1 event is its own act, made by a person.
    """INSERT INTO events_v2 (event_id, act_id, row_id, row_id_type, kind, label,
           provenance, annotator, time, session_id, model_version, score, note,
           target_event)
       SELECT event_id, event_id, row_id, row_id_type, kind, label, 'human', annotator,
           time, session_id, model_version, score, note, target_event
       FROM events ORDER BY event_id""",
    "DROP TABLE events",  # drops its indexes too
    "ALTER TABLE events_v2 RENAME TO events",
    *_INDEXES_AND_TRIGGERS,
)
# A column added in place: SQLite checks its constraint on the existing rows (all NULL)
# and rewrites none of them, so the append-only triggers do not fire.
_V2_TO_V3 = (f"ALTER TABLE events ADD COLUMN {_CATALOGUE_ROW}",)


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Upgrade the schema from ``version`` to :data:`SCHEMA_VERSION` in place.

    Call inside a write transaction with foreign keys off (SQLite's recipe for changing
    a table's constraints: build the new table, copy, drop, rename). The steps run in
    turn (a version-1 file is rebuilt into version 2, then gains version 3's column).
    Either every step lands or, on any error, the transaction rolls back to the old file.
    """
    steps = {1: _V1_TO_V2, 2: _V2_TO_V3}
    for step in range(version, SCHEMA_VERSION):
        for statement in steps[step]:
            conn.execute(statement)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
