"""The log digest's lean read against the SQL view, for values that take its slow roads:
long and non-ASCII class names, separators inside ids and labels, and event ids with
gaps (another provenance's events in between), catalogue rows on some events only; and
the pool's plain ``current()`` path against its fast path (which takes recorded rows)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from armillary import _store_schema as schema
from armillary import datasets, open_catalogue
from armillary.pool import Pool
from armillary.store import LabelStore

WHO = {"annotator": "ada", "session_id": "s1"}
LEAN = ["id", "kind", "label", "event_id"]

LABEL_SETS = [
    ["A", "Star", "Galaxy7", "Galaxy88", "a much longer class name"],  # 7 bytes and more
    ["ü", "星", "QSO", "Star\x1fx"],  # non-ASCII, and the separator inside a label
    ["ab", "a", "abc"],  # one name the start of another
]


def _ids(int_ids: bool) -> list:
    if int_ids:
        return [*range(-5, 40), 2**63 - 1]
    return [f"id{i}" for i in range(40)] + ["", "x\x1fy", "ä"]


def _random_log(store: LabelStore, ids: list, labels: list[str], rng: random.Random,
                where: dict | None = None) -> None:
    """One random step: an act, a bulk act, a catalogue import, an undo or a redo; with
    the catalogue row of each id from ``where`` for about two acts in three."""

    def at(rows: list) -> list | None:  # ids without a row (not in the catalogue): none
        if where is None or rng.random() < 0.35 or not set(rows) <= set(where):
            return None
        return [where[r] for r in rows]

    r = rng.random()
    if r < 0.55:
        kind = rng.choice(["label", "unsure", "skip", "test_label", "note"])
        label = rng.choice(labels) if kind in ("label", "test_label") else None
        row = rng.choice(ids)
        store.append(kind, row, label, note="n" if kind == "note" else None,
                     row=(at([row]) or [None])[0], **WHO)
    elif r < 0.7:
        rows = rng.sample(ids, rng.randint(1, 5))
        store.append_many("bulk_label", rows, rng.choice(labels), selection_id="sel",
                          rows=at(rows), **WHO)
    elif r < 0.8:  # catalogue events between human ones: gaps in the human event ids
        rows = rng.sample(ids, 3)
        store.append_many("label", rows, rng.choice(labels), rows=at(rows),
                          provenance="catalogue", annotator="cat", session_id="import")
    elif r < 0.93:
        store.undo(**WHO)
    else:
        store.redo(**WHO)


def _check_against_sql(store: LabelStore) -> None:
    for provenance in schema.PROVENANCES:
        lean = store.current(provenance, columns=LEAN)
        rows = store._conn.execute(schema.CURRENT_SQL, (provenance,)).fetchall()
        assert lean["event_id"].tolist() == [r[0] for r in rows]
        assert [str(x) for x in lean["id"].tolist()] == [r[2] for r in rows]
        assert lean["kind"].tolist() == [schema.STATE_OF[r[4]] for r in rows]
        assert lean["label"].tolist() == [r[5] for r in rows]
        *_, recorded = store._in_force(provenance)
        at = schema.EVENT_COLUMNS.index("catalogue_row")
        assert recorded.tolist() == [-1 if r[at] is None else r[at] for r in rows]


@pytest.mark.parametrize("labels", LABEL_SETS)
@pytest.mark.parametrize("int_ids", [True, False])
def test_lean_read_agrees_with_sql(int_ids, labels):
    rng = random.Random(hash((int_ids, len(labels[0]))) & 0xFFFF)
    with LabelStore(":memory:", catalogue_fingerprint="sky") as store:
        ids = _ids(int_ids)
        where = {row_id: k for k, row_id in enumerate(ids)}
        for step in range(250):
            _random_log(store, ids, labels, rng, where)
            if step % 25 == 24:  # read incrementally, every few acts
                _check_against_sql(store)
        incremental = store.current("human")
        store._digests.clear()  # and all at once, from a new digest
        store._lean.clear()
        store._frames.clear()
        _check_against_sql(store)
        assert store.current("human").equals(incremental)


def test_a_long_log_is_read_in_chunks(monkeypatch):
    import armillary._store_digest as digest

    monkeypatch.setattr(digest, "_CHUNK", 7)
    with LabelStore(":memory:", catalogue_fingerprint="sky") as store:
        rng = random.Random(5)
        ids = _ids(False)
        for _ in range(120):
            _random_log(store, ids, LABEL_SETS[0], rng, dict.fromkeys(ids, 3))
        _check_against_sql(store)


class _PlainStore:
    """Only the store interface a Pool documents: no private fast path."""

    def __init__(self, store: LabelStore) -> None:
        self._store = store
        self.classes = store.classes

    def current(self, provenance="human", columns=None):
        return self._store.current(provenance, columns=columns)

    @property
    def state_version(self):
        return self._store.state_version


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digest")
    return open_catalogue(datasets.make_catalogue(n=500, path=folder / "sky.fits", thumbnails=0))


def test_pool_reads_the_same_through_current(catalogue):
    """The fast path takes the rows recorded with most events; the plain path looks
    every id up."""
    ids = catalogue.ids
    rng = random.Random(11)
    with LabelStore(":memory:", catalogue_fingerprint=catalogue.fingerprint) as store:
        fast, plain = Pool(store, catalogue), Pool(_PlainStore(store), catalogue)
        known = [*ids[:60].tolist(), "not in the catalogue"]
        where = {row_id: k for k, row_id in enumerate(ids[:60].tolist())}
        for step in range(150):
            _random_log(store, known, ["Star", "Galaxy", "Nebula"], rng, where)
            if step % 10 == 9:
                assert fast.refresh() == plain.refresh()
                np.testing.assert_array_equal(fast.status, plain.status)
                np.testing.assert_array_equal(fast.codes, plain.codes)
                np.testing.assert_array_equal(fast.changed, plain.changed)
                for a, b in zip(fast.training(), plain.training(), strict=True):
                    np.testing.assert_array_equal(a, b)
                for a, b in zip(fast.catalogue_labels(), plain.catalogue_labels(), strict=True):
                    np.testing.assert_array_equal(a, b)
                assert fast.classes == plain.classes
                assert fast.missing_ids.tolist() == plain.missing_ids.tolist()
        assert fast._took_rows  # recorded rows were taken, not looked up
        masks = fast.masks()
        assert all(m.dtype == bool and m.flags.writeable for m in masks.values())
        assert sum(int(m.sum()) for m in masks.values()) == len(catalogue)
