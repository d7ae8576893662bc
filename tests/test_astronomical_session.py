"""A session from an AstronomicAL configuration: settings, labels, overrides, bad input."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from armillary.astronomical import session_from_astronomical
from armillary.errors import (
    ArmillaryWarning,
    CatalogueNotFoundError,
    ColumnNotFoundError,
    LabelFileError,
    UnknownIdError,
)
from helpers import ASTRONOMICAL_CONFIG as CONFIG

FAST = {"learner": "decision-tree"}  # where the learner is not under test
# Tests that expect a warning catch it with pytest.warns; elsewhere it is no news.
pytestmark = pytest.mark.filterwarnings("ignore::armillary.errors.ArmillaryWarning")


@pytest.fixture
def sessions():
    """Make sessions through this; every one is closed at the end of the test."""
    made = []

    def make(*args, **kwargs):
        made.append(session_from_astronomical(*args, **kwargs))
        return made[-1]

    yield make
    for session in made:
        session.close()


# -- the example configuration (../shared) ---------------------------------------------


@pytest.fixture
def config_catalogue(config, tmp_path):
    """A FITS file holding the configuration's ids and columns, and 20 rows more (with
    catalogue labels); its image column holds URLs, as AstronomicAL's example did."""
    ids = [*config["classifiers"]["0"]["id"], *(f"extra-{i}" for i in range(20))]
    rng = np.random.default_rng(0)
    table = Table({"ID": ids})
    for band in config["features_for_training"]:
        table[band] = rng.normal(20, 1, len(ids))
    table["Lx"] = rng.normal(43, 1, len(ids))
    table["redshift"] = rng.uniform(0, 3, len(ids))
    table["png_path_DR16"] = [f"https://skyserver.example/{i}.png" for i in range(len(ids))]
    codes = np.full(len(ids), -1, dtype=np.int16)
    codes[-20:] = np.arange(20) % 3
    table["labels"] = codes
    table.write(tmp_path / "astronomical.fits")
    return tmp_path / "astronomical.fits"


def test_the_example_configuration_sets_up_the_session(sessions, config, config_catalogue):
    with pytest.warns(ArmillaryWarning, match=r"\['png_path_DR16'\] hold URLs"):
        session = sessions(CONFIG, config_catalogue)
    bands = config["features_for_training"]
    pairs = [f"{a}-{b}" for a, b in itertools.combinations(bands, 2)]
    assert len(bands) == 11
    assert len(pairs) == 55
    assert session.features == bands + pairs
    assert session.classes == ["Star", "Galaxy", "QSO"]
    assert session.colours == ["#ff7f0e", "#2ca02c", "#d62728"]
    assert session.label_column == "labels"
    assert session.label_map == {0: "Star", 1: "Galaxy", 2: "QSO"}
    assert session.catalogue_labels()["id"].tolist() == [f"extra-{i}" for i in range(20)]
    assert session.learner == "random-forest"
    assert session.strategy == "least-confidence"
    assert session.settings.scheme == "one-vs-rest"
    assert session.settings.scale is None
    assert session.random_state == 0
    assert session.extra_columns == ["Lx", "redshift"]
    assert session.image_columns == []
    values = session.catalogue.to_numpy(["g-j", "g", "j"], dtype=np.float64)
    np.testing.assert_allclose(values[:, 0], values[:, 1] - values[:, 2], rtol=1e-6)


def test_the_example_labels_are_imported_once(sessions, config, config_catalogue, tmp_path):
    entry = config["classifiers"]["0"]
    names = {int(k): v for k, v in config["labels_to_strings"].items()}
    truth = dict(zip(map(str, entry["id"]), entry["y"], strict=True))
    expected = Counter(names[y] for y in truth.values() if y != -1)
    unsure = sum(y == -1 for y in truth.values())
    store = tmp_path / "labels.sqlite"

    session = sessions(CONFIG, config_catalogue, store=store, **FAST)
    labels = session.labels
    assert Counter(labels["label"]) == expected
    assert {str(i): names[truth[str(i)]] for i in labels["id"]} == dict(
        zip(labels["id"].astype(str), labels["label"], strict=True)
    )
    assert session.counts["labelled"] == sum(expected.values())
    assert session.counts["unsure"] == unsure
    assert set(labels["annotator"]) == {session.annotator}
    events = len(session.store.events())
    session.close()

    again = sessions(CONFIG, config_catalogue, store=store, **FAST)
    assert len(again.store.events()) == events  # nothing written twice
    assert Counter(again.labels["label"]) == expected
    assert again.counts["labelled"] == sum(expected.values())


