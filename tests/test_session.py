"""Tests of armillary.Session on a real FITS catalogue and real SQLite label stores."""

from __future__ import annotations

import math
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.validation import check_is_fitted

from armillary import Candidate, Catalogue, LabelStore, Session, datasets, open_catalogue
from armillary.errors import (
    ArmillaryError,
    ColumnNotFoundError,
    UnknownClassError,
    UnknownIdError,
)
from armillary.learners import make_learner
from helpers import human_events, label_rows

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def label_each_class(session, rows_of_each_class, truth, per_class, seed=0) -> list:
    rows = rows_of_each_class(per_class, seed)
    return [i for name in rows for i in label_rows(session, rows[name], truth)]


def store_events(path: Path) -> int:
    with LabelStore(path) as store:
        return human_events(store)


# -- construction -----------------------------------------------------------------------


def test_issue_signature_builds_a_session(own_catalogue, truth):
    with Session(
        own_catalogue,
        classes=["Star", "Galaxy", "QSO"],
        features=["u - g", "g - r", "r - i", "i - z", "w1 - w2"],
        label_column="labels",
        label_map={0: "Star", 1: "Galaxy", 2: "QSO"},
        store=None,
        learner="random-forest",
        strategy="margin",
        extra_columns=["redshift", "Lx"],
        image_columns=["thumbnail"],
        random_state=0,
    ) as session:
        assert session.classes == ["Star", "Galaxy", "QSO"]
        assert session.features == ["u - g", "g - r", "r - i", "i - z", "w1 - w2"]
        assert (session.strategy, session.random_state) == ("margin", 0)
        assert session.extra_columns == ["redshift", "Lx"]
        assert session.image_columns == ["thumbnail"]
        assert len(session) == len(own_catalogue) == 3000
        assert session.counts == {
            "labelled": 0,
            "unsure": 0,
            "skipped": 0,
            "held_out": 22,
            "test": 0,
            "pool": 3000,
        }
        assert session.model_version == 0
        # store=None: one SQLite file beside the catalogue's cache.
        expected = own_catalogue.cache_path.parent / "sky.labels.sqlite"
        assert Path(session.store.path) == expected
        assert expected.is_file()
        # The catalogue's own labels are mapped through label_map, and are true ones.
        known = session.catalogue_labels()
        assert 0 < len(known) < 3000
        assert set(known["label"]) == {"Star", "Galaxy", "QSO"}
        positions = own_catalogue.index_of(known["id"].to_numpy())
        assert list(known["label"]) == list(truth[positions])
        assert (known["provenance"] == "catalogue").all()
        assert isinstance(session.next(), Candidate)


def test_catalogue_labels_are_not_trained_on(make_session):
    session = make_session()
    assert session.catalogue_labels()["label"].nunique() == 3
    assert session.refresh() == 0
    assert session.labels.empty
    assert session.next().score is None


@pytest.mark.parametrize("as_str", [True, False])
def test_a_path_opens_the_catalogue(make_session, catalogue, catalogue_path, as_str):
    session = make_session(str(catalogue_path) if as_str else catalogue_path)
    assert isinstance(session.catalogue, Catalogue)
    assert session.catalogue is not catalogue
    assert session.catalogue.source == catalogue.source
    assert len(session) == len(catalogue)
    candidate = session.next()
    assert catalogue.position(candidate.id) == candidate.position


# -- reading candidates ------------------------------------------------------------------


def test_next_before_a_model(session, catalogue):
    candidate = session.next()
    assert isinstance(candidate, Candidate)
    assert catalogue.id_at(candidate.position) == candidate.id
    assert candidate.score is None
    assert candidate.model_version == 0
    assert list(candidate.values) == ["redshift", "Lx"]
    row = catalogue.row(candidate.position, ["redshift", "Lx"])
    assert candidate.values["redshift"] == row["redshift"]
    assert set(candidate.images) == {"thumbnail"}
    # Asking again without acting proposes the same row.
    assert session.next().id == candidate.id


