"""Tests of armillary.store.LabelStore, on real SQLite files under tmp_path."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from armillary import _store_schema as schema
from armillary.errors import ArmillaryError, InvalidEventError, StoreError
from armillary.store import SCHEMA_VERSION, Event, LabelStore

CURRENT_COLUMNS = ["id", "kind", "label", "annotator", "time", "session_id",
                   "model_version", "score", "note", "event_id", "event_kind", "provenance",
                   "round", "strategy", "confidence", "selection_id", "source", "act_id"]


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "labels.sqlite"


@pytest.fixture
def store(store_path):
    with LabelStore(store_path, catalogue_fingerprint="cat-A", id_column="objid") as s:
        yield s


def states(s: LabelStore) -> list[tuple]:
    """(id, kind, label) of every row in current(), in order."""
    cur = s.current()
    return list(zip(cur["id"], cur["kind"], cur["label"], strict=True))


# -- round trips -------------------------------------------------------------------


def test_append_labels_current_round_trip(store):
    before = datetime.now(UTC)
    ev = store.append("label", 7, "Galaxy", annotator="ada", session_id="s1",
                      model_version=3, score=0.25, note="faint")
    after = datetime.now(UTC)
    assert isinstance(ev, Event)
    assert (ev.event_id, ev.row_id, ev.kind, ev.label) == (1, 7, "label", "Galaxy")
    assert (ev.annotator, ev.session_id, ev.model_version, ev.score, ev.note) == (
        "ada", "s1", 3, 0.25, "faint")
    assert ev.target_event is None
    assert ev.time.tzinfo is not None
    assert before <= ev.time <= after
    store.append("unsure", 8, annotator="ada", session_id="s1")
    store.append("skip", 9, annotator="ada", session_id="s1")

    cur = store.current()
    assert list(cur.columns) == CURRENT_COLUMNS
    assert states(store) == [(7, "label", "Galaxy"), (8, "unsure", None), (9, "skip", None)]
    assert list(cur["event_id"]) == [1, 2, 3]
    assert str(cur["time"].dt.tz) == "UTC"
    assert cur["time"].iloc[0] == pd.Timestamp(ev.time)
    assert cur["model_version"].iloc[0] == 3
    assert pd.isna(cur["model_version"].iloc[1])

    labels = store.labels()
    assert list(labels.columns) == CURRENT_COLUMNS
    assert labels[["id", "label", "annotator"]].to_dict("records") == [
        {"id": 7, "label": "Galaxy", "annotator": "ada"}]


def test_time_is_stored_as_utc_iso_with_microseconds(store, store_path):
    store.append("label", 1, "Star", annotator="ada", session_id="s1")
    with sqlite3.connect(store_path) as raw:
        (text,) = raw.execute("SELECT time FROM events").fetchone()
    assert text.endswith("+00:00")
    assert datetime.fromisoformat(text).tzinfo == UTC
    assert len(text.split(".")[1]) == len("123456+00:00")


def test_default_annotator(store, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_USER", "hub-user")
    assert store.append("skip", 1, session_id="s1").annotator == "hub-user"
    monkeypatch.delenv("JUPYTERHUB_USER")
    monkeypatch.setattr("getpass.getuser", lambda: "login-user")
    assert store.append("skip", 2, session_id="s1").annotator == "login-user"


def test_int_ids_round_trip(store, store_path):
    big = 2**63 + 5  # beyond int64: comes back as a Python int
    store.append("label", np.int64(4_295_229_000_123), "Star", session_id="s")
    store.append("label", -3, "Star", session_id="s")
    assert store.current()["id"].dtype == np.int64
    assert list(store.labels()["id"]) == [4_295_229_000_123, -3]
    store.append("label", big, "Star", session_id="s")
    store.close()
    with LabelStore(store_path) as again:
        ids = list(again.labels()["id"])
        assert ids == [4_295_229_000_123, -3, big]
        assert all(type(i) is int for i in again.events()["id"].tolist())
        assert again.events(-3)["id"].tolist() == [-3]


def test_str_ids_round_trip(store):
    ev = store.append("label", "J1234+5678", "Quasar", session_id="s")
    store.append("label", "007", "Star", session_id="s")
    assert ev.row_id == "J1234+5678"
    assert store.labels()["id"].tolist() == ["J1234+5678", "007"]
    assert store.events("007")["label"].tolist() == ["Star"]
    assert store.events(7).empty


def test_mixed_id_types_are_refused(store):
    store.append("label", 5, "Star", session_id="s")
    with pytest.raises(InvalidEventError, match=r"'5' is a str.*ids in label store .* are ints"):
        store.append("label", "5", "Star", session_id="s")
    for bad in (True, 5.0, None):
        with pytest.raises(InvalidEventError, match="must be an int or a str"):
            store.append("label", bad, "Star", session_id="s")
    assert store.n_events == 1


def test_memory_store_and_context_manager(store_path):
    with LabelStore(":memory:") as mem:
        assert mem.path == ":memory:"
        mem.append("label", 1, "Star", session_id="s")
        assert len(mem.labels()) == 1
    with LabelStore(str(store_path)) as s:
        assert s.path == store_path
        assert repr(s) == f"LabelStore({str(store_path)!r})"
    with pytest.raises(sqlite3.ProgrammingError):
        s.current()


# -- undo --------------------------------------------------------------------------


def test_undo_walks_back(store):
    a = store.append("label", "A", "Star", annotator="ada", session_id="s1")
    b = store.append("label", "B", "Galaxy", annotator="ada", session_id="s1")
    assert store.undo(annotator="ada", session_id="s1") == b
    assert states(store) == [("A", "label", "Star")]
    assert store.undo(annotator="ada", session_id="s1") == a
    assert states(store) == []
    n = store.n_events
    assert store.undo(annotator="ada", session_id="s1") is None
    assert store.n_events == n


def test_undo_with_nothing_writes_nothing(store):
    assert store.undo(annotator="ada", session_id="s1") is None
    assert store.n_events == 0
    assert store.events().empty


def test_undo_unsure_restores_earlier_label(store):
    store.append("label", 3, "Star", annotator="ada", session_id="s1")
    store.append("unsure", 3, annotator="ada", session_id="s1")
    assert states(store) == [(3, "unsure", None)]
    undone = store.undo(annotator="ada", session_id="s1")
    assert undone.kind == "unsure"
    assert states(store) == [(3, "label", "Star")]
    assert store.labels()["event_id"].tolist() == [1]


def test_undo_is_per_annotator_and_session(store):
    store.append("label", 1, "Star", annotator="ada", session_id="s1")
    store.append("label", 2, "Star", annotator="bob", session_id="s1")
    store.append("label", 3, "Star", annotator="ada", session_id="s2")
    assert store.undo(annotator="ada", session_id="s1").row_id == 1
    assert store.undo(annotator="ada", session_id="s1") is None
    assert store.undo(annotator="carl", session_id="s2") is None
    assert [r[0] for r in states(store)] == [2, 3]
    assert store.undo(annotator="ada", session_id="s2").row_id == 3
    assert [r[0] for r in states(store)] == [2]


def test_undo_event_is_logged_and_nothing_is_updated(store, store_path):
    store.append("label", 1, "Star", annotator="ada", session_id="s1")
    store.append("label", 1, "Galaxy", annotator="ada", session_id="s1")
    before = store.events()
    store.undo(annotator="ada", session_id="s1")
    log = store.events()
    assert len(log) == 3
    assert store.n_events == store.state_version == 3
    pd.testing.assert_frame_equal(log.iloc[:2], before)  # old rows untouched
    assert log["kind"].tolist() == ["label", "relabel", "undo"]  # a label of a labelled row
    assert log["target_event"].iloc[2] == 2
    assert log["id"].iloc[2] == 1
    assert store.events(1)["event_id"].tolist() == [1, 2, 3]
    assert states(store) == [(1, "label", "Star")]
    with sqlite3.connect(store_path) as raw:
        for sql in ("UPDATE events SET label = 'Star'", "DELETE FROM events"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                raw.execute(sql)
    assert len(store.events()) == 3


# -- durability and the file -------------------------------------------------------


def test_persists_across_close_and_reopen(store_path):
    with LabelStore(store_path, catalogue_fingerprint="cat-A") as s:
        s.append("label", 1, "Star", annotator="ada", session_id="s1")
        s.append("label", 2, "Galaxy", annotator="ada", session_id="s1")
        s.undo(annotator="ada", session_id="s1")
        expected = s.current()
    with LabelStore(store_path, catalogue_fingerprint="cat-A") as s:
        pd.testing.assert_frame_equal(s.current(), expected)
        assert s.n_events == 3
        assert s.meta["schema_version"] == str(SCHEMA_VERSION)
        assert s.meta["catalogue_fingerprint"] == "cat-A"
        # undo continues from the log, not from memory of the earlier process
        assert s.undo(annotator="ada", session_id="s1").row_id == 1


def test_wal_full_sync_and_integrity(store, store_path):
    store.append("label", 1, "Star", session_id="s1")
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with sqlite3.connect(store_path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
    meta = store.meta
    assert meta["id_column"] == "objid"
    assert datetime.fromisoformat(meta["created"]).tzinfo == UTC


def test_fingerprint_is_taken_by_a_store_without_one(store_path):
    LabelStore(store_path).close()
    LabelStore(store_path, catalogue_fingerprint="cat-B").close()
    with pytest.raises(StoreError, match="cat-B"):
        LabelStore(store_path, catalogue_fingerprint="cat-C")
    with LabelStore(store_path) as s:  # no fingerprint given: no check
        assert s.meta["catalogue_fingerprint"] == "cat-B"


# -- bad input ---------------------------------------------------------------------


def test_bad_events_write_nothing(store):
    store.append("label", 1, "Star", session_id="s1")
    with pytest.raises(ValueError,
                       match=r"unknown event kind 'galaxy'.*'label', 'relabel', 'unsure'"):
        store.append("galaxy", 1, session_id="s1")
    with pytest.raises(InvalidEventError, match=r"LabelStore.undo\(\)"):
        store.append("undo", 1, session_id="s1")
    with pytest.raises(InvalidEventError, match="needs a class name"):
        store.append("label", 1, session_id="s1")
    with pytest.raises(InvalidEventError, match="takes no label"):
        store.append("unsure", 1, "Star", session_id="s1")
    with pytest.raises(InvalidEventError, match="non-empty string"):
        store.append("label", 1, "", session_id="s1")
    with pytest.raises(InvalidEventError, match="session_id"):
        store.append("skip", 1, session_id="")
    with pytest.raises(InvalidEventError, match="model_version"):
        store.append("skip", 1, session_id="s1", model_version="v2")
    assert store.n_events == 1
    assert issubclass(InvalidEventError, ArmillaryError)


def test_junk_file_is_not_a_store(tmp_path):
    path = tmp_path / "notes.sqlite"
    junk = b"this is not a database at all\x00\x01" * 100
    path.write_bytes(junk)
    with pytest.raises(StoreError, match=r"notes\.sqlite is not an Armillary label store"):
        LabelStore(path)
    assert path.read_bytes() == junk


def test_other_sqlite_database_is_not_a_store(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE stars (id INTEGER, mag REAL)")
        raw.execute("INSERT INTO stars VALUES (1, 12.5)")
    raw.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"other\.db is not an Armillary label store.*stars"):
        LabelStore(path)
    assert path.read_bytes() == before
    assert not (tmp_path / "other.db-wal").exists()


def test_newer_schema_is_refused(store, store_path):
    store.append("label", 1, "Star", session_id="s1")
    store.close()
    with sqlite3.connect(store_path) as raw:
        raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                    (str(SCHEMA_VERSION + 1),))
    raw.close()
    newer = SCHEMA_VERSION + 1
    with pytest.raises(StoreError, match=rf"labels\.sqlite has schema version {newer}.*upgrade"):
        LabelStore(store_path)
    with sqlite3.connect(store_path) as raw:
        assert raw.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
    raw.close()


def test_other_catalogue_is_refused(store, store_path):
    store.append("label", 1, "Star", session_id="s1")
    store.close()
    with pytest.raises(StoreError) as info:
        LabelStore(store_path, catalogue_fingerprint="cat-Z")
    message = str(info.value)
    for part in ("labels.sqlite", "'cat-A'", "'cat-Z'", "another store path"):
        assert part in message
    with pytest.raises(StoreError, match="id_column 'objid', not 'ra'"):
        LabelStore(store_path, id_column="ra")
    with LabelStore(store_path, catalogue_fingerprint="cat-A") as s:
        assert s.n_events == 1
        assert s.meta["catalogue_fingerprint"] == "cat-A"


def test_failed_write_is_a_store_error_and_writes_nothing(store):
    store.append("label", 1, "Star", session_id="s1")
    store._conn.execute("PRAGMA query_only = ON")  # stands in for a full or read-only disk
    with pytest.raises(StoreError, match=r"cannot write label store .*labels\.sqlite.*nothing"):
        store.append("label", 2, "Star", session_id="s1")
    with pytest.raises(StoreError, match="cannot write"):
        store.undo(session_id="s1")
    store._conn.execute("PRAGMA query_only = OFF")
    assert store.n_events == 1  # and the lock was released
    store.append("label", 2, "Star", session_id="s1")
    assert store.labels()["id"].tolist() == [1, 2]


def test_missing_folder(tmp_path):
    with pytest.raises(StoreError, match="nowhere"):
        LabelStore(tmp_path / "nowhere" / "labels.sqlite")


# The semantics against a pure-Python model are in test_store_model.py.


# -- threads and size ----------------------------------------------------------------


def test_two_threads_lose_nothing(store):
    errors: list[BaseException] = []
    done = threading.Event()

    def write(session: str) -> None:
        try:
            for i in range(500):
                store.append("label", i, "Star", annotator="ada", session_id=session)
        except BaseException as exc:  # reported below
            errors.append(exc)

    def read() -> None:
        try:
            while not done.is_set():
                store.current()
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(s,)) for s in ("s1", "s2")]
    reader = threading.Thread(target=read)
    for t in [*writers, reader]:
        t.start()
    for t in writers:
        t.join()
    done.set()
    reader.join()
    assert errors == []
    log = store.events()
    assert len(log) == store.n_events == 1000
    assert log["event_id"].tolist() == list(range(1, 1001))
    assert sorted(log.loc[log["session_id"] == "s1", "id"]) == list(range(500))
    assert sorted(log.loc[log["session_id"] == "s2", "id"]) == list(range(500))
    assert len(store.current()) == 500


def test_current_of_100k_events_matches_the_log(store, store_path):
    store.append("label", 0, "Star", annotator="ada", session_id="s1")
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 60_000, 100_000)
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    rows = [(str(i), "int", "label", "Star", "ada", now, "s2") for i in ids]
    with sqlite3.connect(store_path) as raw:  # bulk load; append() fsyncs each event
        raw.executemany("INSERT INTO events (event_id, act_id, row_id, row_id_type, kind,"
                        " label, annotator, time, session_id) VALUES (?, ?, ?, ?, ?, ?, ?,"
                        " ?, ?)", [(k + 2, k + 2, *row) for k, row in enumerate(rows)])
        raw.executemany("INSERT INTO events (act_id, row_id, row_id_type, kind, annotator,"
                        " time, session_id, target_event) VALUES (0, ?, 'int', 'undo', 'ada',"
                        " ?, 's2', ?)", [(str(ids[k]), now, k + 2) for k in range(0, 100_000, 10)])
    raw.close()
    cur = store.current()
    undone = set(range(0, 100_000, 10))
    last = {}
    for k, i in enumerate(ids):
        if k not in undone:
            last[int(i)] = k + 2
    last.setdefault(0, 1)
    assert dict(zip(cur["id"], cur["event_id"], strict=True)) == last
    lean = store.current(columns=["id", "event_id"])
    pd.testing.assert_frame_equal(lean, cur[["id", "event_id"]])
    view = [r[0] for r in store._conn.execute(schema.CURRENT_SQL, ("human",))]
    assert view == cur["event_id"].tolist()
