"""Pool bookkeeping on a real catalogue: masks, training and test sets, pool views.

The property tests drive random sequences of acts, undos and redos through a store and
check the masks against the plain-Python model of ``test_store_model.py``, and a pool
refreshed after every act against one built from scratch.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from armillary import datasets, open_catalogue
from armillary.errors import ArmillaryError, UnknownIdError
from armillary.pool import LABELLED, STATUS_NAMES, TEST, UNLABELLED, UNSURE, Pool, PoolView
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

ROW_OPS = st.lists(
    st.tuples(st.sampled_from(["label", "unsure", "skip", "note", "test_label", "bulk_label",
                               "undo", "redo", "undo"]),
              st.lists(st.integers(0, 7), min_size=1, max_size=4),
              st.sampled_from(CLASSES), st.sampled_from(ACTORS)),
    max_size=30,
)


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
