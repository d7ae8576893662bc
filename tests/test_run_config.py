"""Run configurations: save a session's set-up, make the same session again from it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from modAL.uncertainty import margin_sampling
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from armillary import Session, datasets, open_catalogue
from armillary.run_config import ConfigError
from helpers import label_rows, pool_rows


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder: a small catalogue (its cache beside it)."""
    folder = tmp_path_factory.mktemp("project")
    datasets.make_catalogue(n=1500, seed=3, path=folder / "sky.fits", thumbnails=0)
    return folder


@pytest.fixture
def folder(project, tmp_path):
    """A fresh copy of the project, so each test has its own store and configuration."""
    copy = tmp_path / "project"
    shutil.copytree(project, copy)
    return copy


@pytest.fixture
def opened():
    sessions = []
    yield sessions
    for s in sessions:
        s.close()


def make(opened, source, **kwargs):
    session = Session(source, **kwargs)
    opened.append(session)
    return session


SETUP = {
    "classes": ["Star", "Galaxy", "QSO"],
    "features": ["u - g", "g - r", "r - i", "gi", "r_psf_model"],
    "label_column": "labels",
    "label_map": {0: "Star", 1: "Galaxy", 2: "QSO"},
    "extra_columns": ["RA", "DEC", "r"],
    "cutouts": {"LS": "https://www.legacysurvey.org/viewer/cutout.jpg?ra={RA}&dec={DEC}"},
    "random_state": 7,
    "axes": [("g - r", "r - i"), ("r", "gi")],
    "queue_size": 64,
    "scale": "robust",
    "validation": 0.25,
    "test": 0.1,
}


def catalogue_at(path):
    return open_catalogue(path, id_column="ID").derive("gi", "g - i")


def forest_session(opened, folder):
    """The set-up, with a small forest object and modAL's margin, on ``folder``'s files."""
    return make(
        opened,
        catalogue_at(folder / "sky.fits"),
        **SETUP,
        learner=RandomForestClassifier(n_estimators=7, max_depth=4),
        strategy=margin_sampling,
        store=folder / "run.labels.sqlite",
    )


def test_a_saved_run_comes_back_the_same(folder, opened):
    first = forest_session(opened, folder)
    truth = first.catalogue.column("true_label")
    names = np.array(first.classes)[truth]
    rows = pool_rows(first, names, per_class=3)
    label_rows(first, np.concatenate(list(rows.values())), names)
    path = first.save_config(folder / "run.json")

    written = json.loads(path.read_text())
    assert written["catalogue"]["path"] == "sky.fits"  # relative: the folder can move
    assert written["store"] == "run.labels.sqlite"
    assert written["catalogue"]["derived"] == {"gi": "g - i"}
    assert written["learner"] == {
        "estimator": {"import": "sklearn.ensemble._forest:RandomForestClassifier"},
        "params": {**written["learner"]["params"], "n_estimators": 7, "max_depth": 4},
    }
    assert written["strategy"] == {"import": "modAL.uncertainty:margin_sampling"}
    assert written["label_map"] == [[0, "Star"], [1, "Galaxy"], [2, "QSO"]]

    moved = folder.parent / "moved"
    first.close()
    shutil.move(folder, moved)
    again = Session.from_config(moved / "run.json")
    opened.append(again)
    assert again.catalogue.source == moved / "sky.fits"
    assert (again.classes, again.features) == (SETUP["classes"], SETUP["features"])
    assert again.label_map == SETUP["label_map"]
    assert again.extra_columns == SETUP["extra_columns"]
    assert again.settings.random_state == 7
    assert again.settings.queue_size == 64
    assert again.strategy is margin_sampling
    assert isinstance(again.learner, RandomForestClassifier)
    assert again.learner.get_params() == first.learner.get_params()
    assert again.cutouts[0].template == SETUP["cutouts"]["LS"]
    assert again.axes == SETUP["axes"]
    assert len(again.labels) == 9

    # The same labels and random state: the same model, the same ranking.
    replay = forest_session(opened, moved)
    again.refresh()
    replay.refresh()
    assert again.query(10) == replay.query(10)


