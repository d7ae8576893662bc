"""Imports (label column, AstronomicAL files) and exports (every format), on real files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from armillary import datasets, open_catalogue
from armillary.errors import ColumnNotFoundError, LabelFileError, UnknownIdError
from armillary.labels_io import (
    export_labels,
    import_astronomical_config,
    import_astronomical_test_set,
    import_label_column,
    import_labels,
    labels_frame,
    labels_table,
)
from armillary.store import LabelStore
from helpers import ASTRONOMICAL_CONFIG as CONFIG

CLASSES = ["Star", "Galaxy", "QSO"]
LABEL_MAP = {0: "Star", 1: "Galaxy", 2: "QSO"}
ADA = {"annotator": "ada", "session_id": "s1"}


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    folder = tmp_path_factory.mktemp("io")
    return open_catalogue(datasets.make_catalogue(n=2000, path=folder / "sky.fits",
                                                  thumbnails=0))


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite", classes=CLASSES,
                    catalogue_fingerprint="sky", id_column="ID") as s:
        yield s


# -- imports ------------------------------------------------------------------------------


def test_the_label_column_is_imported_as_catalogue_provenance(store, catalogue):
    codes = catalogue.column("labels")
    written = import_label_column(store, catalogue, "labels", LABEL_MAP, annotator="ada")
    known = np.flatnonzero(codes >= 0)
    assert len(written) == len(known) > 0
    labels = store.labels("catalogue")
    assert labels["id"].tolist() == catalogue.ids[known].tolist()
    assert labels["label"].tolist() == [LABEL_MAP[c] for c in codes[known]]
    assert set(labels["source"]) == {"sky:labels"}
    assert store.labels().empty  # never mistaken for human labels
    assert import_label_column(store, catalogue, "labels", LABEL_MAP) == range(0)
    with pytest.raises(LabelFileError, match="holds int16 codes; pass label_map"):
        import_label_column(store, catalogue, "labels")
    with pytest.raises(ColumnNotFoundError, match="'label'"):
        import_label_column(store, catalogue, "label", LABEL_MAP)


def test_astronomical_test_set(store, catalogue, tmp_path):
    ids = catalogue.ids
    path = tmp_path / "test_set.json"
    path.write_text(json.dumps({ids[3]: 0, ids[4]: 2, ids[5]: -1}))
    written = import_astronomical_test_set(store, catalogue, path, LABEL_MAP)
    assert len(written) == 3
    assert store.test_set()[["id", "label"]].values.tolist() == [[ids[3], "Star"],
                                                                  [ids[4], "QSO"]]
    assert store.current().set_index("id").loc[ids[5], "kind"] == "unsure"
    assert set(store.events()["source"]) == {str(path)}
    assert import_astronomical_test_set(store, catalogue, path, LABEL_MAP) == range(0)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(LabelFileError, match="expected a JSON object"):
        import_astronomical_test_set(store, catalogue, path, LABEL_MAP)


def test_test_set_ids_follow_an_integer_catalogue(tmp_path, catalogue):
    numbered = open_catalogue(catalogue.source, id_column=None, cache_dir=tmp_path)
    path = tmp_path / "test_set.json"
    path.write_text(json.dumps({"7": 1, "1999": 0}))
    with LabelStore(":memory:") as store:
        import_astronomical_test_set(store, numbered, path, LABEL_MAP)
        assert store.test_set()["id"].tolist() == [7, 1999]
        path.write_text(json.dumps({"seven": 1}))
        with pytest.raises(LabelFileError, match="not an integer"):
            import_astronomical_test_set(store, numbered, path, LABEL_MAP)


@pytest.fixture
def config_catalogue(config, tmp_path):
    """A catalogue holding the configuration's ids, and a few rows more."""
    ids = [*config["classifiers"]["0"]["id"], "extra-1", "extra-2"]
    rng = np.random.default_rng(0)
    table = Table({"ID": ids, "g": rng.normal(20, 1, len(ids)),
                   "labels": np.full(len(ids), -1, dtype=np.int16)})
    table.write(tmp_path / "astronomical.fits")
    return open_catalogue(tmp_path / "astronomical.fits")