def test_overrides_win_over_the_example(sessions, config_catalogue):
    # image_columns given: the URL column is not looked at, so no warning
    session = sessions(
        CONFIG, config_catalogue, import_labels=False, learner="extra-trees",
        strategy="margin", scheme="multiclass", scale="standard", features=["g", "j"],
        image_columns=[], random_state=7,
    )  # fmt: skip
    assert session.learner == "extra-trees"
    assert session.strategy == "margin"
    assert (session.settings.scheme, session.settings.scale) == ("multiclass", "standard")
    assert session.features == ["g", "j"]
    assert session.random_state == 7
    assert session.labels.empty
    assert session.counts["labelled"] == 0


# -- configurations written here (no ../shared needed) ---------------------------------


def write_run(root: Path, **changes) -> Path:
    """An AstronomicAL folder: ``configs/run.json`` and ``data/sky.fits`` (40 rows)."""
    ids = [f"s{i}" for i in range(40)]
    rng = np.random.default_rng(1)
    table = Table({"ID": ids, "u": rng.normal(21, 1, 40), "g": rng.normal(20, 1, 40),
                   "r": rng.normal(19, 1, 40), "labels": np.full(40, -1, dtype=np.int16),
                   "img": [f"cutouts/{i}.png" for i in ids],
                   "url": [f"http://example.org/{i}.png" for i in ids]})  # fmt: skip
    (root / "data").mkdir(exist_ok=True)
    (root / "configs").mkdir(exist_ok=True)
    if not (root / "data" / "sky.fits").exists():
        table.write(root / "data" / "sky.fits")
    config = {
        "dataset_filepath": "data/sky.fits", "id_col": "ID", "label_col": "labels",
        "labels_to_strings": {"0": "Star", "1": "Galaxy", "2": "QSO", "-1": "Unknown"},
        "label_colours": {"0": "#000001", "1": "#000002", "2": "#000003", "-1": "#999999"},
        "labels_to_train": ["Star", "Galaxy", "QSO"],
        "extra_info_cols": ["r", "Lx"], "extra_image_cols": ["img", "url"],
        "features_for_training": ["u", "g", "r"], "scale_data": True,
        "feature_generation": [["subtract (a-b)", 2], ["divide (a/b)", 2]],
        "test_set_file": False,
        "classifiers": {
            "0": {"classifier": ["KNN", "DTree"], "query": ["Margin Sampling"] * 2,
                  "id": ["s0", "s1", "s2", "s3"], "y": [0, 1, 2, -1]},
            "1": {"classifier": ["KNN", "DTree"], "query": ["Margin Sampling"] * 2,
                  "id": ["s0", "s4"], "y": [0, 1]},
        },
    }  # fmt: skip
    config.update(changes)
    path = root / "configs" / "run.json"
    path.write_text(json.dumps(config))
    return path


def test_a_committee_configuration(sessions, tmp_path):
    path = write_run(tmp_path)
    with pytest.warns(ArmillaryWarning) as caught:
        session = sessions(path, store=tmp_path / "labels.sqlite")
    messages = " ".join(str(w.message) for w in caught)
    assert "extra_info_cols ['Lx'] are not columns" in messages
    assert "extra_image_cols ['url'] hold URLs" in messages
    assert session.catalogue.source == tmp_path / "data" / "sky.fits"  # found from configs/
    assert session.features == ["u", "g", "r", "u-g", "u-r", "g-r", "u/g", "u/r", "g/r"]
    assert session.learner == ["knn", "decision-tree"]
    assert session.strategy == "vote-entropy"  # modAL's Committee, as AstronomicAL queried
    assert session.settings.scale == "robust"
    assert session.colours == ["#000001", "#000002", "#000003"]
    assert (session.extra_columns, session.image_columns) == (["r"], ["img"])
    assert dict(zip(session.labels["id"], session.labels["label"], strict=True)) == {
        "s0": "Star", "s1": "Galaxy", "s2": "QSO", "s4": "Galaxy",
    }  # fmt: skip
    assert session.counts["unsure"] == 1


