"""Every kind of event, its provenance fields, redo, history, test set and snapshots."""

from __future__ import annotations

from datetime import UTC

import numpy as np
import pandas as pd
import pytest

from armillary.errors import InvalidEventError, StoreError, UnknownClassError
from armillary.store import ACTS, KINDS, LabelStore

ADA = {"annotator": "ada", "session_id": "s1"}


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite", classes=["Star", "Galaxy", "QSO"]) as s:
        yield s


def test_the_kinds():
    assert ACTS == ("label", "relabel", "unsure", "skip", "note", "bulk_label", "test_label")
    assert (*ACTS, "undo", "redo") == KINDS


def test_every_provenance_field_round_trips(store):
    event = store.append("label", 3, "QSO", annotator="ada", session_id="s1",
                         model_version=4, score=0.125, note="broad lines", round=2,
                         strategy="margin", confidence=0.75)
    assert (event.kind, event.round, event.strategy, event.confidence) == (
        "label", 2, "margin", 0.75)
    assert (event.provenance, event.act_id, event.selection_id, event.source) == (
        "human", event.event_id, None, None)
    assert event.time.tzinfo == UTC
    log = store.events()
    row = log.iloc[0]
    assert (row["round"], row["strategy"], row["confidence"], row["note"]) == (
        2, "margin", 0.75, "broad lines")
    assert (row["model_version"], row["score"], row["provenance"]) == (4, 0.125, "human")
    cur = store.current().iloc[0]
    assert (cur["kind"], cur["event_kind"], cur["round"], cur["strategy"]) == (
        "label", "label", 2, "margin")


def test_a_label_of_a_labelled_row_is_a_relabel(store):
    assert store.append("label", 1, "Star", **ADA).kind == "label"
    assert store.append("label", 1, "Galaxy", **ADA).kind == "relabel"
    assert store.append("unsure", 1, **ADA).kind == "unsure"
    assert store.append("label", 1, "QSO", **ADA).kind == "label"  # was unsure
    assert store.append("relabel", 2, "QSO", **ADA).kind == "relabel"  # as asked
    cur = store.current()
    assert cur[["id", "kind", "label", "event_kind"]].values.tolist() == [
        [1, "label", "QSO", "label"], [2, "label", "QSO", "relabel"]]


def test_a_note_keeps_the_state_and_can_be_undone(store):
    store.append("label", 1, "Star", **ADA)
    note = store.append("note", 1, note="saturated in r", **ADA)
    assert (note.kind, note.label, note.note) == ("note", None, "saturated in r")
    assert store.current()[["kind", "label", "event_kind"]].values.tolist() == [
        ["label", "Star", "label"]]
    store.append("note", 9, note="check the image", **ADA)  # a note alone: no state
    assert store.current()["id"].tolist() == [1]
    assert store.undo(**ADA).kind == "note"
    assert store.history(9)["undone"].tolist() == [True, False]
    with pytest.raises(InvalidEventError, match=r"note='\.\.\.'"):
        store.append("note", 1, **ADA)


def test_bulk_label_is_one_act_with_a_selection_id(store):
    store.append("label", 2, "Star", **ADA)
    written = store.append_many("bulk_label", [1, 2, 3], "QSO", selection_id="lasso-7",
                                strategy="box", **ADA)
    assert list(written) == [2, 3, 4]
    log = store.events()
    bulk = log[log["kind"] == "bulk_label"]
    assert bulk["act_id"].tolist() == [2, 2, 2]
    assert set(bulk["selection_id"]) == {"lasso-7"}
    assert set(bulk["strategy"]) == {"box"}
    assert len(set(bulk["time"])) == 1
    assert store.labels()[["id", "label"]].values.tolist() == [[1, "QSO"], [2, "QSO"],
                                                               [3, "QSO"]]
    undone = store.undo(**ADA)  # the whole selection at once
    assert (undone.kind, undone.row_id, undone.selection_id) == ("bulk_label", 1, "lasso-7")
    assert store.labels()[["id", "label"]].values.tolist() == [[2, "Star"]]
    undo_events = store.events().query("kind == 'undo'")
    assert undo_events["target_event"].tolist() == [2, 3, 4]
    assert undo_events["act_id"].nunique() == 1
    assert store.redo(**ADA).selection_id == "lasso-7"
    assert len(store.labels()) == 3
    with pytest.raises(InvalidEventError, match="selection_id"):
        store.append_many("bulk_label", [1], "QSO", **ADA)