def test_missing_values_stay_nan(session, catalogue):
    lx = catalogue.column("Lx")
    assert 0.5 < np.isnan(lx).mean() < 1.0  # the example has Lx for a few rows only
    missing = int(np.flatnonzero(np.isnan(lx))[0])
    present = int(np.flatnonzero(~np.isnan(lx))[0])
    assert math.isnan(session.candidate(missing).values["Lx"])
    assert session.candidate(present).values["Lx"] == pytest.approx(float(lx[present]))


def test_images_resolve_to_existing_png_files(session, catalogue, catalogue_path):
    thumbnails = catalogue.column("thumbnail")
    with_image = int(np.flatnonzero(thumbnails != "")[-1])
    without = int(np.flatnonzero(thumbnails == "")[0])
    path = session.candidate(with_image).images["thumbnail"]
    assert isinstance(path, Path)
    assert path.is_absolute()
    assert path.parent == catalogue_path.parent / "sky_thumbnails"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert session.candidate(without).images == {"thumbnail": None}


def test_next_is_none_when_the_pool_is_done(make_session, tmp_path):
    tiny = datasets.make_catalogue(n=4, seed=1, path=tmp_path / "tiny.fits", thumbnails=0)
    session = make_session(tiny, store=tmp_path / "tiny.sqlite", label_column=None, label_map=None)
    seen = []
    for action in ("label", "unsure", "skip", "label"):
        candidate = session.next()
        assert candidate.id not in seen
        seen.append(candidate.id)
        if action == "label":
            session.label(candidate.id, "Star")
        else:
            getattr(session, action)(candidate.id)
    assert session.next() is None
    assert session.query(3) == []
    assert session.counts == {
        "labelled": 2, "unsure": 1, "skipped": 1, "held_out": 0, "test": 0, "pool": 4,
    }  # fmt: skip


# -- acting ------------------------------------------------------------------------------


def test_label_writes_an_event_with_annotator_and_utc_time(session):
    candidate = session.next()
    before = datetime.now(UTC)
    event = session.label(candidate.id, "Galaxy", note="edge-on")
    after = datetime.now(UTC)
    assert (event.row_id, event.kind, event.label) == (candidate.id, "label", "Galaxy")
    assert event.annotator == "ada"
    assert event.session_id == session.session_id
    assert event.note == "edge-on"
    assert event.time.utcoffset().total_seconds() == 0
    assert before <= event.time <= after
    assert human_events(session.store) == 1

    labels = session.labels
    assert list(labels.columns[:4]) == ["id", "label", "annotator", "time"]
    assert labels[["id", "label", "annotator"]].values.tolist() == [[candidate.id, "Galaxy", "ada"]]
    assert labels["time"].iloc[0] == event.time
    assert str(labels["time"].dt.tz) == "UTC"
    assert session.counts["labelled"] == 1
    assert session.next().id != candidate.id


def test_unsure_and_skip_are_not_labels_and_not_proposed_again(session):
    first = session.next()
    session.unsure(first.id)
    second = session.next()
    assert second.id != first.id
    session.skip(second.id)
    third = session.next()
    assert third.id not in {first.id, second.id}
    assert session.labels.empty
    assert session.counts == {
        "labelled": 0,
        "unsure": 1,
        "skipped": 1,
        "held_out": session.counts["held_out"],
        "test": 0,
        "pool": 3000,
    }
    assert not {first.id, second.id} & set(session.query(100))
    kinds = session.store.current().set_index("id")["kind"]
    assert (kinds[first.id], kinds[second.id]) == ("unsure", "skip")


def test_undo_reverses_the_last_act(session):
    first = session.next()
    session.label(first.id, "Star")
    second = session.next()
    session.unsure(second.id)
    assert session.next().id not in {first.id, second.id}

    undone = session.undo()
    assert (undone.row_id, undone.kind) == (second.id, "unsure")
    assert session.counts["unsure"] == 0
    # Back in the pool (where it ranks depends on the cold-start queue of the moment).
    assert second.id in session.query(len(session))

    undone = session.undo()
    assert (undone.row_id, undone.kind, undone.label) == (first.id, "label", "Star")
    assert session.labels.empty
    assert session.counts["labelled"] == 0
    assert first.id in session.query(len(session))

    events = human_events(session.store)
    assert session.undo() is None
    assert human_events(session.store) == events


