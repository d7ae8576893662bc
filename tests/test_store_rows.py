"""Catalogue rows recorded with events: kept only for the store's own catalogue, checked
on the way in, and read back by the lean read (-1 where an event has none)."""

from __future__ import annotations

import re
import sqlite3

import numpy as np
import pytest

from armillary.errors import InvalidEventError
from armillary.store import LabelStore

ADA = {"annotator": "ada", "session_id": "s1"}


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite", catalogue_fingerprint="cat-A",
                    id_column="ID") as s:
        yield s


def in_force_rows(store: LabelStore, provenance: str = "human") -> dict:
    """Row id -> catalogue row (-1: none) of each event in force, by the lean read."""
    _, ids, *_, rows = store._in_force(provenance)
    return dict(zip(ids.tolist(), rows.tolist(), strict=True))


def raw_rows(path) -> list[tuple]:
    with sqlite3.connect(path) as raw:
        found = raw.execute("SELECT event_id, kind, catalogue_row FROM events"
                            " ORDER BY event_id").fetchall()
    raw.close()
    return found


def test_rows_are_recorded_and_read_back(store):
    assert store.keeps_rows
    assert store.catalogue_fingerprint == "cat-A"
    event = store.append("label", "a", "Star", row=5, **ADA)
    assert event.catalogue_row == 5
    assert store.append("skip", "b", **ADA).catalogue_row is None
    store.append_many("label", ["c", "d"], "Galaxy", rows=np.array([7, 8], np.uint32), **ADA)
    store.append_many("unsure", ["e", "f"], **ADA)
    store.append_many("label", ["g"], "QSO", rows=[9], provenance="catalogue",
                      annotator="cat", session_id="import")
    assert in_force_rows(store) == {"a": 5, "b": -1, "c": 7, "d": 8, "e": -1, "f": -1}
    assert in_force_rows(store, "catalogue") == {"g": 9}
    assert store.events()["catalogue_row"].fillna(-1).tolist() == [5, -1, 7, 8, -1, -1, 9]
    assert store.history("c")["catalogue_row"].tolist() == [7]
    # An undo keeps the rows of the events it reverses; what it brings back keeps its own.
    store.append("label", "a", "QSO", row=5, **ADA)
    store.undo(**ADA)
    assert in_force_rows(store)["a"] == 5
    assert raw_rows(store.path)[-1] == (9, "undo", 5)


def test_every_mix_of_rows_reads_back_in_chunks(store, monkeypatch):
    """Chunks where every event, none, or some have a row (two reads), and values that
    take the plain row-by-row read, give the same rows."""
    import armillary._store_digest as digest

    monkeypatch.setattr(digest, "_CHUNK", 3)
    rng = np.random.default_rng(0)
    expected = {}
    for k in range(40):
        row = int(rng.integers(0, 1000)) if rng.random() < 0.6 else None
        name = f"J{k}" if k % 7 else f"J\x1f{k}"  # the separator inside an id: plain read
        store.append("label", name, "Star", row=row, **ADA)
        expected[name] = -1 if row is None else row
    assert in_force_rows(store) == expected
    store._digests.clear()
    assert in_force_rows(store) == expected


def test_rows_are_kept_only_for_the_stores_own_catalogue(tmp_path):
    path = tmp_path / "labels.sqlite"
    with LabelStore(path) as anonymous:  # no fingerprint: whose rows would they be?
        assert not anonymous.keeps_rows
        anonymous.append("label", "a", "Star", row=1, **ADA)
    with LabelStore(path, catalogue_fingerprint="cat-A") as adopted:  # gives it its first
        assert adopted.keeps_rows
        adopted.append("label", "b", "Star", row=2, **ADA)
    with LabelStore(path, catalogue_fingerprint="cat-B", match_by_id=True) as release:
        assert not release.keeps_rows  # another release: its rows are in another order
        assert release.catalogue_fingerprint == "cat-A"
        release.append("label", "c", "Star", row=3, **ADA)
        release.append_many("label", ["d", "e"], "Star", rows=[4, 5], **ADA)
        release.undo(**ADA)
    with LabelStore(path, catalogue_fingerprint="cat-A") as own:
        assert own.keeps_rows
        own.append("label", "f", "Star", row=6, **ADA)
    assert [r[2] for r in raw_rows(path)] == [None, 2, None, None, None, None, None, 6]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", np.float64(2.0), 2**63])
def test_a_bad_row_is_refused_and_nothing_written(store, bad):
    message = rf"row must be a catalogue row position .*{re.escape(repr(bad))}"
    with pytest.raises(InvalidEventError, match=message):
        store.append("label", "a", "Star", row=bad, **ADA)
    assert store.n_events == 0


@pytest.mark.parametrize(("rows", "message"), [
    ([1, 2], r"one catalogue row per row id \(3\), not shape \(2,\)"),
    ([1, -2, 3], r"rows\[1\] is -2"),
    (np.array([1, -2, 3]), r"rows\[1\] is -2"),
    ([1, 2, None], r"rows\[2\] is None"),
    (np.array([0.0, 1.0, 2.0]), r"rows\[0\] is 0.0"),
    (np.array([True, False, True]), r"rows\[0\] is True"),
    (np.array([1, 2, 2**64 - 1], np.uint64), r"rows\[2\] is 18446744073709551615"),
    ([[1, 2, 3]], r"not shape \(1, 3\)"),
])
def test_bad_rows_are_refused_and_nothing_written(store, rows, message):
    with pytest.raises(InvalidEventError, match=message):
        store.append_many("label", ["a", "b", "c"], "Star", rows=rows, **ADA)
    assert store.n_events == 0
    # Checked even where rows are not kept.
    with LabelStore(":memory:") as anonymous, pytest.raises(InvalidEventError, match=message):
        anonymous.append_many("label", ["a", "b", "c"], "Star", rows=rows, **ADA)
