"""Tests of the labelling pane without a browser: the real widget, driven as the JS does.

The view's messages reach the presenter through ipywidgets' ``_handle_custom_msg`` (what
the comm calls for a ``custom`` message), so these tests call that method directly.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from armillary.presenter import PanePresenter, format_value
from armillary.widget import LabelPane
from helpers import human_events

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def act(pane: LabelPane, seq: int, action: str, row_id=None, label=None, client="c1"):
    """Send the pane an ``act`` message as the view would."""
    pane._handle_custom_msg(
        {
            "type": "act",
            "client": client,
            "seq": seq,
            "action": action,
            "id": row_id,
            "label": label,
        },
        [],
    )


def notified(session, wanted: str) -> threading.Event:
    """An event set when the session next reports ``wanted`` ("model" or "error").

    Listeners run in the order they were added, so once it is set, a pane made before
    has already taken the news.
    """
    seen = threading.Event()
    session.on_change(lambda event: seen.set() if event == wanted else None)
    return seen


@pytest.fixture
def pane(session) -> LabelPane:
    return session.pane()


# -- traits ------------------------------------------------------------------------------


def test_pane_traits(session, pane):
    assert isinstance(pane, LabelPane)
    assert session.pane() is pane
    assert pane.title == "sky"
    assert pane.classes == [
        {"name": "Star", "colour": session.colours[0], "key": "1"},
        {"name": "Galaxy", "colour": session.colours[1], "key": "2"},
        {"name": "QSO", "colour": session.colours[2], "key": "3"},
    ]
    colours = [c["colour"] for c in pane.classes]
    assert len(set(colours)) == 3
    assert all(len(c) == 7 and c.startswith("#") for c in colours)
    candidate = session.next()
    assert pane.candidate["id"] == candidate.id
    assert (pane.candidate["score"], pane.candidate["model_version"]) == (None, 0)
    assert [v["name"] for v in pane.candidate["values"]] == ["redshift", "Lx"]
    assert pane.counts == session.counts
    assert pane.status == session.status_text()
    assert (pane.error, pane.acked, pane.recent) == ("", {}, [])


def test_values_show_missing_as_none(session, catalogue):
    presenter = PanePresenter(session)
    lx = catalogue.column("Lx")
    missing = int(np.flatnonzero(np.isnan(lx))[0])
    present = int(np.flatnonzero(~np.isnan(lx))[0])
    presenter.show(session.candidate(missing))
    redshift = catalogue.row(missing, ["redshift"])["redshift"]
    assert presenter.pane.candidate["values"] == [
        {"name": "redshift", "value": f"{redshift:.6g}"},
        {"name": "Lx", "value": None},
    ]
    presenter.show(session.candidate(present))
    assert presenter.pane.candidate["values"][1] == {"name": "Lx", "value": f"{lx[present]:.6g}"}


def test_image_bytes_are_the_thumbnail(session, catalogue):
    presenter = PanePresenter(session)
    thumbnails = catalogue.column("thumbnail")
    with_image = int(np.flatnonzero(thumbnails != "")[3])
    presenter.show(session.candidate(with_image))
    path = session.candidate(with_image).images["thumbnail"]
    assert presenter.pane.image[:8] == PNG_SIGNATURE
    assert presenter.pane.image == path.read_bytes()
    assert presenter.pane.candidate["image_name"] == path.name

    presenter.show(session.candidate(int(np.flatnonzero(thumbnails == "")[0])))
    assert presenter.pane.image == b""
    assert presenter.pane.candidate["image_name"] is None


def test_end_of_pool_clears_the_candidate(session, catalogue):
    presenter = PanePresenter(session)
    presenter.show(session.candidate(0))
    presenter.show(None)
    assert presenter.pane.candidate == {}
    assert presenter.pane.image == b""


# -- messages ----------------------------------------------------------------------------


def test_label_message_is_committed_then_acked(session, pane):
    shown = pane.candidate["id"]
    act(pane, 1, "label", shown, "Star")
    assert pane.acked == {"c1": 1}
    assert pane.error == ""
    assert human_events(session.store) == 1
    assert session.labels[["id", "label", "annotator"]].values.tolist() == [[shown, "Star", "ada"]]
    assert pane.candidate["id"] != shown
    assert pane.candidate["id"] == session.next().id
    assert pane.counts["labelled"] == 1
    assert pane.recent[0] == {
        "client": "c1",
        "seq": 1,
        "action": "label",
        "id": shown,
        "label": "Star",
    }


def test_resent_message_writes_nothing_more(session, pane):
    shown = pane.candidate["id"]
    act(pane, 1, "label", shown, "Galaxy")
    after_first = pane.candidate["id"]
    act(pane, 1, "label", shown, "Galaxy")  # the view did not see the ack and re-sent
    assert human_events(session.store) == 1
    assert pane.acked == {"c1": 1}
    assert pane.candidate["id"] == after_first
    assert len(pane.recent) == 1


def test_unknown_class_is_not_acked_and_nothing_written(session, pane):
    shown = pane.candidate["id"]
    act(pane, 1, "label", shown, "Planet")
    assert "c1" not in pane.acked
    assert "'Planet'" in pane.error
    assert "Star, Galaxy, QSO" in pane.error
    assert human_events(session.store) == 0
    assert pane.candidate["id"] == shown
    # The next good act is acked and clears the error.
    act(pane, 2, "label", shown, "QSO")
    assert pane.acked == {"c1": 2}
    assert pane.error == ""
    assert human_events(session.store) == 1


def test_unknown_id_is_not_acked(session, pane):
    act(pane, 1, "skip", "no such source")
    assert pane.acked == {}
    assert "'no such source'" in pane.error
    assert human_events(session.store) == 0


def test_unknown_action_is_not_acked(session, pane):
    act(pane, 1, "delete", pane.candidate["id"])
    assert pane.acked == {}
    assert "'delete'" in pane.error
    assert human_events(session.store) == 0


def test_other_messages_are_ignored(session, pane):
    shown = pane.candidate["id"]
    pane._handle_custom_msg({"type": "hello", "client": "c1", "seq": 1}, [])
    assert (pane.acked, pane.error, pane.candidate["id"]) == ({}, "", shown)
    assert human_events(session.store) == 0


def test_unsure_and_skip_messages(session, pane):
    first = pane.candidate["id"]
    act(pane, 1, "unsure", first)
    second = pane.candidate["id"]
    act(pane, 2, "skip", second)
    assert pane.acked == {"c1": 2}
    assert pane.candidate["id"] not in {first, second}
    assert pane.counts == {
        "labelled": 0,
        "unsure": 1,
        "skipped": 1,
        "held_out": session.counts["held_out"],
        "test": 0,
        "pool": 3000,
    }
    assert session.labels.empty


def test_undo_message_shows_the_row_again(session, pane):
    shown = pane.candidate["id"]
    act(pane, 1, "label", shown, "Star")
    assert pane.candidate["id"] != shown
    act(pane, 2, "undo")
    assert pane.acked == {"c1": 2}
    assert pane.candidate["id"] == shown
    assert session.labels.empty
    assert pane.counts["labelled"] == 0
    assert pane.recent[0]["id"] == shown
    assert pane.recent[0]["label"] == "label undone"
    # It can be labelled again at once.
    act(pane, 3, "label", shown, "Galaxy")
    assert session.labels[["id", "label"]].values.tolist() == [[shown, "Galaxy"]]


def test_undo_with_nothing_is_not_acked(session, pane):
    act(pane, 1, "undo")
    assert pane.acked == {}
    assert "Nothing to undo" in pane.error
    assert human_events(session.store) == 0


def test_clients_are_acked_apart(session, pane):
    act(pane, 1, "skip", pane.candidate["id"], client="left")
    act(pane, 1, "skip", pane.candidate["id"], client="right")  # same seq, other view
    assert pane.acked == {"left": 1, "right": 1}
    assert session.counts["skipped"] == 2


def test_status_follows_the_model(session, pane, rows_of_each_class):
    model = notified(session, "model")
    rows = rows_of_each_class(3)
    seq = 0
    for name, positions in rows.items():
        for pos in positions:
            seq += 1
            act(pane, seq, "label", session.catalogue.id_at(int(pos)), name)
    assert pane.acked == {"c1": 9}
    assert model.wait(60)
    assert pane.status.startswith("Model v")
    assert "trained on" in pane.status


# -- format_value ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [None, float("nan"), np.float32("nan"), float("inf"), -np.inf, "", "   ", b"", b"  "],
)
def test_format_value_missing_is_none(value):
    assert format_value(value) is None


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (np.int16(-1), "-1"),
        (np.int64(12_345_678_901), "12345678901"),
        (0.123456, "0.123456"),
        (np.float32(1.0439262), "1.04393"),
        (43.21987, "43.2199"),
        (1234.5678, "1234.57"),
        (-0.000123456, "-0.000123456"),
        (2.0, "2"),
        (277.83534, "277.835"),
        (1234567.0, "1.23457e+06"),
        (1.5e44, "1.5e+44"),
        (b"SDSS J1234", "SDSS J1234"),
        (np.bytes_(b"WISEA J5"), "WISEA J5"),
        (" Galaxy ", "Galaxy"),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_format_value_keeps_six_significant_digits():
    rng = np.random.default_rng(0)
    for x in rng.lognormal(0.0, 8.0, size=200) * rng.choice([-1, 1], size=200):
        text = format_value(float(x))
        assert math.isclose(float(text), x, rel_tol=5e-6)
        mantissa = text.split("e")[0].lstrip("-").replace(".", "").lstrip("0")
        assert len(mantissa) <= 6


def test_training_failure_is_shown_and_labels_are_kept(make_session, rows_of_each_class):
    session = make_session(learner=LogisticRegression(C=-1.0))  # fit refuses C < 0
    pane = session.pane()
    failed = notified(session, "error")
    rows = rows_of_each_class(2)
    # Two stars, then a galaxy: only the last act gives two classes, and so a fit.
    acts = [("Star", rows["Star"][0]), ("Star", rows["Star"][1]), ("Galaxy", rows["Galaxy"][0])]
    for seq, (name, pos) in enumerate(acts, start=1):
        act(pane, seq, "label", session.catalogue.id_at(int(pos)), name)
    assert failed.wait(60)
    assert pane.error.startswith("training failed:")
    assert "'C'" in pane.error
    assert pane.acked == {"c1": 3}
    assert session.counts["labelled"] == 3
    assert session.model_version == 0
    assert pane.candidate["id"] == session.next().id
    with pytest.raises(ValueError, match="'C'"):
        session.refresh()


class NeedsSixLabels(DecisionTreeClassifier):
    """A real decision tree that refuses to fit on fewer than six labels."""

    def fit(self, X, y, sample_weight=None, check_input=True):
        if len(y) < 6:
            raise ValueError(f"needs six labels, got {len(y)}")
        return super().fit(X, y, sample_weight=sample_weight, check_input=check_input)


def test_training_error_stays_until_a_model_lands(make_session, rows_of_each_class):
    session = make_session(learner=NeedsSixLabels(random_state=0))
    pane = session.pane()
    failed, model = notified(session, "error"), notified(session, "model")
    rows = rows_of_each_class(3)
    order = [("Star", 0), ("Star", 1), ("Galaxy", 0), ("Galaxy", 1), ("QSO", 0), ("QSO", 1)]
    ids = [(session.catalogue.id_at(int(rows[name][k])), name) for name, k in order]
    for seq, (row_id, name) in enumerate(ids[:3], start=1):
        act(pane, seq, "label", row_id, name)
    assert failed.wait(60)
    assert "needs six labels, got 3" in pane.error
    # A later act is acked, and does not hide that training still fails.
    act(pane, 4, "label", *ids[3])
    assert pane.acked == {"c1": 4}
    assert "training failed" in pane.error
    for seq, (row_id, name) in enumerate(ids[4:], start=5):
        act(pane, seq, "label", row_id, name)
    assert model.wait(60)
    assert pane.error == ""
    assert pane.status.startswith("Model v")
    # An act's own error does not outlive the next good act either.
    act(pane, 7, "label", pane.candidate["id"], "Planet")
    assert "'Planet'" in pane.error
    act(pane, 8, "label", pane.candidate["id"], "Star")
    assert pane.error == ""
