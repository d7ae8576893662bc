"""Saving fitted models with skops and a manifest, and loading them back safely."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn
from numpy.testing import assert_array_equal
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import RobustScaler, StandardScaler
from sklearn.tree import DecisionTreeClassifier

import armillary
from armillary.errors import ArmillaryError
from armillary.model_io import (
    TREE_TYPES,
    ModelFileError,
    ModelVersionWarning,
    UntrustedModelError,
    load_model,
    read_manifest,
    save_model,
    untrusted_types,
)

MANIFEST = {
    "features": ["u - g", "g - r"],
    "classes": ["Star", "Galaxy"],
    "scheme": "multiclass",
    "strategy": "margin",
    "random_state": np.int64(0),
    "n_labels": np.int64(120),
    "model_version": 7,
}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return X[:400], y[:400], X[400:]


ESTIMATORS = {
    "random-forest": lambda: RandomForestClassifier(n_estimators=20, random_state=0),
    "extra-trees": lambda: ExtraTreesClassifier(n_estimators=20, random_state=0),
    "hist-gradient-boosting": lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0),
    "logistic-regression": lambda: make_pipeline(StandardScaler(), LogisticRegression()),
    "knn": lambda: KNeighborsClassifier(n_neighbors=5),
    "decision-tree": lambda: DecisionTreeClassifier(random_state=0),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_round_trip_predicts_exactly_the_same(
    name: str, data: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    X, y, X_test = data
    model = ESTIMATORS[name]().fit(X, y)
    folder = save_model(tmp_path / "model", {"model": model, "scaler": None}, MANIFEST)
    objects, manifest = load_model(folder, trusted=TREE_TYPES)
    assert objects["scaler"] is None
    assert type(objects["model"]) is type(model)
    assert_array_equal(objects["model"].predict_proba(X_test), model.predict_proba(X_test))
    assert manifest["model_version"] == 7


def test_round_trip_of_a_committee_and_a_scaler(
    data: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    X, y, X_test = data
    scaler = RobustScaler().fit(X)
    members = [
        LogisticRegression(max_iter=5000).fit(scaler.transform(X), y),
        KNeighborsClassifier().fit(scaler.transform(X), y),
        DecisionTreeClassifier(random_state=1).fit(scaler.transform(X), y),
    ]
    folder = save_model(tmp_path / "committee", {"members": members, "scaler": scaler}, MANIFEST)
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json", "members-0.skops", "members-1.skops", "members-2.skops", "scaler.skops",
    ]  # fmt: skip
    objects, _ = load_model(folder, trusted=["sklearn.tree._tree.Tree"])
    assert_array_equal(objects["scaler"].transform(X_test), scaler.transform(X_test))
    assert len(objects["members"]) == 3
    for loaded, member in zip(objects["members"], members, strict=True):
        Z = scaler.transform(X_test)
        assert_array_equal(loaded.predict_proba(Z), member.predict_proba(Z))


def test_a_single_estimator_is_saved_as_model(data: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    X, y, _ = data
    folder = save_model(tmp_path / "m", KNeighborsClassifier().fit(X, y), MANIFEST)
    objects, _ = load_model(folder)
    assert list(objects) == ["model"]


def test_manifest_records_what_made_the_model(data: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    X, y, _ = data
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    folder = save_model(tmp_path / "m", {"model": model, "scaler": None}, MANIFEST)
    on_disk = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == read_manifest(folder)
    assert on_disk["format"] == "armillary-model"
    assert on_disk["format_version"] == 1
    for key, value in MANIFEST.items():
        assert on_disk[key] == value
    assert on_disk["versions"] == {
        "armillary": armillary.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "skops": on_disk["versions"]["skops"],
    }
    assert on_disk["versions"]["skops"] != "unknown"
    created = dt.datetime.fromisoformat(on_disk["created"])
    assert created.utcoffset() == dt.timedelta(0)
    assert created >= before
    assert on_disk["objects"] == {"model": "model.skops", "scaler": None}
    digest = hashlib.sha256((folder / "model.skops").read_bytes()).hexdigest()
    assert on_disk["files"] == {"model.skops": digest}


def test_tree_models_need_their_types_trusted(data: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    X, y, _ = data
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    folder = save_model(tmp_path / "forest", {"model": model}, MANIFEST)
    assert untrusted_types(folder) == {"model.skops": ["sklearn.tree._tree.Tree"]}
    with pytest.raises(UntrustedModelError, match=r"model\.skops: sklearn\.tree\._tree\.Tree") as e:
        load_model(folder)
    assert "trusted=['sklearn.tree._tree.Tree']" in str(e.value)
    assert "TREE_TYPES" in str(e.value)
    assert isinstance(e.value, ArmillaryError)
    objects, _ = load_model(folder, trusted=["sklearn.tree._tree.Tree"])
    assert objects["model"].n_estimators == 3


def test_a_changed_file_is_refused_by_name(data: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    X, y, _ = data
    folder = save_model(tmp_path / "m", {"model": KNeighborsClassifier().fit(X, y)}, MANIFEST)
    target = folder / "model.skops"
    damaged = bytearray(target.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    target.write_bytes(bytes(damaged))
    with pytest.raises(ModelFileError, match=r"model\.skops does not match the sha256"):
        load_model(folder)
    target.unlink()
    with pytest.raises(ModelFileError, match=r"model\.skops cannot be read"):
        load_model(folder)


class _Boom:
    """Unpickling this creates ``marker``: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_a_pickle_in_place_of_the_model_is_never_unpickled(
    data: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    # The payload works: unpickling it does create its marker.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Boom(probe))).close()
    assert probe.exists()

    X, y, _ = data
    folder = save_model(tmp_path / "m", {"model": KNeighborsClassifier().fit(X, y)}, MANIFEST)
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Boom(marker))
    (folder / "model.skops").write_bytes(payload)
    with pytest.raises(ModelFileError, match="does not match the sha256"):
        load_model(folder, trusted=["builtins.open"])
    assert not marker.exists()

    # Even with the manifest's hash forged to match, the file is refused unread.
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["model.skops"] = hashlib.sha256(payload).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"model\.skops is not a skops file"):
        load_model(folder, trusted=["builtins.open"])
    with pytest.raises(ModelFileError, match="is not a skops file"):
        untrusted_types(folder)
    assert not marker.exists()