def test_overrides_win(folder, opened):
    first = make(opened, catalogue_at(folder / "sky.fits"), **SETUP, store=folder / "a.sqlite")
    path = first.save_config(folder / "run.json")
    other = Session.from_config(path, learner="decision-tree", store=folder / "b.sqlite")
    opened.append(other)
    assert other.learner == "decision-tree"
    assert other.store.path == folder / "b.sqlite"
    assert len(other.labels) == 0


def test_a_pipeline_learner_is_recorded_with_its_steps(folder, opened):
    learner = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5))
    first = make(
        opened, catalogue_at(folder / "sky.fits"), **SETUP, learner=learner,
        store=folder / "a.sqlite",
    )  # fmt: skip
    again = Session.from_config(first.save_config(folder / "run.json"))
    opened.append(again)
    steps = again.learner.steps
    assert [type(est).__name__ for _, est in steps] == ["StandardScaler", "RandomForestClassifier"]
    assert steps[1][1].n_estimators == 5


def test_save_refuses_to_replace_a_file_and_what_it_cannot_record(folder, opened):
    first = make(opened, catalogue_at(folder / "sky.fits"), **SETUP, store=folder / "a.sqlite")
    path = first.save_config(folder / "run.json")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        first.save_config(path)
    first.save_config(path, overwrite=True)

    def local_strategy(learner, X, n_instances=1, **kw):
        return margin_sampling(learner, X, n_instances=n_instances)

    second = make(
        opened, catalogue_at(folder / "sky.fits"), **SETUP, strategy=local_strategy,
        store=folder / "b.sqlite",
    )  # fmt: skip
    with pytest.raises(ConfigError, match="no importable name"):
        second.save_config(folder / "other.json")
    assert not (folder / "other.json").exists()


def edit(path, change):
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda c: c["armillary"].update(format=99), "configuration format 99"),
        (lambda c: c.pop("features"), "has no 'features'"),
        (lambda c: c.update(colour_scheme="dark"), "unknown session settings ['colour_scheme']"),
        (lambda c: c["catalogue"].update(path="gone.fits"), "catalogue gone.fits is not at"),
        (lambda c: c.update(store="gone.sqlite"), "label store gone.sqlite is not at"),
        (lambda c: c.update(strategy={"import": "nowhere:pick"}), "cannot be imported"),
        (
            lambda c: c.update(learner={"estimator": {"import": "subprocess:Popen"}}),
            "subprocess:Popen is not a scikit-learn estimator; refused",
        ),
        (lambda c: c["catalogue"].update(identity="0" * 16), "is not the catalogue this run used"),
        (lambda c: c["catalogue"]["derived"].update(gi="g - nosuch"), "cannot derive"),
    ],
)
def test_bad_configurations_say_what_is_wrong(folder, opened, change, words):
    first = make(opened, catalogue_at(folder / "sky.fits"), **SETUP, store=folder / "a.sqlite")
    path = first.save_config(folder / "run.json")
    edit(path, change)
    with pytest.raises(ConfigError) as info:
        opened.append(Session.from_config(path))
    assert str(path) in str(info.value)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "no 'armillary' section"),
        (None, "no run configuration"),
    ],
)
def test_files_that_are_not_configurations(tmp_path, text, words):
    path = tmp_path / "run.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=words):
        Session.from_config(path)


def test_an_unknown_override_is_refused(folder, opened):
    first = make(opened, catalogue_at(folder / "sky.fits"), **SETUP, store=folder / "a.sqlite")
    path = first.save_config(folder / "run.json")
    with pytest.raises(ConfigError, match=r"unknown session settings \['learnr'\]"):
        Session.from_config(path, learnr="knn")
