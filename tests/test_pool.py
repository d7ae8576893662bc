"""Pool bookkeeping on a real catalogue: masks, training and test sets, pool views.

The property tests drive random sequences of acts, undos and redos through a store and
check the masks against the plain-Python model of ``test_store_model.py``, a pool
refreshed after every act against one built from scratch, and a pool that takes the
catalogue rows recorded with events against one that looks every id up.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.table import Table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from armillary import datasets, open_catalogue
from armillary._ids import catalogue_identity
from armillary.errors import ArmillaryError, ArmillaryWarning, UnknownIdError
from armillary.pool import (
    LABELLED,
    STATUS_NAMES,
    TEST,
    UNLABELLED,
    UNSURE,
    Pool,
    PoolView,
)
from armillary.store import LabelStore
from test_store_model import ACTORS, CLASSES, OPS, LogModel, apply

ADA = {"annotator": "ada", "session_id": "s1"}
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def sky_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pool")
    return datasets.make_catalogue(n=2000, path=folder / "sky.fits", thumbnails=0)


@pytest.fixture(scope="module")
def catalogue(sky_path):
    return open_catalogue(sky_path)


@pytest.fixture(scope="module")
def numbered(sky_path, tmp_path_factory):
    """The same catalogue with row numbers as ids (integers)."""
    return open_catalogue(sky_path, id_column=None,
                          cache_dir=tmp_path_factory.mktemp("numbered"))


@pytest.fixture
def store():
    with LabelStore(":memory:", classes=CLASSES) as s:
        yield s


def test_masks_follow_the_log(store, catalogue):
    ids = catalogue.ids
    pool = Pool(store, catalogue)
    assert pool.classes == list(CLASSES)
    assert pool.counts() == {"unlabelled": 2000, "labelled": 0, "unsure": 0, "skipped": 0,
                             "test": 0, "total": 2000}
    store.append("label", ids[5], "QSO", **ADA)
    store.append("unsure", ids[6], **ADA)
    store.append("skip", ids[7], **ADA)
    store.append("test_label", ids[8], "Galaxy", **ADA)
    store.append("note", ids[9], note="blended", **ADA)
    store.append_many("label", ids[100:103], "Star", provenance="catalogue",
                      annotator="import", session_id="cat")
    assert pool.refresh()
    assert not pool.refresh()  # nothing new
    assert pool.status[:10].tolist() == [0] * 5 + [LABELLED, UNSURE, 3, TEST, 0]
    assert np.flatnonzero(pool.labelled).tolist() == [5]
    assert np.flatnonzero(pool.unsure).tolist() == [6]
    assert np.flatnonzero(pool.skipped).tolist() == [7]
    assert np.flatnonzero(pool.test).tolist() == [8]
    assert pool.unlabelled.sum() == 1996
    assert [m.sum() for m in pool.masks().values()] == [1996, 1, 1, 1, 1]
    positions, codes = pool.training()
    assert (positions.tolist(), codes.tolist()) == ([5], [2])
    assert [a.tolist() for a in pool.test_set()] == [[8], [1]]
    assert [a.tolist() for a in pool.catalogue_labels()] == [[100, 101, 102], [0, 0, 0]]
    with pytest.raises(ValueError, match="read-only"):
        pool.status[0] = 1
    store.undo(**ADA)  # the note
    store.undo(**ADA)  # the test label
    store.append("label", ids[5], "Star", **ADA)  # a relabel
    pool.refresh()
    assert pool.counts()["test"] == 0
    assert pool.codes[5] == 0
    assert "labelled 1" in repr(pool)


def test_integer_ids_and_unknown_labels(numbered):
    with LabelStore(":memory:") as store:
        store.append("label", 1999, "Star", **ADA)
        store.append("label", 0, "Nebula", **ADA)
        pool = Pool(store, numbered, classes=["Star", "Galaxy"])
        assert pool.unknown_labels == {"Nebula"}
        assert pool.training()[0].tolist() == [1999]  # Nebula: labelled, not trained
        assert pool.labelled[[0, 1999]].tolist() == [True, True]
        learnt = Pool(store, numbered)  # no classes: names in order of appearance
        assert learnt.classes == ["Star", "Nebula"]
        assert learnt.training()[1].tolist() == [1, 0]


def test_a_view_maps_pool_positions_to_ids_and_back(store, catalogue):
    ids = catalogue.ids
    store.append_many("label", ids[[0, 2, 4]], "Star", **ADA)
    pool = Pool(store, catalogue)
    view = pool.view()  # the unlabelled rows
    assert len(view) == 1997
    assert view.catalogue_positions([0, 1, 2]).tolist() == [1, 3, 5]
    assert view.ids([0, 1]).tolist() == [ids[1], ids[3]]
    assert view.ids().tolist() == np.delete(ids, [0, 2, 4]).tolist()
    assert view.index_of([ids[5], ids[1]]).tolist() == [2, 0]
    assert view.from_catalogue([3, 1999]).tolist() == [1, 1996]
    with pytest.raises(ArmillaryError, match="not in this pool view"):
        view.index_of([ids[2]])
    with pytest.raises(UnknownIdError, match="'nowhere'"):
        view.index_of(["nowhere"])
    with pytest.raises(IndexError, match="out of range"):
        view.catalogue_positions([1997])
    assert pool.view("labelled").catalogue_positions([0, 1, 2]).tolist() == [0, 2, 4]
    with pytest.raises(ValueError, match="unknown status 'done'"):
        pool.view("done")
    with pytest.raises(ValueError, match="one value per catalogue row"):
        pool.view(np.ones(5, dtype=bool))


# -- properties ---------------------------------------------------------------------------

ROW_OP = st.tuples(st.sampled_from(["label", "unsure", "skip", "note", "test_label",
                                    "bulk_label", "undo", "redo", "undo"]),
                   st.lists(st.integers(0, 7), min_size=1, max_size=4),
                   st.sampled_from(CLASSES), st.sampled_from(ACTORS))
ROW_OPS = st.lists(ROW_OP, max_size=30)


@SETTINGS
@given(ops=ROW_OPS)
def test_masks_match_the_model_after_every_act(catalogue, ops):
    ids = catalogue.ids
    model = LogModel()
    with LabelStore(":memory:", classes=CLASSES) as store:
        pool = Pool(store, catalogue)
        for kind, rows, label, actor in ops:
            apply(store, model, (kind, [ids[r] for r in rows], label, actor))
            pool.refresh()
            expected = np.zeros(len(catalogue), dtype=np.int8)
            codes = np.full(len(catalogue), -1)
            for row_id, state, name in model.current():
                position = catalogue.position(row_id)
                expected[position] = {"label": 1, "unsure": 2, "skip": 3, "test": 4}[state]
                codes[position] = CLASSES.index(name) if name else -1
            np.testing.assert_array_equal(pool.status, expected)
            np.testing.assert_array_equal(pool.codes, codes)
        masks = np.stack(list(pool.masks().values()))
        assert (masks.sum(axis=0) == 1).all()  # every row in exactly one status
        assert pool.counts()["total"] - pool.counts()["unlabelled"] == len(store.current())
        fresh = Pool(store, catalogue)  # from scratch, the same
        np.testing.assert_array_equal(fresh.status, pool.status)
        np.testing.assert_array_equal(fresh.codes, pool.codes)
        train, test = pool.training(), pool.test_set()
        assert not set(train[0]) & set(test[0])  # the test set is never trained on
        assert not pool.unlabelled[train[0]].any()  # nor proposed
        assert not pool.unlabelled[test[0]].any()


@SETTINGS
@given(ops=OPS)
def test_undo_and_redo_restore_the_masks(catalogue, ops):
    """After undoing every act of every actor, all rows are back in the pool; redoing
    them all gives back the masks there were."""
    ids = catalogue.ids
    with LabelStore(":memory:", classes=CLASSES) as store:
        pool = Pool(store, catalogue)
        model = LogModel()
        for kind, rows, label, actor in ops:
            apply(store, model, (kind, [ids[r] for r in rows], label, actor))
        pool.refresh()
        before = pool.status.copy()
        undone = dict.fromkeys(ACTORS, 0)
        for actor in ACTORS:
            while store.undo(annotator=actor[0], session_id=actor[1]) is not None:
                undone[actor] += 1
        pool.refresh()
        assert (pool.status == UNLABELLED).all()
        for actor in ACTORS:
            for _ in range(undone[actor]):
                assert store.redo(annotator=actor[0], session_id=actor[1]) is not None
        pool.refresh()
        np.testing.assert_array_equal(pool.status, before)


@settings(max_examples=200, deadline=None)
@given(mask=st.lists(st.booleans(), min_size=40, max_size=40),
       picks=st.lists(st.integers(0, 39), max_size=10))
def test_view_positions_and_ids_round_trip(catalogue, mask, picks):
    full = np.zeros(len(catalogue), dtype=bool)
    full[:40] = mask
    view = PoolView(catalogue, np.flatnonzero(full))
    entries = [p for p in picks if p < len(view)]
    ids = view.ids(entries)
    assert ids.tolist() == [catalogue.ids[view.positions[e]] for e in entries]
    assert view.index_of(ids).tolist() == entries
    assert view.from_catalogue(view.catalogue_positions(entries)).tolist() == entries
    outside = np.flatnonzero(~full[:40])
    if outside.size:
        with pytest.raises(ArmillaryError, match="not in this pool view"):
            view.from_catalogue(outside[:1])


def test_status_names():
    assert STATUS_NAMES == ("unlabelled", "labelled", "unsure", "skipped", "test")


# -- catalogue rows recorded in the store ----------------------------------------------

OPS_WITH_ROWS = st.lists(st.tuples(ROW_OP, st.booleans()), max_size=30)


@SETTINGS
@given(ops=OPS_WITH_ROWS)
def test_recorded_rows_give_the_masks_of_looked_up_ids(catalogue, ops):
    """The same acts into a store that records rows (for some acts) and one that holds
    ids only: the pools agree after every act."""
    ids = catalogue.ids
    rows_store = LabelStore(":memory:", classes=CLASSES,
                            catalogue_fingerprint=catalogue.fingerprint)
    ids_store = LabelStore(":memory:", classes=CLASSES)
    with rows_store, ids_store, warnings.catch_warnings():
        warnings.simplefilter("error", ArmillaryWarning)  # no recorded row is wrong
        pools = Pool(rows_store, catalogue), Pool(ids_store, catalogue)
        models = LogModel(), LogModel()
        for (kind, rows, label, actor), with_rows in ops:
            op = (kind, [ids[r] for r in rows], label, actor)
            apply(rows_store, models[0], op, where=rows if with_rows else None)
            apply(ids_store, models[1], op)
            assert pools[0].refresh() == pools[1].refresh()
            np.testing.assert_array_equal(pools[0].status, pools[1].status)
            np.testing.assert_array_equal(pools[0].codes, pools[1].codes)
            np.testing.assert_array_equal(pools[0].changed, pools[1].changed)
            for a, b in zip(pools[0].training(), pools[1].training(), strict=True):
                np.testing.assert_array_equal(a, b)
        fresh = Pool(rows_store, catalogue)
        np.testing.assert_array_equal(fresh.status, pools[1].status)
        np.testing.assert_array_equal(fresh.codes, pools[1].codes)


@pytest.fixture(scope="module")
def reversed_catalogue(sky_path, tmp_path_factory):
    """The same rows and ids in the opposite order: another release of the catalogue."""
    folder = tmp_path_factory.mktemp("reversed")
    table = Table.read(sky_path)[::-1]
    table.write(folder / "sky-reversed.fits")
    return open_catalogue(folder / "sky-reversed.fits")


def _expected_status(catalogue, acts):
    """Status codes of every row after acts of (kind, id) on distinct ids."""
    status = np.zeros(len(catalogue), np.int8)
    for kind, row_id in acts:
        status[catalogue.position(row_id)] = {"label": LABELLED, "unsure": UNSURE}[kind]
    return status


def test_rows_of_another_catalogue_are_not_taken(catalogue, reversed_catalogue, tmp_path):
    ids = catalogue.ids
    path = tmp_path / "labels.sqlite"
    acts = [("label", ids[k]) for k in range(0, 40, 2)] + [("unsure", ids[1999])]
    with LabelStore(path, catalogue_fingerprint=catalogue.fingerprint) as store:
        for kind, row_id in acts:
            store.append(kind, row_id, "Star" if kind == "label" else None,
                         row=catalogue.position(row_id), **ADA)
    with LabelStore(path, catalogue_fingerprint=reversed_catalogue.fingerprint,
                    match_by_id=True) as release:
        assert not release.keeps_rows
        more = [("unsure", ids[7]), ("label", ids[9])]
        for kind, row_id in more:  # rows of the new release: not recorded
            release.append(kind, row_id, "QSO" if kind == "label" else None,
                           row=reversed_catalogue.position(row_id), **ADA)
        assert release.events()["catalogue_row"].isna().tolist() == [False] * 21 + [True] * 2
        with warnings.catch_warnings():
            warnings.simplefilter("error", ArmillaryWarning)  # not even checked
            pool = Pool(release, reversed_catalogue)
            np.testing.assert_array_equal(
                pool.status, _expected_status(reversed_catalogue, acts + more))
            assert not pool._took_rows
            own = Pool(release, catalogue)  # the store's own catalogue: rows taken
            np.testing.assert_array_equal(own.status, _expected_status(catalogue, acts + more))
            assert own._took_rows


def test_a_store_opened_as_a_session_opens_it_has_rows_taken(catalogue, numbered):
    for cat in (catalogue, numbered):
        with LabelStore(":memory:", catalogue_fingerprint=catalogue_identity(cat)) as store:
            store.append_many("label", cat.ids[[3, 1500]], "Star", rows=[3, 1500], **ADA)
            pool = Pool(store, cat)
            assert pool._took_rows
            assert np.flatnonzero(pool.labelled).tolist() == [3, 1500]


def test_wrong_recorded_rows_are_caught_and_every_id_looked_up(catalogue, tmp_path):
    ids = catalogue.ids
    path = tmp_path / "labels.sqlite"
    with LabelStore(path, catalogue_fingerprint=catalogue.fingerprint) as store:
        store.append_many("label", ids[100:200], "Star", rows=np.arange(101, 201), **ADA)
        with pytest.warns(ArmillaryWarning, match=r"labels\.sqlite: the catalogue rows .* do"
                                                  r" not hold their ids.*looking the ids up"):
            pool = Pool(store, catalogue)
        assert np.flatnonzero(pool.labelled).tolist() == list(range(100, 200))
        store.append("label", ids[5], "QSO", row=len(catalogue), **ADA)
        with warnings.catch_warnings():
            warnings.simplefilter("error", ArmillaryWarning)  # warned once, for this pool
            pool.refresh()
        assert pool.classes[pool.codes[5]] == "QSO"
    with LabelStore(":memory:", catalogue_fingerprint=catalogue.fingerprint) as store:
        store.append_many("label", ids[:3], "Star", rows=[0, 1, len(catalogue)], **ADA)
        with pytest.warns(ArmillaryWarning, match="do not hold their ids"):
            pool = Pool(store, catalogue)  # a row out of range
        assert np.flatnonzero(pool.labelled).tolist() == [0, 1, 2]


def test_a_wrong_row_after_good_ones_places_every_row_again(catalogue, tmp_path):
    ids = catalogue.ids
    with LabelStore(tmp_path / "labels.sqlite",
                    catalogue_fingerprint=catalogue.fingerprint) as store:
        store.append_many("label", ids[:50], "Star", rows=np.arange(50), **ADA)
        pool = Pool(store, catalogue)
        assert pool._took_rows
        store.append("unsure", ids[60], row=61, **ADA)  # a wrong row: caught
        with pytest.warns(ArmillaryWarning, match="do not hold their ids"):
            assert pool.refresh()
        assert np.flatnonzero(pool.labelled).tolist() == list(range(50))
        assert np.flatnonzero(pool.unsure).tolist() == [60]
        assert pool.changed.tolist() == [*range(50), 60]
        assert not pool.refresh()


@pytest.mark.parametrize(("n", "strings"), [(500, False), (1500, True), (2500, False),
                                            (2500, True)])
def test_recorded_rows_of_a_sessions_store_are_taken_and_checked(tmp_path, n, strings):
    values = np.arange(n) * 7 - 3
    ids = np.char.add("SRC J", values.astype(str)) if strings else values
    path = tmp_path / "cat.parquet"
    Table({"ID": ids, "r": np.zeros(n)}).write(path)
    for id_column in ("ID", None):
        cat = open_catalogue(path, id_column=id_column, cache_dir=tmp_path / str(id_column))
        picks = [n - 1, 0, 7, 7, n // 2]
        assert cat.ids_at(picks) == [cat.id_at(p) for p in picks]
        with pytest.raises(IndexError, match=f"row {n} is outside"):
            cat.ids_at([0, n])
        with LabelStore(":memory:", catalogue_fingerprint=catalogue_identity(cat)) as store:
            store.append_many("label", cat.ids[[n - 1, 0, 7]], "Star", rows=[n - 1, 0, 7],
                              **ADA)
            pool = Pool(store, cat)
            assert pool._took_rows
            assert np.flatnonzero(pool.labelled).tolist() == [0, 7, n - 1]
            store.append("skip", cat.ids[8], row=9, **ADA)  # the sample reads the ids right
            with pytest.warns(ArmillaryWarning, match="do not hold their ids"):
                pool.refresh()
            assert np.flatnonzero(pool.skipped).tolist() == [8]