def test_different_classifier_tabs_use_the_first(sessions, tmp_path):
    path = write_run(tmp_path)
    config = json.loads(path.read_text())
    config["classifiers"]["1"].update(classifier=["RForest"], query=["Entropy Sampling"])
    path.write_text(json.dumps(config))
    with pytest.warns(ArmillaryWarning, match=r"classifiers \['1'\] differ"):
        session = sessions(path, import_labels=False)
    assert session.learner == ["knn", "decision-tree"]


def test_committee_queries_and_no_label_column(sessions, tmp_path):
    tab = {"classifier": ["RForest", "ETrees"], "query": ["KL Max Disagreement"] * 2}
    path = write_run(tmp_path, classifiers={"0": tab}, label_col="No Labels")
    with pytest.warns(ArmillaryWarning):
        session = sessions(path, learner=["decision-tree", "knn"])
    assert session.learner == ["decision-tree", "knn"]  # the override
    assert session.strategy == "max-disagreement"
    assert (session.label_column, session.label_map) == (None, {})
    assert session.labels.empty


def test_the_test_set_is_imported_less_rows_trained_on(sessions, tmp_path):
    path = write_run(tmp_path, test_set_file=True)
    (tmp_path / "data" / "test_set.json").write_text(
        json.dumps({"s0": 1, "s10": 0, "s11": 2, "s12": -1})
    )
    with pytest.warns(ArmillaryWarning, match="1 test-set rows were trained on"):
        session = sessions(path, store=tmp_path / "labels.sqlite", **FAST)
    test = session.test_set()
    assert dict(zip(test["id"], test["label"], strict=True)) == {"s10": "Star", "s11": "QSO"}
    assert session.counts["test"] == 2
    assert session.counts["unsure"] == 2  # s3 (classifiers) and s12 (test set)
    assert session.labels.set_index("id").loc["s0", "label"] == "Star"
    events = len(session.store.events())
    session.close()
    with pytest.warns(ArmillaryWarning):
        again = sessions(path, store=tmp_path / "labels.sqlite", **FAST)
    assert len(again.store.events()) == events


def test_a_catalogue_passed_in_wins(sessions, tmp_path):
    path = write_run(tmp_path, dataset_filepath="data/elsewhere.fits")
    with pytest.warns(ArmillaryWarning):
        session = sessions(path, tmp_path / "data" / "sky.fits", **FAST)
    assert session.catalogue.id_column == "ID"
    assert len(session.labels) == 4


BAD = [
    ("not json {", LabelFileError, "is not JSON"),
    ({"id_col": "ID"}, LabelFileError, "has no 'classifiers' object"),
    ({"features_for_training": ["u", "z"]}, ColumnNotFoundError,
     r"features_for_training \['z'\] are not columns"),
    ({"feature_generation": [["power (a^b)", 2]]}, LabelFileError,
     "feature_generation.*unknown combination 'power'"),
    ({"classifiers": {"0": {"classifier": ["SVM"], "query": ["Margin Sampling"]}}},
     LabelFileError, r"classifiers\['0'\].classifier 'SVM' is unknown; known names: RForest"),
    ({"classifiers": {"0": {"classifier": ["RForest"], "query": ["Guess"]}}},
     LabelFileError, r"classifiers\['0'\].query 'Guess' is unknown"),
    ({"classifiers": {"0": {"classifier": ["DTree"], "query": ["Random"],
                            "id": ["s1", "nobody"], "y": [0, 1]}}},
     UnknownIdError, "nobody"),
    ({"classifiers": {"0": {"classifier": ["DTree"], "query": ["Random"],
                            "id": ["s1"], "y": [7]}}},
     LabelFileError, "label 7 is not -1"),
    ({"dataset_filepath": "data/missing.fits"}, CatalogueNotFoundError,
     r"dataset_filepath 'data/missing.fits' is not at .* pass catalogue="),
]  # fmt: skip


@pytest.mark.parametrize(("change", "error", "match"), BAD)
def test_bad_configurations_write_nothing(tmp_path, change, error, match):
    path = write_run(tmp_path)
    if isinstance(change, str):
        path.write_text(change)
    elif "id_col" in change:
        path.write_text(json.dumps(change))
    else:
        path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    store = tmp_path / "labels.sqlite"
    with pytest.raises(error, match=match) as raised:
        session_from_astronomical(path, store=store)
    if error is not UnknownIdError:
        assert str(path) in str(raised.value)  # names the file
    assert not store.exists()