def test_undo_brings_back_an_earlier_label(session):
    row_id = session.next().id
    session.label(row_id, "Star")
    session.label(row_id, "QSO")
    assert session.labels["label"].tolist() == ["QSO"]
    session.undo()
    assert session.labels[["id", "label"]].values.tolist() == [[row_id, "Star"]]
    assert session.counts["labelled"] == 1
    assert session.next().id != row_id


def test_undo_with_nothing_to_undo_returns_none(session):
    assert session.undo() is None
    assert human_events(session.store) == 0


# -- bad input ---------------------------------------------------------------------------


def test_unknown_class_is_refused_and_nothing_written(session):
    candidate = session.next()
    session.label(candidate.id, "Star")
    with pytest.raises(UnknownClassError, match=r"'Planet'.*Star, Galaxy, QSO"):
        session.label(session.next().id, "Planet")
    assert human_events(session.store) == 1
    assert session.counts["labelled"] == 1


@pytest.mark.parametrize("action", ["label", "unsure", "skip"])
def test_unknown_id_is_refused_and_nothing_written(session, action):
    args = ("Star",) if action == "label" else ()
    missing = "SDSS J000000.00+000000.0_9999999"
    with pytest.raises(UnknownIdError, match=re.escape(repr(missing))):
        getattr(session, action)(missing, *args)
    with pytest.raises(UnknownIdError, match="42"):
        getattr(session, action)(42, *args)  # this catalogue's ids are strings
    assert human_events(session.store) == 0
    assert session.counts["labelled"] + session.counts["unsure"] + session.counts["skipped"] == 0


@pytest.fixture
def used_store(make_session, store_path):
    """A store path that already holds one event."""
    first = make_session()
    first.label(first.next().id, "Star")
    first.close()
    assert store_events(store_path) == 1
    return store_path


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"extra_columns": ["redshift", "Lxx"]}, ColumnNotFoundError, "'Lxx'"),
        ({"image_columns": ["thumb"]}, ColumnNotFoundError, "'thumb'"),
        ({"features": ["u - g", "g - rr"]}, ColumnNotFoundError, "'rr'"),
        ({"label_column": "label"}, ColumnNotFoundError, "'label'"),
        (
            {"strategy": "entropyy"},
            ValueError,
            "'entropyy'.*least-confidence, margin, entropy, random",
        ),
        ({"learner": "forest"}, ValueError, "'forest'.*decision-tree.*random-forest"),
        ({"learner": object()}, TypeError, "predict_proba"),
        ({"label_map": {0: "Star", 1: "Galaxy", 2: "Quasar"}}, UnknownClassError, "Quasar"),
        ({"classes": ["Star"]}, ArmillaryError, "at least two classes"),
        ({"classes": ["Star", "Star"]}, ArmillaryError, "unique"),
        ({"features": []}, ArmillaryError, "needs features"),
    ],
)
def test_bad_construction_is_refused_and_nothing_written(
    make_session, used_store, overrides, error, message
):
    with pytest.raises(error, match=message):
        make_session(**overrides)
    assert store_events(used_store) == 1


def test_unknown_learner_lists_valid_names(make_session):
    with pytest.raises(ValueError, match="valid names: ") as info:
        make_session(learner="svm")
    for name in ("decision-tree", "extra-trees", "knn", "logistic-regression", "random-forest"):
        assert name in str(info.value)


# -- learning ----------------------------------------------------------------------------


