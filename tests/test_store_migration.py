"""Upgrading a version-1 store (the walking skeleton's) without losing an event."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import pytest

from armillary import _store_schema as schema
from armillary.errors import ReadOnlyStoreError, StoreError
from armillary.store import SCHEMA_VERSION, LabelStore

# The skeleton's DDL, copied here as it was written (schema version 1), so that this test
# keeps building real version-1 files whatever the store module becomes.
_APPEND_ONLY = "BEGIN SELECT RAISE(ABORT, 'armillary label events are append-only'); END"
V1_DDL = (
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
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
# (row_id, kind, label, annotator, session, model_version, score, note, target)
V1_EVENTS = [
    ("J1", "label", "Star", "ada", "s1", None, None, None, None),
    ("J2", "label", "Galaxy", "ada", "s1", 3, 0.42, "edge-on", None),
    ("J3", "unsure", None, "bob", "s2", 3, 0.11, None, None),
    ("J1", "label", "QSO", "ada", "s1", 4, 0.05, None, None),
    ("J1", "undo", None, "ada", "s1", None, None, None, 4),
    ("J4", "skip", None, "ada", "s1", None, None, None, None),
    ("J2", "label", "Star", "bob", "s2", None, None, None, None),
]


def make_v1_store(path):
    """A version-1 store file with V1_EVENTS, as the skeleton wrote it (WAL)."""
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("BEGIN")
    for statement in V1_DDL:
        raw.execute(statement)
    raw.executemany("INSERT INTO meta VALUES (?, ?)", [
        ("schema_version", "1"), ("created", T0.isoformat(timespec="microseconds")),
        ("catalogue_fingerprint", "ID:2000:abc"), ("id_column", "ID")])
    for k, (row, kind, label, who, session, version, score, note, target) in \
            enumerate(V1_EVENTS):
        time = (T0 + timedelta(seconds=k)).isoformat(timespec="microseconds")
        raw.execute("INSERT INTO events (row_id, row_id_type, kind, label, annotator, time,"
                    " session_id, model_version, score, note, target_event) VALUES"
                    " (?, 'str', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (row, kind, label, who, time, session, version, score, note, target))
    raw.execute("COMMIT")
    raw.close()
    return path


def raw_events(path):
    with sqlite3.connect(path) as raw:
        rows = raw.execute("SELECT event_id, row_id, kind, label, annotator, time,"
                           " session_id, model_version, score, note, target_event"
                           " FROM events ORDER BY event_id").fetchall()
    raw.close()
    return rows


def test_the_recorded_v1_schema_is_the_skeletons():
    assert schema.SCHEMA_V1 == V1_DDL
    assert SCHEMA_VERSION == 3


def test_a_v1_store_upgrades_without_losing_an_event(tmp_path):
    path = make_v1_store(tmp_path / "old.sqlite")
    before = raw_events(path)
    with LabelStore(path, catalogue_fingerprint="ID:2000:abc", id_column="ID") as store:
        meta = store.meta
        assert meta["schema_version"] == str(SCHEMA_VERSION)
        assert "migrated_from_1" in meta
        assert meta["created"] == T0.isoformat(timespec="microseconds")
        log = store.events()
        assert log["kind"].tolist() == [e[1] for e in V1_EVENTS]
        assert set(log["provenance"]) == {"human"}
        assert log["act_id"].tolist() == log["event_id"].tolist()
        # J1's QSO label was undone in v1: its Star label is in force.
        assert store.current()[["id", "kind", "label", "annotator"]].values.tolist() == [
            ["J1", "label", "Star", "ada"], ["J3", "unsure", None, "bob"],
            ["J4", "skip", None, "ada"], ["J2", "label", "Star", "bob"]]
        # The log goes on: new ids follow the old ones, and old acts can be undone.
        event = store.append("label", "J5", "QSO", annotator="ada", session_id="s1")
        assert event.event_id == len(V1_EVENTS) + 1
        assert store.undo(annotator="ada", session_id="s1").row_id == "J5"
        assert store.undo(annotator="ada", session_id="s1").row_id == "J4"
        assert store.redo(annotator="ada", session_id="s1").row_id == "J4"
    assert raw_events(path)[: len(before)] == before  # every v1 field, unchanged
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute("DELETE FROM events WHERE event_id = 1")
        indexes = {r[0] for r in raw.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'events_%'")}
        assert indexes == {"events_row", "events_target", "events_actor"}
        assert raw.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'"
                           ).fetchone()[0] == raw.execute(
            "SELECT MAX(event_id) FROM events").fetchone()[0]
    raw.close()
    with LabelStore(path) as again:  # a second open finds nothing to do
        assert again.n_events == len(V1_EVENTS) + 4
        # Rebuilt into version 2, then given version 3's column: old events have no row.
        assert again.events()["catalogue_row"].isna().all()
    with LabelStore(path, catalogue_fingerprint="ID:2000:abc") as own:
        assert own.append("label", "J6", "Star", row=6, session_id="s1").catalogue_row == 6
        assert own.events("J6")["catalogue_row"].tolist() == [6]


def test_a_failed_upgrade_leaves_the_v1_file_as_it_was(tmp_path, monkeypatch):
    path = make_v1_store(tmp_path / "old.sqlite")
    before = raw_events(path)
    broken = (*schema._V1_TO_V2, "INSERT INTO no_such_table VALUES (1)")
    monkeypatch.setattr(schema, "_V1_TO_V2", broken)
    with pytest.raises(StoreError, match="no_such_table"):
        LabelStore(path)
    assert raw_events(path) == before
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                           ).fetchone()[0] == "1"
    raw.close()
    monkeypatch.undo()
    with LabelStore(path) as store:
        assert store.n_events == len(V1_EVENTS)


def test_a_read_only_v1_store_is_read_through_a_memory_copy(tmp_path):
    path = make_v1_store(tmp_path / "old.sqlite")
    path.chmod(0o444)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        with LabelStore(path) as store:
            assert store.readonly
            assert store.meta["schema_version"] == str(SCHEMA_VERSION)
            assert store.current().set_index("id").loc["J1", "label"] == "Star"
            with pytest.raises(ReadOnlyStoreError, match="no write permission bits"):
                store.append("label", "J9", "Star", session_id="s")
    finally:
        path.chmod(0o644)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_two_openers_upgrade_once(tmp_path):
    path = make_v1_store(tmp_path / "old.sqlite")
    results: list[object] = []

    def open_it() -> None:
        try:
            with LabelStore(path) as store:
                results.append(store.n_events)
        except BaseException as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [len(V1_EVENTS)] * 4
    with sqlite3.connect(path) as raw:
        keys = [k for (k,) in raw.execute("SELECT key FROM meta")]
    raw.close()
    assert keys.count("migrated_from_1") == 1


# -- version 2 -> 3 -------------------------------------------------------------------

V2_COLUMNS = ("event_id, act_id, row_id, row_id_type, kind, label, provenance, annotator,"
              " time, session_id, round, strategy, model_version, score, confidence, note,"
              " selection_id, source, target_event")
# (event_id, act_id, row_id, kind, label, provenance, annotator, note, selection, target)
V2_EVENTS = [
    (1, 1, "J1", "label", "Star", "human", "ada", None, None, None),
    (2, 2, "J2", "bulk_label", "Galaxy", "human", "ada", None, "sel-1", None),
    (3, 2, "J3", "bulk_label", "Galaxy", "human", "ada", None, "sel-1", None),
    (4, 4, "J1", "note", None, "human", "ada", "blended", None, None),
    (5, 5, "J9", "label", "QSO", "catalogue", "cat", None, None, None),
    (6, 6, "J2", "undo", None, "human", "ada", None, None, 2),
    (7, 6, "J3", "undo", None, "human", "ada", None, None, 3),
    (8, 8, "J4", "test_label", "Star", "human", "bob", None, None, None),
]


def make_v2_store(path):
    """A version-2 store file with V2_EVENTS, as version 2 wrote it (WAL)."""
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("BEGIN")
    raw.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    raw.execute(schema._EVENTS_V2)
    for statement in schema._INDEXES_AND_TRIGGERS:
        raw.execute(statement)
    raw.executemany("INSERT INTO meta VALUES (?, ?)", [
        ("schema_version", "2"), ("created", T0.isoformat(timespec="microseconds")),
        ("catalogue_fingerprint", "ID:2000:abc"), ("id_column", "ID")])
    for k, (event, act, row, kind, label, provenance, who, note, selection, target) in \
            enumerate(V2_EVENTS):
        time = (T0 + timedelta(seconds=k)).isoformat(timespec="microseconds")
        raw.execute(f"INSERT INTO events ({V2_COLUMNS}) VALUES"
                    " (?, ?, ?, 'str', ?, ?, ?, ?, ?, 's1', NULL, NULL, NULL, NULL, NULL,"
                    " ?, ?, NULL, ?)",
                    (event, act, row, kind, label, provenance, who, time, note, selection,
                     target))
    raw.execute("COMMIT")
    raw.close()
    return path


def v2_events(path):
    with sqlite3.connect(path) as raw:
        rows = raw.execute(f"SELECT {V2_COLUMNS} FROM events ORDER BY event_id").fetchall()
    raw.close()
    return rows


def test_a_v2_store_gains_catalogue_rows_without_losing_an_event(tmp_path):
    path = make_v2_store(tmp_path / "v2.sqlite")
    before = v2_events(path)
    with LabelStore(path, catalogue_fingerprint="ID:2000:abc", id_column="ID") as store:
        meta = store.meta
        assert meta["schema_version"] == str(SCHEMA_VERSION) == "3"
        assert "migrated_from_2" in meta
        assert "migrated_from_1" not in meta
        assert store.current()[["id", "kind", "label"]].values.tolist() == [
            ["J1", "label", "Star"], ["J4", "test", "Star"]]
        assert store.events()["catalogue_row"].isna().all()
        assert store.keeps_rows
        store.append("label", "J5", "QSO", row=5, annotator="ada", session_id="s1")
        store.append_many("skip", ["J6", "J7"], rows=[6, 7], annotator="ada",
                          session_id="s1")
        assert store.undo(annotator="ada", session_id="s1").row_id == "J6"
        _, ids, *_, rows = store._in_force()
        assert dict(zip(ids.tolist(), rows.tolist(), strict=True)) == {
            "J1": -1, "J4": -1, "J5": 5}
    assert v2_events(path)[: len(before)] == before  # every v2 field, unchanged
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute("UPDATE events SET catalogue_row = 1 WHERE event_id = 1")
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint"):
            raw.execute(f"INSERT INTO events ({V2_COLUMNS}, catalogue_row) SELECT"
                        f" {V2_COLUMNS.replace('event_id,', '100,', 1)}, -1"
                        " FROM events WHERE event_id = 1")
        columns = [r[1] for r in raw.execute("PRAGMA table_info(events)")]
        assert columns[-1] == "catalogue_row"
        assert columns == list(schema.EVENT_COLUMNS)
    raw.close()


def test_a_failed_v2_upgrade_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = make_v2_store(tmp_path / "v2.sqlite")
    before = v2_events(path)
    monkeypatch.setattr(schema, "_V2_TO_V3", (*schema._V2_TO_V3, "SELECT * FROM nowhere"))
    with pytest.raises(StoreError, match="nowhere"):
        LabelStore(path)
    assert v2_events(path) == before
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                           ).fetchone()[0] == "2"
        assert "catalogue_row" not in [r[1] for r in raw.execute("PRAGMA table_info(events)")]
    raw.close()


def test_a_version_4_store_is_refused(tmp_path):
    path = tmp_path / "v4.sqlite"
    with LabelStore(path) as store:
        store.append("label", "J1", "Star", row=1, annotator="ada", session_id="s1")
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    raw.close()
    with pytest.raises(StoreError, match=r"schema version 4, newer than this Armillary reads"
                                         r" \(3\)"):
        LabelStore(path)