def test_astronomical_configuration_labels(store, config, config_catalogue):
    entry = config["classifiers"]["0"]
    written = import_astronomical_config(store, config_catalogue, CONFIG, annotator="ada",
                                         session_id="import-1")
    assert len(written) == len(entry["id"])
    cur = store.current().set_index("id")
    names = {int(k): v for k, v in config["labels_to_strings"].items()}
    for row_id, y in zip(entry["id"], entry["y"], strict=True):
        expected = ("unsure", None) if y == -1 else ("label", names[y])
        assert tuple(cur.loc[str(row_id), ["kind", "label"]]) == expected
    assert set(cur["strategy"]) == {"Uncertainty Sampling"}
    assert set(cur["act_id"]) == {written.start}  # one act...
    store.undo(annotator="ada", session_id="import-1")  # ...so one undo takes it back
    assert store.current().empty
    store.redo(annotator="ada", session_id="import-1")
    assert len(store.current()) == len(entry["id"])
    assert import_astronomical_config(store, config_catalogue, CONFIG) == range(0)


def test_astronomical_configuration_against_another_catalogue(store, catalogue, config):
    with pytest.raises(UnknownIdError, match="VIPERS 123044938"):
        import_astronomical_config(store, catalogue, CONFIG)
    assert store.n_events == 0


def test_conflicting_classifiers_are_refused(store, config_catalogue, tmp_path):
    ids = config_catalogue.ids[:2].tolist()
    path = tmp_path / "config.json"
    path.write_text(json.dumps({
        "labels_to_strings": {"0": "Star", "1": "Galaxy", "-1": "Unknown"},
        "classifiers": {"0": {"id": ids, "y": [0, 1], "query": ["Margin"]},
                        "1": {"id": ids, "y": [0, 0], "query": ["Entropy"]}}}))
    with pytest.raises(LabelFileError, match=r"different labels to the same row.*\[0, 1\]"):
        import_astronomical_config(store, config_catalogue, path)
    assert store.n_events == 0
    import_astronomical_config(store, config_catalogue, path, classifiers=["1"])
    assert store.labels()["label"].tolist() == ["Star", "Star"]
    assert set(store.labels()["strategy"]) == {"Entropy"}


def test_untrained_and_malformed_classifier_tabs(store, config_catalogue, tmp_path):
    ids = config_catalogue.ids[:2].tolist()
    path = tmp_path / "config.json"
    tabs = {"0": {"id": ids, "y": [0, 1]}, "1": {"classifier": ["RForest"]}}
    path.write_text(json.dumps({"labels_to_strings": {"0": "Star", "1": "Galaxy"},
                                "classifiers": tabs}))  # fmt: skip
    import_astronomical_config(store, config_catalogue, path)  # tab 1 was never trained
    assert store.labels()["label"].tolist() == ["Star", "Galaxy"]
    for bad in ({"id": ids}, {"y": [0, 1]}, {"id": "abc", "y": [0, 1, 2]}, ["not", "a", "tab"]):
        path.write_text(json.dumps({"classifiers": {"0": bad}}))
        with pytest.raises(LabelFileError, match=r"classifier '0' needs lists 'id' and 'y'"):
            import_astronomical_config(store, config_catalogue, path, label_map={0: "Star"})
    assert len(store.labels()) == 2


def test_import_labels_tells_the_sources_apart(store, catalogue, tmp_path):
    assert len(import_labels(store, catalogue, "labels", label_map=LABEL_MAP)) > 0
    path = tmp_path / "test_set.json"
    path.write_text(json.dumps({catalogue.id_at(0): 1}))
    assert len(import_labels(store, catalogue, path, label_map=LABEL_MAP)) == 1
    assert store.test_set()["id"].tolist() == [catalogue.id_at(0)]


# -- exports ------------------------------------------------------------------------------


def read_table(path):
    table = Table.read(path)
    table.convert_bytestring_to_unicode()  # FITS gives text back as bytes
    return table.to_pandas()


@pytest.fixture
def labelled(store, catalogue):
    """Human labels of several kinds with full provenance, and catalogue labels."""
    ids = catalogue.ids
    store.append("label", ids[10], "Galaxy", model_version=3, score=0.25, round=2,
                 strategy="margin", confidence=0.9, note="spiral arms", **ADA)
    store.append("test_label", ids[11], "QSO", **ADA)
    store.append("unsure", ids[12], **ADA)
    store.append_many("bulk_label", ids[20:23], "Star", selection_id="lasso-1", **ADA)
    import_label_column(store, catalogue, "labels", LABEL_MAP)
    return store


@pytest.mark.parametrize("suffix", [".fits", ".fits.gz", ".xml", ".vot", ".parquet",
                                    ".csv", ".ecsv"])
