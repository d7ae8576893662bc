"""The session's label-store side: test-set mode, bulk labels, notes, redo, export, import."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from armillary.errors import UnknownClassError, UnknownIdError


def test_test_mode_labels_are_kept_out_of_training_and_pool(session, truth):
    first = session.next()
    session.test_mode = True
    session.label(first.id, truth[first.position])
    assert "Test-set mode" in session.status_text()
    session.test_mode = False
    assert session.counts["test"] == 1
    assert len(session.training_data()[0]) == 0
    assert list(session.test_set()["id"]) == [first.id]
    assert first.id not in session.query(100)
    assert session.labels.empty  # a test-set label is not a training label


def test_curated_test_set_scores_the_model(session, rows_of_each_class, truth):
    rows = rows_of_each_class(6)
    names = list(rows)
    session.test_mode = True
    for name in names:
        for pos in rows[name][:2]:
            session.label(session.catalogue.id_at(int(pos)), truth[int(pos)])
    session.test_mode = False
    for name in names:
        for pos in rows[name][2:]:
            session.label(session.catalogue.id_at(int(pos)), truth[int(pos)])
    assert session.refresh() >= 1
    row = session.evaluation.evaluate("curated")
    assert row["n"] == 6
    assert 0.0 <= row["accuracy"] <= 1.0


def test_label_many_is_one_act_for_undo(session):
    ids = [session.catalogue.id_at(i) for i in (5, 6, 7)]
    session.label_many(ids, "Galaxy", selection_id="lasso-1")
    assert set(session.labels["id"]) == set(ids)
    session.undo()
    assert session.labels.empty
    session.redo()
    assert set(session.labels["id"]) == set(ids)


def test_label_many_checks_everything_before_writing(session):
    n = session.store.n_events
    with pytest.raises(UnknownIdError, match="nope"):
        session.label_many([session.catalogue.id_at(1), "nope"], "Star")
    with pytest.raises(UnknownClassError, match="Quasar"):
        session.label_many([session.catalogue.id_at(1)], "Quasar")
    assert session.store.n_events == n


def test_note_and_history(session):
    cid = session.catalogue.id_at(3)
    session.label(cid, "Star")
    session.note(cid, "saturated in g")
    session.label(cid, "QSO")
    story = session.history(cid)
    assert list(story["kind"])[:3] == ["label", "note", "relabel"]
    assert session.labels.set_index("id").loc[cid, "label"] == "QSO"


@pytest.mark.parametrize("suffix", [".fits", ".parquet", ".csv", ".xml"])
def test_export_round_trips_labels_with_provenance(session, tmp_path, suffix):
    ids = [session.catalogue.id_at(i) for i in (10, 11)]
    session.label(ids[0], "Star")
    session.label(ids[1], "Galaxy")
    path = session.export(tmp_path / f"labels{suffix}")
    if suffix in (".parquet", ".csv"):
        frame = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    else:
        frame = Table.read(path).to_pandas()
    frame.columns = [str(c) for c in frame.columns]
    labels = dict(zip(frame.iloc[:, 0].astype(str), frame["label"].astype(str), strict=True))
    assert labels == {ids[0]: "Star", ids[1]: "Galaxy"}
    assert {"annotator", "time"} <= set(frame.columns)


def test_import_astronomical_test_set(session, tmp_path):
    ids = [session.catalogue.id_at(i) for i in (20, 21, 22)]
    path = tmp_path / "test_set.json"
    path.write_text(json.dumps({ids[0]: 0, ids[1]: 2, ids[2]: -1}))
    session.import_labels(path, label_map={0: "Star", 1: "Galaxy", 2: "QSO"})
    assert session.counts["test"] + session.counts["labelled"] + session.counts["unsure"] >= 3
    assert ids[0] not in session.query(200)
    assert np.isin([ids[0], ids[1]], session.test_set()["id"]).all()


def test_label_many_names_its_selection_when_not_told(session):
    ids = [session.catalogue.id_at(p) for p in (3, 4)]
    session.label_many(ids, "Star")
    history = session.history(ids[0])
    selection = history["selection_id"].iloc[-1]
    assert selection.startswith("selection-")
    assert len(selection) > len("selection-")
    assert session.history(ids[1])["selection_id"].iloc[-1] == selection


def test_catalogue_labels_are_recorded_once_as_their_own_provenance(make_session):
    session = make_session()
    truth = session.catalogue_codes()
    known = np.flatnonzero(truth >= 0)
    assert known.size > 0
    recorded = session.store.current("catalogue")
    assert len(recorded) == known.size
    expected = {session.catalogue.id_at(int(p)): session.classes[truth[p]] for p in known}
    assert dict(zip(recorded["id"], recorded["label"], strict=True)) == expected
    assert (recorded["source"] == f"{session.catalogue.name}:{session.label_column}").all()
    # Never human labels: not in .labels, not in the masks, not undone by this session.
    assert session.labels.empty
    assert session.counts["labelled"] == 0
    assert session.undo() is None
    events = session.store.n_events
    session.close()
    again = make_session()  # a reopen writes nothing new
    assert again.store.n_events == events
    both = again.store.current("catalogue")
    assert len(both) == known.size


def test_export_can_carry_both_provenances(make_session, tmp_path):
    session = make_session()
    first = session.catalogue.id_at(7)
    session.label(first, "QSO")
    path = session.export(tmp_path / "all.csv", provenance=("human", "catalogue"))
    table = Table.read(path)
    human = table[table["provenance"] == "human"]
    assert [str(i) for i in human[session.catalogue.id_column]] == [str(first)]
    assert list(human["label"]) == ["QSO"]
    catalogue = table[table["provenance"] == "catalogue"]
    assert len(catalogue) == int((session.catalogue_codes() >= 0).sum())


def test_acts_record_the_catalogue_row_of_each_id(session):
    cat = session.catalogue
    session.label(cat.id_at(30), "Star")
    session.unsure(cat.id_at(31))
    session.skip(cat.id_at(32))
    session.note(cat.id_at(33), "a halo")
    session.label_many([cat.id_at(p) for p in (40, 2, 41)], "QSO")
    session.undo()
    assert session.store.keeps_rows  # opened for its own catalogue
    log = session.store.events()
    assert log["catalogue_row"].notna().all()  # the catalogue's own labels too
    human = log[log["provenance"] == "human"]
    assert human["catalogue_row"].tolist() == [30, 31, 32, 33, 40, 2, 41, 40, 2, 41]
    assert cat.index_of(log["id"].to_numpy()).tolist() == log["catalogue_row"].tolist()