def test_labels_teach_the_learner(make_session, rows_of_each_class, truth):
    session = make_session(queue_size=20)
    labelled = set(label_each_class(session, rows_of_each_class, truth, per_class=10))
    version = session.refresh()
    assert version >= 1
    assert session.model_version == version
    # Labels on held-out (validation/test) rows are stored but never trained on.
    held = {session.catalogue.id_at(int(p)) for p in session.evaluation.held_out}
    trained = len(labelled - held)
    assert len(session.training_data()[0]) == trained
    assert f"trained on {trained} labels" in session.status_text()

    candidate = session.next()
    assert candidate.score is not None
    assert 0.0 <= candidate.score <= 1.0
    assert candidate.model_version == session.model_version
    assert candidate.id not in labelled

    picks = session.query(5)
    assert len(picks) == len(set(picks)) == 5
    assert not set(picks) & labelled
    assert picks[0] == candidate.id

    # More rows than the queue holds: the pool is ranked again, still without labels.
    many = session.query(60)
    assert len(many) == len(set(many)) == 60
    assert not set(many) & labelled
    assert many[:5] == picks
    # Asking for the whole pool gives exactly the unlabelled rows, once each.
    everything = session.query(len(session))
    assert len(everything) == len(set(session.catalogue.ids) - labelled - held)
    assert set(everything) == set(session.catalogue.ids) - labelled - held

    session.label(candidate.id, truth[candidate.position])
    assert session.refresh() > version
    assert session.model_version > version
    assert candidate.id not in session.query(60)


def test_queue_ranks_by_margin(make_session, catalogue, rows_of_each_class, truth):
    session = make_session(learner="logistic-regression")
    label_each_class(session, rows_of_each_class, truth, per_class=8, seed=3)
    session.refresh()
    positions, codes = session.training_data()
    assert sorted(truth[positions]) == sorted(["Star", "Galaxy", "QSO"] * 8)
    # The same learner, fitted here on the same labels, ranks the pool by margin.
    # Missing values (infrared non-detections) get the labelled rows' medians.
    X = catalogue.to_numpy(session.features, dtype=np.float32)
    medians = np.nanmedian(X[positions], axis=0)
    X = np.where(np.isfinite(X), X, medians)
    model = make_learner("logistic-regression", 0).fit(X[positions], codes)
    top = np.sort(model.predict_proba(X), axis=1)[:, ::-1]
    margin = 1.0 - (top[:, 0] - top[:, 1])
    margin[positions] = -np.inf
    margin[session.evaluation.held_out] = -np.inf
    expected = np.argsort(-margin, kind="stable")[:5]
    candidate = session.next()
    assert candidate.score == pytest.approx(margin.max(), rel=1e-5)
    assert session.query(5) == [catalogue.id_at(int(p)) for p in expected]


def test_background_thread_trains_without_refresh(make_session, rows_of_each_class, truth):
    session = make_session()
    assert session.model_version == 0
    label_each_class(session, rows_of_each_class, truth, per_class=3)
    assert session.wait_for_model(1, timeout=60)
    assert session.model_version >= 1
    assert session.next().score is not None


class GatedTree(DecisionTreeClassifier):
    """A real decision tree whose ``fit`` waits until the test opens ``gate``.

    (At most 30 s: a session whose ``next()`` waited for training would then see a model.)
    """

    gate = threading.Event()
    fitting = threading.Event()

    def fit(self, X, y, sample_weight=None, check_input=True):
        type(self).fitting.set()
        type(self).gate.wait(timeout=30)
        return super().fit(X, y, sample_weight=sample_weight, check_input=check_input)


def test_next_does_not_wait_for_training(make_session, rows_of_each_class, truth):
    GatedTree.gate.clear()
    GatedTree.fitting.clear()
    session = make_session(learner=GatedTree(random_state=0))
    try:
        label_each_class(session, rows_of_each_class, truth, per_class=2)
        assert GatedTree.fitting.wait(30), "the background trainer never started a fit"
        candidate = session.next()
        session.label(candidate.id, truth[candidate.position])
        following = session.next()
        assert following.id != candidate.id
        # Training is still under way: the answers came from the old (cold) queue.
        assert GatedTree.fitting.is_set()
        assert not GatedTree.gate.is_set()
        assert session.model_version == 0
        assert (following.model_version, following.score) == (0, None)
    finally:
        GatedTree.gate.set()
    assert session.wait_for_model(1, timeout=60)
    assert session.next().model_version >= 1