def test_export_round_trips_with_provenance(labelled, catalogue, tmp_path, suffix):
    path = export_labels(labelled, catalogue, tmp_path / f"labels{suffix}")
    back = (pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
            if suffix == ".csv" else read_table(path))
    ids = catalogue.ids
    assert back["ID"].tolist() == [ids[10], ids[11], ids[12], *ids[20:23]]
    assert back["state"].tolist() == ["label", "test", "unsure", "label", "label", "label"]
    assert back["event_kind"].tolist()[3:] == ["bulk_label"] * 3
    assert set(back["provenance"]) == {"human"}
    assert back["label"].fillna("").tolist()[:3] == ["Galaxy", "QSO", ""]
    first = back.iloc[0]
    assert (first["annotator"], first["strategy"], first["note"]) == (
        "ada", "margin", "spiral arms")
    assert (first["round"], first["model_version"]) == (2, 3)
    assert (first["score"], first["confidence"]) == (0.25, 0.9)
    assert pd.isna(back["model_version"].iloc[1])
    assert str(pd.Timestamp(back["time"].iloc[0]).tz or "UTC") == "UTC"
    assert pd.Timestamp(back["time"].iloc[0]) == labelled.current()["time"].iloc[0]
    assert set(back["selection_id"].dropna()) - {""} == {"lasso-1"}


def test_export_joined_onto_the_catalogue(labelled, catalogue, tmp_path):
    path = export_labels(labelled, catalogue, tmp_path / "joined.fits", join=True)
    back = Table.read(path)
    assert back.colnames[:4] == ["ID", "RA", "DEC", "u"]
    assert {"label", "state", "annotator", "labels", "true_label"} <= set(back.colnames)
    positions = catalogue.index_of(np.asarray(back["ID"]))
    np.testing.assert_allclose(back["g"], catalogue.column("g")[positions])
    assert back.meta["ARMIDCOL"] == "ID"
    everything = labels_frame(labelled, catalogue, join=True, rows="all")
    assert len(everything) == len(catalogue)
    assert everything["label"].notna().sum() == 5


def test_human_and_catalogue_labels_stay_told_apart(labelled, catalogue):
    both = labels_frame(labelled, catalogue, provenance=("human", "catalogue"))
    counts = both["provenance"].value_counts().to_dict()
    assert counts == {"catalogue": len(labelled.labels("catalogue")), "human": 6}
    only = labels_frame(labelled, provenance="catalogue", states=("label",))
    assert set(only["provenance"]) == {"catalogue"}
    assert list(only.columns[:3]) == ["id", "label", "state"]


def test_export_refusals(labelled, catalogue, tmp_path):
    with pytest.raises(LabelFileError, match=r"cannot tell the format of .*labels\.txt"):
        export_labels(labelled, catalogue, tmp_path / "labels.txt")
    path = export_labels(labelled, catalogue, tmp_path / "labels.csv")
    with pytest.raises(LabelFileError, match="exists; pass overwrite=True"):
        export_labels(labelled, catalogue, path)
    assert export_labels(labelled, catalogue, path, overwrite=True) == path
    assert export_labels(labelled, catalogue, tmp_path / "x.dat", format="ecsv").is_file()
    with pytest.raises(LabelFileError, match="unknown export format 'xlsx'"):
        export_labels(labelled, catalogue, tmp_path / "x.dat", format="xlsx")
    table = labels_table(labelled, catalogue)
    assert table["model_version"].mask.tolist() == [False, True, True, True, True, True]


def test_imports_record_the_catalogue_row_of_each_id(store, catalogue, tmp_path):
    """Imports resolve every id against the catalogue, so they record its row: a pool on
    this catalogue takes it instead of looking the id up."""
    import_label_column(store, catalogue, "labels", LABEL_MAP)
    ids = catalogue.ids
    path = tmp_path / "test_set.json"
    path.write_text(json.dumps({ids[1999]: 0, ids[4]: 2, ids[0]: -1}))
    import_astronomical_test_set(store, catalogue, path, LABEL_MAP)
    log = store.events()
    assert log["catalogue_row"].notna().all()
    positions = catalogue.index_of(log["id"].to_numpy())
    assert log["catalogue_row"].to_numpy(dtype=np.int64).tolist() == positions.tolist()
    assert log["catalogue_row"].tolist()[-3:] == [1999, 4, 0]