def test_append_many_takes_one_kind_and_label_per_row(store):
    written = store.append_many(["test_label", "unsure", "label"], np.array([5, 6, 7]),
                                ["Star", None, "Galaxy"], source="file.json", **ADA)
    assert len(written) == 3
    cur = store.current()
    assert cur[["id", "kind", "label"]].values.tolist() == [
        [5, "test", "Star"], [6, "unsure", None], [7, "label", "Galaxy"]]
    assert set(cur["source"]) == {"file.json"}
    assert store.append_many("label", [], None, **ADA) == range(0)
    n = store.n_events
    bad = [
        ((["label", "label"], [1], "Star"), "one value or one per row"),
        (("label", [1, 2], ["Star", None]), "needs a class name"),
        (("unsure", [1], "Star"), "takes no label"),
        (("label", [1, "x"], "Star"), "all ints or all strs"),
        (("label", ["x"], "Star"), "are ints"),
        (("undo", [1], None), r"LabelStore.undo\(\)"),
        (("label", [1], "Planet"), "unknown class 'Planet'"),
    ]
    for args, message in bad:
        with pytest.raises(InvalidEventError, match=message):
            store.append_many(*args, **ADA)
    assert store.n_events == n


def test_the_test_set_is_kept_apart(store):
    store.append("label", 1, "Star", **ADA)
    store.append("test_label", 2, "Galaxy", **ADA)
    store.append("test_label", 3, "QSO", **ADA)
    assert store.labels()["id"].tolist() == [1]
    assert store.test_set()[["id", "label", "kind"]].values.tolist() == [
        [2, "Galaxy", "test"], [3, "QSO", "test"]]
    store.append("label", 3, "QSO", **ADA)  # labelled for training: leaves the test set
    assert store.test_set()["id"].tolist() == [2]
    store.undo(**ADA)
    assert store.test_set()["id"].tolist() == [2, 3]


def test_redo_walks_forward_until_a_new_act(store):
    for row in (1, 2, 3):
        store.append("label", row, "Star", **ADA)
    assert store.redo(**ADA) is None
    assert [store.undo(**ADA).row_id for _ in range(2)] == [3, 2]
    assert store.redo(**ADA).row_id == 2
    assert store.labels()["id"].tolist() == [1, 2]
    assert store.undo(**ADA).row_id == 2  # the redone act is the latest again
    assert store.redo(**ADA).row_id == 2
    assert store.redo(**ADA).row_id == 3
    assert store.redo(**ADA) is None
    store.undo(**ADA)
    store.append("skip", 9, **ADA)  # a new act ends the redo trail
    n = store.n_events
    assert store.redo(**ADA) is None
    assert store.redo(annotator="bob", session_id="s1") is None
    assert store.n_events == n
    assert store.events()["kind"].value_counts().to_dict() == {
        "label": 3, "undo": 4, "redo": 3, "skip": 1}


def test_history_tells_a_rows_whole_story(store):
    store.append("label", 4, "Star", **ADA)
    store.append("label", 4, "Galaxy", annotator="bob", session_id="s9")
    store.append("note", 4, note="merger?", **ADA)
    store.append("label", 5, "Star", **ADA)
    store.undo(annotator="bob", session_id="s9")
    store.append("label", 4, "QSO", provenance="catalogue", annotator="importer",
                 session_id="cat", source="sky:labels")
    story = store.history(4)
    assert story["kind"].tolist() == ["label", "relabel", "note", "undo", "label"]
    assert story["annotator"].tolist() == ["ada", "bob", "ada", "bob", "importer"]
    assert story["undone"].tolist() == [False, True, False, False, False]
    assert story["provenance"].tolist() == ["human"] * 4 + ["catalogue"]
    assert story["target_event"].tolist()[3] == 2
    assert store.history(77).empty
    assert store.current()[["id", "label"]].values.tolist() == [[4, "Star"], [5, "Star"]]