def test_loading_never_calls_pickle(
    data: tuple[np.ndarray, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y, X_test = data
    model = HistGradientBoostingClassifier(max_iter=5).fit(X, y)
    folder = save_model(tmp_path / "m", {"model": model}, MANIFEST)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pickle was used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    objects, _ = load_model(folder, trusted=TREE_TYPES)
    assert_array_equal(objects["model"].predict(X_test), model.predict(X_test))


def test_a_newer_format_is_refused_clearly(data: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    X, y, _ = data
    folder = save_model(tmp_path / "m", {"model": KNeighborsClassifier().fit(X, y)}, MANIFEST)
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["format_version"] = 2
    manifest["versions"]["armillary"] = "9.0.0"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"format 2, written by Armillary 9\.0\.0.*upgrade"):
        load_model(folder)


def test_manifests_that_are_missing_or_odd_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="is not a saved model"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelFileError, match="cannot be read as JSON"):
        load_model(tmp_path / "bad")
    escape = {
        "format": "armillary-model",
        "format_version": 1,
        "objects": {"model": "../model.skops"},
        "files": {"../model.skops": "0" * 64},
    }
    (tmp_path / "bad" / "manifest.json").write_text(json.dumps(escape), encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"not plain \.skops names"):
        load_model(tmp_path / "bad")


def test_another_scikit_learn_version_warns(data: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    X, y, _ = data
    folder = save_model(tmp_path / "m", {"model": KNeighborsClassifier().fit(X, y)}, MANIFEST)
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["versions"]["scikit-learn"] = "1.0.0"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.warns(ModelVersionWarning, match="scikit-learn 1.0.0"):
        load_model(folder)


def test_saving_never_clobbers_by_accident(data: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    X, y, X_test = data
    first = KNeighborsClassifier(n_neighbors=1).fit(X, y)
    second = KNeighborsClassifier(n_neighbors=15).fit(X, y)
    folder = save_model(tmp_path / "m", {"model": first}, MANIFEST)
    with pytest.raises(ModelFileError, match="overwrite=True"):
        save_model(folder, {"model": second}, MANIFEST)
    save_model(folder, {"model": second}, MANIFEST, overwrite=True)
    assert load_model(folder)[0]["model"].n_neighbors == 15
    (tmp_path / "notes").mkdir()
    with pytest.raises(ModelFileError, match="not a saved model"):
        save_model(tmp_path / "notes", {"model": first}, MANIFEST, overwrite=True)
    with pytest.raises(ModelFileError, match=r"cannot save 'model' \(generator\)"):
        save_model(folder, {"model": (row for row in X)}, MANIFEST, overwrite=True)
    assert load_model(folder)[0]["model"].n_neighbors == 15  # a failed save changes nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "notes"]  # no leftovers
    with pytest.raises(ValueError, match="written by save_model"):
        save_model(tmp_path / "x", {"model": first}, {"files": {}})
    with pytest.raises(ValueError, match="letters, digits"):
        save_model(tmp_path / "x", {"a/b": first}, MANIFEST)
    assert_array_equal(load_model(folder)[0]["model"].predict(X_test), second.predict(X_test))