def test_the_users_learner_is_never_fitted(make_session, rows_of_each_class, truth):
    mine = DecisionTreeClassifier(max_depth=3, random_state=7)
    session = make_session(learner=mine)
    label_each_class(session, rows_of_each_class, truth, per_class=5)
    assert session.refresh() >= 1
    with pytest.raises(NotFittedError):
        check_is_fitted(mine)
    assert mine.get_params()["max_depth"] == 3
    assert session.next().score is not None


# -- cold start --------------------------------------------------------------------------


def test_one_class_gives_no_model_but_candidates(make_session, rows_of_each_class, truth):
    session = make_session()
    stars = rows_of_each_class(6)["Star"]
    labelled = set(label_rows(session, stars, truth))
    assert session.refresh() == 0
    assert session.model_version == 0
    assert "No model yet" in session.status_text()
    candidate = session.next()
    assert candidate is not None
    assert candidate.score is None
    assert candidate.id not in labelled
    picks = session.query(5)
    assert len(set(picks)) == 5
    assert not set(picks) & labelled


def test_cold_start_order_is_seeded(make_session, tmp_path):
    def first_ids(random_state: int, name: str) -> list:
        session = make_session(random_state=random_state, store=tmp_path / name)
        ids = session.query(10)
        assert session.next().id == ids[0]
        return ids

    same_a, same_b = first_ids(0, "a.sqlite"), first_ids(0, "b.sqlite")
    other = first_ids(1, "c.sqlite")
    assert same_a == same_b
    assert other != same_a
    assert len(set(same_a)) == 10


# -- persistence -------------------------------------------------------------------------


def test_labels_survive_close_and_a_new_session(make_session, catalogue_path, tmp_path, truth):
    cache_dir = tmp_path / "cache"
    first = make_session(open_catalogue(catalogue_path, cache_dir=cache_dir), store=None)
    labelled = {}
    for _ in range(4):
        candidate = first.next()
        labelled[candidate.id] = truth[candidate.position]
        first.label(candidate.id, labelled[candidate.id])
    unsure = first.next().id
    first.unsure(unsure)
    skipped = first.next().id
    first.skip(skipped)
    first.close()
    assert (cache_dir / "sky.labels.sqlite").is_file()

    again = make_session(open_catalogue(catalogue_path, cache_dir=cache_dir), store=None)
    assert dict(zip(again.labels["id"], again.labels["label"], strict=True)) == labelled
    assert set(again.labels["annotator"]) == {"ada"}
    assert again.counts == {
        "labelled": 4,
        "unsure": 1,
        "skipped": 1,
        "held_out": again.counts["held_out"],
        "test": 0,
        "pool": 3000,
    }
    acted = {*labelled, unsure, skipped}
    assert again.next().id not in acted
    assert not set(again.query(50)) & acted
    assert again.undo() is None  # another session's acts are not this one's to undo
    assert human_events(again.store) == 6


def test_the_learning_curve_never_steps_back_when_refits_race(
    make_session, rows_of_each_class, truth
):
    """A blocking refresh() racing the background trainer: rows stay in version order."""
    session = make_session(queue_size=20)
    rows = rows_of_each_class(6, seed=5)
    order = [int(r) for group in zip(*rows.values(), strict=True) for r in group]
    for pos in order:
        label_rows(session, [pos], truth)
        session.refresh()  # the background trainer is woken by the same label
    assert session.wait_for_model(session.model_version)
    rounds = session.metrics[session.metrics["split"] == "validation"]
    versions = rounds["model_version"].to_numpy()
    assert len(versions) >= 2
    assert (np.diff(versions) > 0).all()
    assert rounds["round"].tolist() == list(range(1, len(rounds) + 1))
    # A model that arrives after a newer one was scored is not logged.
    before = len(session.metrics)
    session.evaluation.on_model(session.model, int(versions[-1]))
    assert len(session.metrics) == before


def test_model_and_version_are_read_together(make_session, rows_of_each_class, truth):
    session = make_session(queue_size=20)
    assert session.model_and_version() == (None, 0)
    label_each_class(session, rows_of_each_class, truth, per_class=3)
    version = session.refresh()
    model, seen = session.model_and_version()
    assert model is session.model
    assert seen == version >= 1