def test_catalogue_labels_are_a_separate_provenance(store):
    store.append_many("label", [1, 2, 3], ["Star", "Galaxy", "QSO"],
                      provenance="catalogue", annotator="importer", session_id="cat")
    assert store.current().empty
    assert store.labels().empty
    store.append("label", 2, "QSO", **ADA)  # a human label of a catalogue-labelled row
    assert store.events(2)["kind"].tolist() == ["label", "label"]  # not a relabel
    human, catalogue = store.labels(), store.labels("catalogue")
    assert human[["id", "label", "provenance"]].values.tolist() == [[2, "QSO", "human"]]
    assert catalogue["label"].tolist() == ["Star", "Galaxy", "QSO"]
    assert set(catalogue["provenance"]) == {"catalogue"}
    assert len(store.events(provenance="catalogue")) == 3
    with pytest.raises(InvalidEventError, match="catalogue labels are 'label' events"):
        store.append("unsure", 1, provenance="catalogue", **ADA)
    with pytest.raises(InvalidEventError, match="provenance must be one of"):
        store.append("label", 1, "Star", provenance="model", **ADA)
    with pytest.raises(ValueError, match="provenance must be one of"):
        store.current("model")


def test_field_checks(store):
    cases = [
        ({"confidence": 1.5}, "confidence must be a number from 0 to 1"),
        ({"confidence": float("nan")}, "from 0 to 1"),
        ({"round": 1.0}, "round must be an int"),
        ({"strategy": ""}, "strategy must be a non-empty string"),
        ({"score": "high"}, "score must be a number"),
        ({"selection_id": 7}, "selection_id must be"),
    ]
    for fields, message in cases:
        with pytest.raises(InvalidEventError, match=message):
            store.append("label", 1, "Star", **ADA, **fields)
    with pytest.raises(UnknownClassError, match=r"unknown class 'Planet'.*Star, Galaxy, QSO"):
        store.append("label", 1, "Planet", **ADA)
    with pytest.raises(InvalidEventError, match=r"LabelStore.redo\(\)"):
        store.append("redo", 1, **ADA)
    with pytest.raises(ValueError, match="unknown columns"):
        store.current(columns=["id", "colour"])
    assert store.n_events == 0


def test_snapshot_gives_one_view_and_refuses_writes(tmp_path):
    path = tmp_path / "labels.sqlite"
    with LabelStore(path) as reader, LabelStore(path) as writer:
        writer.append("label", 1, "Star", **ADA)
        with reader.snapshot():
            before = reader.current()
            writer.append("label", 2, "Star", **ADA)  # another connection writes
            pd.testing.assert_frame_equal(reader.current(), before)
            assert reader.n_events == 1
            with pytest.raises(StoreError, match="inside its snapshot"):
                reader.append("label", 3, "Star", **ADA)
        assert reader.current()["id"].tolist() == [1, 2]
        assert reader.n_events == 2


def test_current_is_reread_only_where_the_log_changed(store):
    store.append_many("label", list(range(100)), "Star", **ADA)
    first = store.current()
    store.append("label", 5, "QSO", **ADA)
    store.append("skip", 200, **ADA)
    second = store.current()
    assert len(second) == 101
    assert second.set_index("id").loc[5, "label"] == "QSO"
    pd.testing.assert_frame_equal(second.iloc[:99].drop(columns=[]),
                                  first.drop(index=5).reset_index(drop=True))
    store.undo(**ADA)
    store.undo(**ADA)
    pd.testing.assert_frame_equal(store.current(), first)
    second.loc[0, "label"] = "changed"  # callers get copies
    pd.testing.assert_frame_equal(store.current(), first)


def test_ids_holding_the_digest_separator_read_back_whole(store):
    """The fast read joins values with ASCII 0x1f; values holding it take the slow path."""
    odd = "J1\x1fJ2"
    store.append("label", odd, "Star", **ADA)
    store.append("label", "plain", "QSO", **ADA)
    assert store.current(columns=["id", "label"]).values.tolist() == [
        [odd, "Star"], ["plain", "QSO"]]
    assert store.current()["id"].tolist() == [odd, "plain"]


def test_ids_beyond_int64_read_back_as_python_ints(store):
    big = 2**64 + 3
    store.append("label", big, "Star", **ADA)
    store.append("label", -5, "QSO", **ADA)
    assert store.current(columns=["id"])["id"].tolist() == [big, -5]
    store.undo(**ADA)
    assert store.current(columns=["id"])["id"].tolist() == [big]
