"""Tests of the live queue: a background trainer that never makes the labeller wait.

The slow learner is a real decision tree whose ``fit`` waits on a :class:`threading.Event`
that the test opens: the order of events is set by the test and read from model
versions, never from elapsed time. Timeouts below only keep a broken build from hanging.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from armillary import strategies as st
from armillary.learners import Learner
from helpers import label_rows, pool_rows

#: Long enough never to be reached by a working build.
PATIENCE = 60


def gated_tree() -> type[DecisionTreeClassifier]:
    """A new real decision-tree class whose ``fit`` waits while its ``gate`` is closed.

    ``blocked`` is set by a fit that found the gate closed (so it is waiting now, holding
    the trainer); ``fits`` records the number of labels of every fit, in order.
    """

    class GatedTree(DecisionTreeClassifier):
        gate = threading.Event()
        blocked = threading.Event()
        fits: list[int] = []  # noqa: RUF012 (class state shared by the trainer's clones)

        def fit(self, X, y, sample_weight=None, check_input=True):
            cls = type(self)
            cls.fits.append(len(y))
            if not cls.gate.is_set():
                cls.blocked.set()
                if not cls.gate.wait(PATIENCE):
                    raise RuntimeError("the test never opened the gate")
            return super().fit(X, y, sample_weight=sample_weight, check_input=check_input)

    GatedTree.gate.set()
    return GatedTree


def close_gate(tree: type[DecisionTreeClassifier]) -> None:
    tree.blocked.clear()
    tree.gate.clear()


class Recorder:
    """Every change the session reports, with the queue current at that moment."""

    def __init__(self, session) -> None:
        self.session = session
        self.seen: list[tuple[str, int, int, str]] = []
        self.changed = threading.Condition()
        session.on_change(self)

    def __call__(self, event: str) -> None:
        with self.changed:  # read under the lock: the record is in the order of reading
            queue = self.session._trainer.queue
            self.seen.append((event, queue.version, queue.trained_on, queue.kind))
            self.changed.notify_all()

    def wait_for(self, trained_on: int) -> bool:
        """Until a queue from a model trained on ``trained_on`` labels is published."""
        with self.changed:
            return self.changed.wait_for(
                lambda: (
                    self.session._trainer.queue.trained_on == trained_on
                    and self.session.model_version > 0
                ),
                timeout=PATIENCE,
            )

    def models(self) -> list[tuple[int, int]]:
        return [(v, n) for event, v, n, _ in self.seen if event == "model"]


def test_next_answers_from_the_old_model_while_a_refit_runs(make_session, truth):
    tree = gated_tree()
    session = make_session(learner=tree(random_state=0), queue_size=30)
    rows = pool_rows(session, truth, 2, seed=1)
    label_rows(session, [r for name in rows for r in rows[name]], truth)
    assert session.refresh() >= 1
    close_gate(tree)
    try:
        candidate = session.next()
        session.label(candidate.id, truth[candidate.position])
        assert tree.blocked.wait(PATIENCE), "the trainer never started a refit"
        # The trainer is inside fit, holding the only way to publish a model.
        before = session.model_version
        assert before >= 1
        following = session.next()
        assert following.id != candidate.id
        assert following.model_version == before
        assert following.score is not None  # ranked by the old model, not a cold order
        assert session.query(3)[0] == following.id
        assert session.model_version == before
        assert session.model.n_labels_ == 6
    finally:
        tree.gate.set()
    assert session.wait_for_model(before + 1, timeout=PATIENCE)
    session.refresh()
    assert session.model.n_labels_ == 7


def test_a_refit_in_progress_is_superseded_by_newer_labels(make_session, truth):
    tree = gated_tree()
    session = make_session(learner=tree(random_state=0), queue_size=30)
    rows = pool_rows(session, truth, 4, seed=2)
    label_rows(session, [rows[name][i] for name in rows for i in (0, 1)], truth)
    assert session.refresh() >= 1
    close_gate(tree)
    try:
        label_rows(session, [rows["Star"][2]], truth)
        assert tree.blocked.wait(PATIENCE), "the trainer never started a refit"
        before = session.model_version
        recorder = Recorder(session)
        fits_before = len(tree.fits)
        more = [rows["Galaxy"][2], rows["QSO"][2], rows["Star"][3], rows["Galaxy"][3],
                rows["QSO"][3]]  # fmt: skip
        label_rows(session, more, truth)
        assert session.model_version == before  # nothing published while blocked
    finally:
        tree.gate.set()
    assert recorder.wait_for(trained_on=12), recorder.seen
    # One model for the five labels: the stale refit was dropped, then one refit on all.
    assert recorder.models() == [(before + 1, 12)]
    assert tree.fits[fits_before:] == [12]
    positions, _ = session.training_data()
    assert len(positions) == session._trainer.queue.trained_on == 12


def test_every_queue_carries_its_version_and_versions_only_grow(make_session, truth):
    session = make_session(queue_size=20)
    recorder = Recorder(session)
    candidates = []
    for _ in range(14):
        candidate = session.next()
        candidates.append(candidate.model_version)
        assert candidate.model_version <= session.model_version
        session.label(candidate.id, truth[candidate.position])
    final = session.refresh()
    assert final >= 1
    assert candidates == sorted(candidates)
    versions = [v for _, v, _, _ in recorder.seen]
    assert versions == sorted(versions)
    models = [v for v, _ in recorder.models()]
    assert models == sorted(models)
    assert models[0] >= 1
    assert models[-1] >= final  # (an event reads the queue current when it is handled)
    trained_on = [n for _, n in recorder.models()]
    assert trained_on == sorted(trained_on)
    for event, version, _, kind in recorder.seen:
        assert (kind == "model") == (version > 0), (event, version, kind)
    # The current queue is the current model's ranking, not a mix with an older one.
    queue, model = session._trainer.queue, session.model
    top = -np.sort(-model.predict_proba(session._X[queue.positions]), axis=1)
    assert_allclose(queue.scores, 1.0 - (top[:, 0] - top[:, 1]), rtol=1e-5)


def test_pool_sample_rescores_the_full_pool_every_few_rounds(make_session, truth):
    session = make_session(learner="logistic-regression", pool_sample=500, full_every=3,
                           queue_size=20)  # fmt: skip
    rows = pool_rows(session, truth, 5, seed=3)
    label_rows(session, [r for name in rows for r in rows[name]], truth)
    assert session.refresh() >= 1
    labelled, _ = session.training_data()
    pool = np.setdiff1d(np.arange(len(session)), np.union1d(labelled, session.evaluation.held_out))
    P = session.model.predict_proba(session._X[pool])
    top = -np.sort(-P, axis=1)
    best = set(pool[np.argsort(-(1.0 - (top[:, 0] - top[:, 1])))[:20]].tolist())
    full_rounds = []
    for _ in range(6):
        assert session.refresh() >= 1
        positions = [session.catalogue.position(i) for i in session.query(20)]
        assert len(set(positions)) == 20
        assert set(positions) <= set(pool.tolist())
        full_rounds.append(set(positions) == best)
    # Two rounds in three score a 500-row sample, which misses some of the best 20.
    assert any(full_rounds)
    assert not all(full_rounds)


@pytest.mark.parametrize("pool_sample", [10_000, None])
def test_pool_sample_larger_than_the_pool_scores_everything(pool_sample, make_session, truth):
    session = make_session(pool_sample=pool_sample, queue_size=20)
    rows = pool_rows(session, truth, 3, seed=4)
    labelled = set(label_rows(session, [r for name in rows for r in rows[name]], truth))
    assert session.refresh() >= 1
    picks = session.query(20)
    assert len(set(picks)) == 20
    assert not set(picks) & labelled


# -- fused rescoring: the same picks as predict_proba, or the predict_proba path ---------


class ProbaOnly:
    """A learner seen only through ``predict_proba``: the unfused path, as reference."""

    def __init__(self, learner) -> None:
        self.learner = learner

    def predict_proba(self, X):
        return self.learner.predict_proba(X)


@pytest.fixture(scope="module")
def pool(catalogue, session_kwargs) -> dict[str, np.ndarray]:
    """Features with some values missing, codes, a training set and an exclude mask."""
    rng = np.random.default_rng(0)
    X = catalogue.to_numpy(session_kwargs["features"], dtype=np.float32)
    X[rng.random(X.shape) < 0.03] = np.nan
    codes = catalogue.column("true_label").astype(np.int64)
    train = rng.choice(len(X), size=120, replace=False)
    exclude = np.zeros(len(X), dtype=bool)
    exclude[train] = True
    exclude[rng.choice(len(X), size=200, replace=False)] = True
    return {"X": X, "codes": codes, "train": train, "exclude": exclude}


def fitted(pool, learner, *, scheme="multiclass", scale=None, classes=None):
    train = pool["train"]
    if classes is not None:
        train = train[np.isin(pool["codes"][train], classes)]
    return Learner(learner, scheme=scheme, scale=scale, n_classes=3, random_state=0).fit(
        pool["X"][train], pool["codes"][train]
    )


def both_paths(pool, model, strategy, *, rows=None, k=25):
    """(fused, reference) rankings: rank_pool on the learner and on its predict_proba."""
    kw = {"exclude": pool["exclude"], "random_state": 7, "chunk_rows": 700, "rows": rows}
    fused = st.rank_pool(model, pool["X"], k, strategy, **kw)
    reference = st.rank_pool(ProbaOnly(model), pool["X"], k, strategy, **kw)
    return fused, reference


def forest(kind, **kw):
    # n_jobs=1: with threads scikit-learn sums the trees' probabilities in the order the
    # threads finish, so the reference itself could differ in the last bit run to run.
    cls = {"forest": RandomForestClassifier, "extra": ExtraTreesClassifier}[kind]
    return cls(n_estimators=25, n_jobs=1, random_state=0, **kw)


@pytest.mark.parametrize("strategy", ["margin", "least-confidence", "entropy"])
@pytest.mark.parametrize("scale", [None, "robust"])
@pytest.mark.parametrize("scheme", ["multiclass", "one-vs-rest"])
@pytest.mark.parametrize("kind", ["forest", "extra"])
def test_fused_rescoring_picks_what_predict_proba_picks(pool, kind, scheme, scale, strategy):
    model = fitted(pool, forest(kind), scheme=scheme, scale=scale)
    scorer = st.fused_scorer(model, strategy)
    assert scorer is not None
    # Probabilities bit for bit, with missing values imputed and features scaled.
    assert np.isnan(pool["X"][:500]).any()
    assert_array_equal(scorer.predict_proba(pool["X"]), model.predict_proba(pool["X"]))
    (fused_idx, fused_scores), (ref_idx, ref_scores) = both_paths(pool, model, strategy)
    assert_array_equal(fused_idx, ref_idx)
    assert_array_equal(fused_scores, ref_scores)
    assert not pool["exclude"][fused_idx].any()


@pytest.mark.parametrize("strategy", ["margin", "entropy"])
@pytest.mark.parametrize(
    "learner", ["decision-tree", "random-forest", "extra-trees", "pipeline", "shallow"]
)
def test_fused_rescoring_of_named_and_wrapped_trees(pool, learner, strategy):
    spec = {
        "pipeline": make_pipeline(StandardScaler(), forest("forest")),
        # Few leaves: many rows tie on score, so the seeded tie-break decides.
        "shallow": forest("extra", max_depth=2),
    }.get(learner, learner)
    model = fitted(pool, spec, scale="standard")
    assert st.fused_scorer(model, strategy) is not None
    for rows in (None, np.arange(0, len(pool["X"]), 3)):
        fused, reference = both_paths(pool, model, strategy, rows=rows)
        assert_array_equal(fused[0], reference[0])
        assert_array_equal(fused[1], reference[1])


@pytest.mark.parametrize("scheme", ["multiclass", "one-vs-rest"])
@pytest.mark.parametrize("strategy", ["margin", "least-confidence", "entropy"])
def test_fused_rescoring_before_every_class_has_labels(pool, scheme, strategy):
    """A model that knows two of three classes: the absent class scores as zero."""
    model = fitted(pool, forest("forest"), scheme=scheme, classes=[0, 2])
    scorer = st.fused_scorer(model, strategy)
    assert scorer is not None
    assert_array_equal(scorer.predict_proba(pool["X"]), model.predict_proba(pool["X"]))
    fused, reference = both_paths(pool, model, strategy)
    assert_array_equal(fused[0], reference[0])
    assert_array_equal(fused[1], reference[1])


def test_unsupported_learners_keep_the_predict_proba_path(pool):
    class OwnForest(RandomForestClassifier):  # may change predict_proba: not packed
        pass

    unsupported = [
        fitted(pool, "logistic-regression"),  # float32 products in scikit-learn: not exact
        fitted(pool, "logistic-regression", scheme="one-vs-rest"),
        fitted(pool, "hist-gradient-boosting"),
        fitted(pool, "knn"),
        fitted(pool, OwnForest(n_estimators=5, random_state=0)),
        fitted(pool, ["random-forest", "extra-trees"]),  # a committee
        fitted(pool, ["decision-tree", "extra-trees"], scheme="one-vs-rest"),
    ]
    for model in unsupported:
        assert st.fused_scorer(model, "margin") is None, model
        fused, reference = both_paths(pool, model, "margin")
        assert_array_equal(fused[0], reference[0])
    forest_model = fitted(pool, "decision-tree")
    for strategy in ("random", "vote-entropy", st.SINGLE[0]):
        expected = strategy in st.FUSED
        assert (st.fused_scorer(forest_model, strategy) is not None) == expected
    assert st.fused_scorer(forest_model, lambda *a, **kw: None) is None
    assert st.fused_scorer(ProbaOnly(forest_model), "margin") is None


def test_the_trainer_publishes_the_fused_ranking(make_session, truth):
    session = make_session(learner=forest("forest"), queue_size=30)
    rows = pool_rows(session, truth, 4, seed=5)
    label_rows(session, [r for name in rows for r in rows[name]], truth)
    assert session.refresh() >= 1
    model, queue = session.model, session._trainer.queue
    assert st.fused_scorer(model, "margin") is not None
    labelled, _ = session.training_data()
    exclude = np.zeros(len(session), dtype=bool)
    exclude[labelled] = True
    exclude[session.evaluation.held_out] = True
    reference = st.rank_pool(ProbaOnly(model), session._X, 30, "margin", exclude=exclude,
                             random_state=0, chunk_rows=1000)  # fmt: skip
    assert_array_equal(queue.positions, reference[0])
    assert_array_equal(queue.scores, reference[1])
