"""Tests of simulated labelling: the loop run with known labels as the oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from armillary import simulate as sim
from armillary.errors import ColumnNotFoundError

CLASSES = ["Star", "Galaxy", "QSO"]


@pytest.fixture
def curves(make_session) -> pd.DataFrame:
    session = make_session()
    return session.simulate(oracle="true_label", budget=20, seeds=2, learner="decision-tree")


def test_simulation_gives_learning_curves(curves):
    assert list(curves.columns[:3]) == ["seed", "strategy", "n_labels"]
    for column in ["accuracy", "balanced_accuracy", "matthews"] + [
        f"{kind}_{name}" for kind in ("accuracy", "precision", "recall", "f1") for name in CLASSES
    ]:
        assert column in curves.columns
        assert curves[column].between(-1, 1).all()
    assert sorted(curves["seed"].unique()) == [0, 1]
    assert set(curves["strategy"]) == {"margin"}
    for _, curve in curves.groupby("seed"):
        labels = curve["n_labels"].to_numpy()
        assert labels[-1] == 20
        assert labels[0] <= 3  # a model from the cold-start seed set of one per class
        assert (np.diff(labels) == 1).all()  # batch=1: one label per round
    # Per-class accuracy (one class against the rest): over the classes, a right answer
    # counts C times, a wrong one C - 2, so the mean accuracy follows from them.
    per_class = curves[[f"accuracy_{name}" for name in CLASSES]].sum(axis=1)
    np.testing.assert_allclose(per_class, 3 - 2 * (1 - curves["accuracy"]))
    assert (
        curves.groupby("seed")["accuracy"].last().mean()
        > curves.groupby("seed")["accuracy"].first().mean()
    )  # labels help


def test_simulation_is_reproducible_from_random_state(make_session, curves, tmp_path):
    again = make_session(store=tmp_path / "again.sqlite")
    assert_frame_equal(
        again.simulate(oracle="true_label", budget=20, seeds=2, learner="decision-tree"), curves
    )
    other = make_session(store=tmp_path / "other.sqlite", random_state=1)
    different = other.simulate(oracle="true_label", budget=20, seeds=2, learner="decision-tree")
    assert list(different.columns) == list(curves.columns)
    assert not different["accuracy"].equals(curves["accuracy"])


def test_summarise_and_area_under_curve(curves):
    summary = sim.summarise(curves)
    assert list(summary.columns) == ["strategy", "n_labels", "mean", "std"]
    at_20 = summary[summary["n_labels"] == 20].iloc[0]
    final = curves[curves["n_labels"] == 20]["accuracy"]
    assert at_20["mean"] == pytest.approx(final.mean())
    assert at_20["std"] == pytest.approx(final.std())
    area = sim.area_under_curve(curves)
    assert list(area.index) == ["margin"]
    assert area["margin"] == pytest.approx(summary["mean"].mean())
    hand = pd.DataFrame(
        {
            "seed": [0, 0, 1, 1, 0, 0],
            "strategy": ["a", "a", "a", "a", "b", "b"],
            "n_labels": [1, 2, 1, 2, 1, 2],
            "accuracy": [0.2, 0.6, 0.4, 0.8, 0.5, 0.5],
        }
    )
    assert sim.summarise(hand)["mean"].tolist() == pytest.approx([0.3, 0.7, 0.5, 0.5])
    assert sim.area_under_curve(hand).to_dict() == pytest.approx({"a": 0.5, "b": 0.5})
    assert sim.summarise(curves, metric="accuracy_Star")["mean"].between(0, 1).all()


def test_the_catalogue_labels_as_the_oracle(make_session):
    session = make_session()
    known = np.flatnonzero(session.catalogue_codes() >= 0)
    pool = np.setdiff1d(known, session.evaluation.held_out)
    curves = session.simulate(oracle="labels", budget=10, seeds=1)
    assert curves["n_labels"].iloc[-1] == 10
    # A budget beyond the rows the oracle knows stops when they are used up.
    assert len(pool) < 100
    longer = session.simulate(oracle="labels", budget=100, seeds=1)
    assert longer["n_labels"].iloc[-1] == len(pool)


def test_a_bad_oracle_is_a_clear_error(make_session, catalogue, tmp_path):
    session = make_session()
    with pytest.raises(ColumnNotFoundError, match="'no_such_column'"):
        session.simulate(oracle="no_such_column", budget=5)
    with pytest.raises(ValueError, match="one code per catalogue row"):
        session.simulate(oracle=np.zeros(10, dtype=int), budget=5)
    with pytest.raises(ValueError, match="knows the class of no row"):
        session.simulate(oracle=np.full(len(session), -1), budget=5)
    unlabelled = make_session(label_column=None, label_map=None, store=tmp_path / "u.sqlite")
    with pytest.raises(ValueError, match="label_map"):
        unlabelled.simulate(oracle="true_label", budget=5)
    codes = catalogue.column("true_label").astype(np.int64)
    with pytest.raises(ValueError, match="validation set"):
        unlabelled.simulate(oracle=codes, budget=5)


def test_diverse_batches(make_session):
    session = make_session()
    curves = session.simulate(
        oracle="true_label", budget=20, seeds=1, batch=5, diverse=True, learner="decision-tree"
    )
    assert set(curves["strategy"]) == {"margin (diverse)"}
    steps = np.diff(curves["n_labels"].to_numpy())
    assert curves["n_labels"].iloc[-1] == 20
    assert (steps <= 5).all()
    assert (steps[:-1] == 5).all()  # five labels a round, the last round what is left


def test_run_seeds_are_spawned_not_consecutive():
    seeds = sim.run_seeds(0, 5)
    assert seeds == sim.run_seeds(0, 5)  # reproducible
    assert len(set(seeds)) == 5
    assert all(0 <= s < 2**31 for s in seeds)
    assert sim.run_seeds(0, 3) == seeds[:3]  # more runs extend, never reshuffle
    # With random_state + i, random_state=1 would repeat runs 1.. of random_state=0.
    assert not set(sim.run_seeds(1, 5)) & set(seeds)
    expected = [int(c.generate_state(1, dtype=np.uint32)[0] >> 1)
                for c in np.random.SeedSequence(0).spawn(5)]  # fmt: skip
    assert seeds == expected


def test_neighbouring_random_states_share_no_run(make_session, tmp_path):
    curves = {}
    for state in (0, 1):
        session = make_session(store=tmp_path / f"s{state}.sqlite", random_state=state)
        curves[state] = session.simulate(
            oracle="true_label", budget=12, seeds=2, learner="decision-tree"
        )
    first = curves[0][curves[0]["seed"] == 1]["accuracy"].to_numpy()
    second = curves[1][curves[1]["seed"] == 0]["accuracy"].to_numpy()
    assert not (len(first) == len(second) and np.array_equal(first, second))
