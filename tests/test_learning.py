"""Tests of the learning engine: learners, schemes, scaling and imputation, strategies,
batches, cold start, rounds and metrics, suspect labels and saved models.

Everything runs on the shared example catalogue (a real FITS file), real SQLite stores
and real scikit-learn estimators; the generator's ``true_label`` column is the oracle.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from modAL.disagreement import vote_entropy_sampling
from modAL.uncertainty import margin_sampling, uncertainty_sampling
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score, balanced_accuracy_score, matthews_corrcoef
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.validation import check_is_fitted

from armillary import _batch, strategies
from armillary.learners import LEARNERS, Learner
from armillary.model_io import TREE_TYPES, load_model
from helpers import label_rows, pool_rows

CLASSES = ["Star", "Galaxy", "QSO"]


# -- helpers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def X(catalogue, session_kwargs) -> np.ndarray:  # noqa: N802 (scikit-learn's X)
    """The session features of every catalogue row (no missing values)."""
    return catalogue.to_numpy(session_kwargs["features"], dtype=np.float32)


@pytest.fixture(scope="module")
def codes(catalogue) -> np.ndarray:
    """True class codes of every row (0 Star, 1 Galaxy, 2 QSO)."""
    return catalogue.column("true_label").astype(np.int64)


def pick(codes, per_class, classes=(0, 1, 2), seed=0) -> np.ndarray:
    """``per_class`` random rows of each of ``classes``."""
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.choice(np.flatnonzero(codes == c), per_class, replace=False) for c in classes]
    )


def label_each_class(session, truth, per_class, seed=0) -> list:
    rows = pool_rows(session, truth, per_class, seed)
    return [i for name in rows for i in label_rows(session, rows[name], truth)]


def positions_of(session, ids) -> np.ndarray:
    return np.array([session.catalogue.position(i) for i in ids], dtype=np.int64)


def pool_positions(session) -> np.ndarray:
    """Rows the session may propose: not labelled, not held out."""
    labelled, _ = session.training_data()
    taken = np.union1d(labelled, session.evaluation.held_out)
    return np.setdiff1d(np.arange(len(session)), taken)


def robust_standardise(pool: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre on the pool's medians and divide by its interquartile ranges, by hand.

    Missing values (the example catalogue's infrared non-detections) take the pool medians.
    """
    med = np.nanmedian(pool, axis=0)
    q75, q25 = np.nanpercentile(pool, [75, 25], axis=0)
    spread = np.where(q75 - q25 > 0, q75 - q25, 1.0)
    pool, other = (np.where(np.isnan(a), med, a) for a in (pool, other))
    return (pool - med) / spread, (other - med) / spread


def entropy(P: np.ndarray) -> np.ndarray:
    logs = np.log(np.where(P > 0, P, 1.0))
    return -(P * logs).sum(axis=-1)


def hand_scores(strategy: str, model: Learner, X: np.ndarray) -> np.ndarray:
    """Each strategy's measure, "higher is more informative", computed in numpy."""
    if strategy in strategies.COMMITTEE:
        members = model.member_proba(X).astype(np.float64)
        mean = members.mean(axis=0)
        if strategy == "vote-entropy":
            votes = members.argmax(axis=2)
            shares = np.stack([(votes == c).mean(axis=0) for c in range(mean.shape[1])], 1)
            return entropy(shares)
        if strategy == "consensus-entropy":
            return entropy(mean)
        safe = np.where(members > 0, members, 1.0)
        kl = (members * (np.log(safe) - np.log(np.where(mean > 0, mean, 1.0)))).sum(axis=2)
        return kl.max(axis=0)
    P = model.predict_proba(X).astype(np.float64)
    top = -np.sort(-P, axis=1)
    if strategy == "least-confidence":
        return 1.0 - top[:, 0]
    if strategy == "margin":
        return 1.0 - (top[:, 0] - top[:, 1])
    return entropy(P)


# -- learners by name --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_every_named_learner_gives_one_probability_column_per_class(name, X, codes):
    rows = pick(codes, 8, seed=1)
    model = Learner(name, n_classes=3).fit(X[rows], codes[rows])
    P = model.predict_proba(X)
    assert P.shape == (len(X), 3)
    assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)
    assert (P >= 0).all()
    assert model.n_labels_ == 24
    assert_array_equal(model.classes_, [0, 1, 2])
    assert_array_equal(model.predict(X[:50]), P[:50].argmax(axis=1))


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_a_class_without_labels_gets_a_zero_column(name, X, codes):
    rows = pick(codes, 8, classes=(0, 2), seed=2)  # no Galaxy labelled yet
    model = Learner(name, n_classes=3).fit(X[rows], codes[rows])
    P = model.predict_proba(X)
    assert P.shape == (len(X), 3)
    assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)
    assert (P[:, 1] == 0).all()
    assert set(model.predict(X)) <= {0, 2}


def test_unknown_learner_name_lists_the_valid_ones(X, codes):
    with pytest.raises(ValueError, match="unknown learner 'svm'") as err:
        Learner("svm", n_classes=3).fit(X[:10], codes[:10])
    for name in LEARNERS:
        assert name in str(err.value)
    with pytest.raises(TypeError, match="predict_proba"):
        Learner(object(), n_classes=3).check()


def test_an_estimator_instance_is_cloned_never_fitted(X, codes):
    mine = DecisionTreeClassifier(max_depth=2, random_state=5)
    rows = pick(codes, 10)
    model = Learner([mine, "logistic-regression"], n_classes=3).fit(X[rows], codes[rows])
    with pytest.raises(NotFittedError):
        check_is_fitted(mine)
    tree = model.members_[0]
    assert tree is not mine
    assert isinstance(tree, DecisionTreeClassifier)
    assert tree.get_depth() <= 2
    assert mine.get_params() == {**tree.get_params(), "random_state": 5}


def test_an_unseeded_estimator_is_seeded_from_random_state(X, codes):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = pick(codes, 20)
    mine = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5))
    fitted = [Learner(mine, n_classes=3, random_state=3).fit(X[rows], codes[rows]) for _ in "ab"]
    assert fitted[0].members_[0].get_params()["randomforestclassifier__random_state"] == 3
    assert_array_equal(fitted[0].predict_proba(X), fitted[1].predict_proba(X))
    assert mine.get_params()["randomforestclassifier__random_state"] is None  # not changed
    own = Learner(RandomForestClassifier(n_estimators=5, random_state=11), n_classes=3)
    assert own.fit(X[rows], codes[rows]).members_[0].random_state == 11


def test_knn_with_fewer_labels_than_neighbours(X, codes):
    rows = np.concatenate([pick(codes, 2, classes=(0,)), pick(codes, 1, classes=(1,))])
    model = Learner("knn", n_classes=3).fit(X[rows], codes[rows])  # 3 labels, 5 neighbours
    assert model.members_[0][-1].n_neighbors == 3
    P = model.predict_proba(X)
    assert P.shape == (len(X), 3)
    assert_allclose(P, np.broadcast_to([2 / 3, 1 / 3, 0.0], P.shape))  # every label votes
    # A user's instance is not changed either, and one-vs-rest shrinks it too.
    mine = KNeighborsClassifier(n_neighbors=10)
    rows = pick(codes, 2)
    ovr = Learner(mine, scheme="one-vs-rest", n_classes=3).fit(X[rows], codes[rows])
    assert ovr.predict_proba(X).shape == (len(X), 3)
    assert mine.n_neighbors == 10


# -- schemes -----------------------------------------------------------------------------


def test_one_vs_rest_has_one_estimator_per_class_and_each_label_teaches_all(X, codes):
    rows = pick(codes, 5)
    model = Learner("decision-tree", scheme="one-vs-rest", n_classes=3).fit(X[rows], codes[rows])
    (member,) = model.members_
    assert sorted(member.estimators_) == [0, 1, 2]
    for est in member.estimators_.values():
        assert est.tree_.n_node_samples[0] == len(rows)
        assert_array_equal(est.classes_, [0, 1])
    # One more label, of a QSO, reaches the Star and Galaxy estimators as well.
    qso = np.setdiff1d(np.flatnonzero(codes == 2), rows)[0]
    more = np.append(rows, qso)
    model = Learner("decision-tree", scheme="one-vs-rest", n_classes=3).fit(X[more], codes[more])
    for est in model.members_[0].estimators_.values():
        assert est.tree_.n_node_samples[0] == len(rows) + 1
    # predict_proba is the per-class probabilities, normalised.
    Xt = model.transform(X)
    raw = np.column_stack([model.members_[0].estimators_[c].predict_proba(Xt)[:, 1]
                           for c in range(3)])  # fmt: skip
    total = raw.sum(axis=1, keepdims=True)
    expected = np.where(total > 0, raw / np.where(total > 0, total, 1.0), 1.0 / 3)
    assert_allclose(model.predict_proba(X), expected)


def test_one_vs_rest_with_a_class_unlabelled(X, codes):
    rows = pick(codes, 6, classes=(0, 1))
    model = Learner("logistic-regression", scheme="one-vs-rest", n_classes=3)
    model.fit(X[rows], codes[rows])
    assert sorted(model.members_[0].estimators_) == [0, 1]
    assert model.members_[0].constant_ == {2: 0.0}
    P = model.predict_proba(X)
    assert (P[:, 2] == 0).all()
    assert_allclose(P.sum(axis=1), 1.0)


def test_a_committee_gives_members_votes_and_their_mean(X, codes):
    rows = pick(codes, 6)
    model = Learner(["decision-tree", "logistic-regression", "knn"], n_classes=3)
    model.fit(X[rows], codes[rows])
    assert len(model) == 3
    members = model.member_proba(X)
    assert members.shape == (3, len(X), 3)
    assert_allclose(members.sum(axis=2), 1.0, rtol=1e-5)
    votes = model.vote(X)
    assert votes.shape == (len(X), 3)
    assert_array_equal(votes, members.argmax(axis=2).T)
    assert (votes != votes[:, :1]).any()  # the members disagree somewhere
    vote_proba = model.vote_proba(X)
    assert vote_proba.shape == (len(X), 3, 3)
    assert_array_equal(vote_proba[:, 1, :], members[1])
    assert_allclose(model.predict_proba(X), members.mean(axis=0))
    # Member i is seeded random_state + i: the same as fitting it alone with that seed.
    alone = Learner("decision-tree", n_classes=3, random_state=0).fit(X[rows], codes[rows])
    assert_array_equal(members[0], alone.predict_proba(X))
    with pytest.raises(ValueError, match="at least two"):
        Learner(["knn"], n_classes=3).fit(X[rows], codes[rows])


@pytest.mark.parametrize(
    ("kwargs", "valid"),
    [({"scheme": "pairwise"}, "multiclass, one-vs-rest"), ({"scale": "minmax"}, "'robust'")],
)
def test_unknown_scheme_or_scale_is_refused(kwargs, valid, X, codes, make_session):
    with pytest.raises(ValueError, match=valid):
        Learner("decision-tree", n_classes=3, **kwargs).fit(X[:20], codes[:20])
    with pytest.raises(ValueError, match=valid):
        make_session(**kwargs)


# -- scaling and missing values ----------------------------------------------------------


@pytest.mark.parametrize("scale", ["standard", "robust"])
def test_scaling_is_fitted_on_the_labelled_rows_only(scale, X, codes):
    rows = pick(codes, 7, seed=4)
    model = Learner("logistic-regression", scale=scale, n_classes=3).fit(X[rows], codes[rows])
    mine = X[rows].astype(np.float64)
    medians = np.nanmedian(mine, axis=0)  # missing values take the labelled rows' medians
    mine = np.where(np.isnan(mine), medians, mine)
    if scale == "standard":
        centre, spread = mine.mean(axis=0), mine.std(axis=0)
        fitted = model.scaler_.mean_, model.scaler_.scale_
        everyone = np.nanmean(X, axis=0)
    else:
        q75, q50, q25 = np.percentile(mine, [75, 50, 25], axis=0)
        centre, spread = q50, q75 - q25
        fitted = model.scaler_.center_, model.scaler_.scale_
        everyone = np.nanmedian(X, axis=0)
    assert_allclose(fitted[0], centre, rtol=1e-4, atol=1e-6)
    assert_allclose(fitted[1], spread, rtol=1e-4, atol=1e-6)
    assert not np.allclose(fitted[0], everyone, rtol=1e-3)  # not the whole catalogue's
    first = np.where(np.isnan(X[:20]), medians, X[:20])
    assert_allclose(model.transform(X[:20]), (first - centre) / spread, rtol=1e-4, atol=1e-4)


def test_missing_values_take_the_medians_of_the_labelled_rows(catalogue, codes):
    X = catalogue.to_numpy(["g - r", "Lx"], dtype=np.float32)
    rows = pick(codes, 12, seed=3)
    assert 2 <= np.isfinite(X[rows, 1]).sum() < len(rows)
    model = Learner("decision-tree", n_classes=3).fit(X[rows], codes[rows])
    medians = np.nanmedian(X[rows], axis=0)
    assert_allclose(model.medians_, medians)
    assert not np.isclose(medians[1], np.nanmedian(X[:, 1]))  # not the catalogue's median
    missing = np.flatnonzero(np.isnan(X[:, 1]))[:30]
    assert_allclose(model.transform(X[missing])[:, 1], medians[1])
    assert_allclose(model.transform(X[missing])[:, 0], X[missing, 0])
    infinite = X[:3].copy()
    infinite[:, 1] = [np.inf, -np.inf, np.nan]
    assert_allclose(model.transform(infinite)[:, 1], medians[1])
    assert np.isfinite(model.predict_proba(X)).all()


def test_a_feature_no_labelled_row_has_is_imputed_quietly(catalogue, codes):
    X = catalogue.to_numpy(["g - r", "Lx"], dtype=np.float32)
    rows = pick(codes, 12, seed=3)
    X[rows, 1] = np.nan  # e.g. an X-ray flux none of the first sources has
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = Learner("extra-trees", n_classes=3).fit(X[rows], codes[rows])
    assert model.medians_[1] == 0.0
    assert model.medians_[0] == np.median(X[rows, 0])
    assert np.isfinite(model.predict_proba(X)).all()


def test_missing_exclude_keeps_incomplete_rows_out_of_the_pool(
    make_session, catalogue, truth, session_kwargs, tmp_path
):
    features = [*session_kwargs["features"], "Lx"]
    complete = np.isfinite(catalogue.to_numpy(features, dtype=np.float32)).all(axis=1)
    assert 0.8 < 1 - complete.mean() < 1.0
    session = make_session(features=features, missing="exclude", queue_size=30)
    assert session.report["missing"] == "excluded"
    assert session.report["rows_with_missing"] == int((~complete).sum())
    assert session.report["per_feature"]["Lx"] == int(np.isnan(catalogue.column("Lx")).sum())
    assert session.report["per_feature"]["g - r"] == 0

    assert complete[positions_of(session, session.query(30))].all()  # the seed set
    for _ in range(15):
        candidate = session.next()
        assert complete[candidate.position]
        session.label(candidate.id, truth[candidate.position])
    assert session.refresh() >= 1
    assert complete[session.next().position]
    everything = positions_of(session, session.query(len(session)))
    assert_array_equal(np.sort(everything), np.intersect1d(pool_positions(session),
                                                           np.flatnonzero(complete)))  # fmt: skip

    kept = make_session(features=features, missing="impute", store=tmp_path / "impute.sqlite")
    assert kept.report["missing"].startswith("imputed")
    assert kept.report["rows_with_missing"] == int((~complete).sum())
    everything = positions_of(kept, kept.query(len(kept)))
    assert len(everything) == len(kept) - kept.counts["held_out"]
    assert not complete[everything].all()


# -- strategies --------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", strategies.NAMES)
def test_every_named_strategy_ranks_the_pool(strategy, make_session, truth, X):
    committee = strategy in strategies.COMMITTEE
    learner = ["logistic-regression", "knn"] if committee else "logistic-regression"
    session = make_session(learner=learner, strategy=strategy, queue_size=30)
    labelled = set(label_each_class(session, truth, per_class=6))
    assert session.refresh() >= 1
    picks = session.query(10)
    assert len(set(picks)) == 10
    assert not set(picks) & labelled
    assert set(positions_of(session, picks)) <= set(pool_positions(session))
    before = session.model_version  # (the background trainer may publish meanwhile)
    candidate = session.next()
    assert candidate.id == picks[0]
    assert before <= candidate.model_version <= session.model_version
    if strategy == "random":
        margins = hand_scores("margin", session.model, X[pool_positions(session)])
        top = pool_positions(session)[np.argsort(-margins)[:10]]
        assert set(positions_of(session, picks)) != set(top)
        return
    pool = pool_positions(session)
    scores = hand_scores(strategy, session.model, X[pool])
    assert candidate.score == pytest.approx(scores.max(), rel=1e-5)
    # The picks carry the ten highest scores of the pool (ties in any order).
    chosen = hand_scores(strategy, session.model, X[positions_of(session, picks)])
    assert_allclose(np.sort(chosen), np.sort(scores)[-10:], rtol=1e-5)


def test_a_committee_measure_needs_a_committee(make_session):
    with pytest.raises(ValueError, match="committee"):
        make_session(strategy="vote-entropy")


def test_unknown_strategy_lists_the_valid_names(make_session):
    with pytest.raises(ValueError, match="unknown strategy 'most-confused'") as err:
        make_session(strategy="most-confused")
    for name in strategies.NAMES:
        assert name in str(err.value)


@pytest.mark.parametrize(
    ("modal", "name"), [(uncertainty_sampling, "least-confidence"), (margin_sampling, "margin")]
)
def test_modal_strategies_plug_in_unchanged(modal, name, make_session, truth, tmp_path):
    ours = make_session(learner="logistic-regression", strategy=name, store=tmp_path / "a.sqlite")
    theirs = make_session(learner="logistic-regression", strategy=modal,
                          store=tmp_path / "b.sqlite")  # fmt: skip
    for session in (ours, theirs):
        label_each_class(session, truth, per_class=6, seed=2)
        assert session.refresh() >= 1
    for k in (1, 10, 37):
        assert set(theirs.query(k)) == set(ours.query(k))
    assert theirs.next().id == ours.next().id  # modAL's own first choice


def test_a_modal_committee_strategy_plugs_in(make_session, truth, X):
    session = make_session(
        learner=["decision-tree", "logistic-regression", "knn"], strategy=vote_entropy_sampling
    )
    labelled = set(label_each_class(session, truth, per_class=6))
    assert session.refresh() >= 1
    picks = session.query(10)
    assert len(set(picks)) == 10
    assert not set(picks) & labelled
    pool = pool_positions(session)
    entropies = hand_scores("vote-entropy", session.model, X[pool])
    chosen = hand_scores("vote-entropy", session.model, X[positions_of(session, picks)])
    assert_allclose(np.sort(chosen), np.sort(entropies)[-10:])
    assert chosen.min() > 0


def test_a_strategy_returning_bad_indices_is_an_error(make_session, truth):
    def broken(learner, X, n_instances=1):
        return np.arange(n_instances) + len(X), np.zeros(n_instances)

    failed = threading.Event()
    session = make_session(strategy=broken)
    session.on_change(lambda event: failed.set() if event == "error" else None)
    label_each_class(session, truth, per_class=3)
    with pytest.raises(ValueError, match="broken returned indices outside 0"):
        session.refresh()
    assert failed.wait(60), "the background trainer did not report the error"
    assert session.model_version == 0


# -- batches -----------------------------------------------------------------------------


def test_a_diverse_batch_holds_no_near_copies_unlike_the_top_of_the_ranking(make_session, truth):
    session = make_session(learner="logistic-regression", scale="standard", queue_size=200)
    labelled = set(label_each_class(session, truth, per_class=5))
    assert session.refresh() >= 1
    top = session.query(10)
    diverse = session.query(10, diverse=True)
    assert len(set(diverse)) == 10
    assert not set(diverse) & labelled
    assert set(diverse) <= set(session.query(100))  # informative: from the top 100
    assert set(diverse) != set(top)

    def closest_pair(ids) -> float:
        Z = session.model.transform(session._X[positions_of(session, ids)])
        distances = np.sqrt(((Z[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2))
        return float(distances[np.triu_indices(len(ids), 1)].min())

    assert closest_pair(diverse) > 1.3 * closest_pair(top)  # no near-copies in the batch
    ranked = session.query(10, diverse="ranked")  # the other method, by name
    assert len(set(ranked)) == 10
    assert set(ranked) <= set(session.query(100))
    assert closest_pair(ranked) > closest_pair(top)
    with pytest.raises(ValueError, match="unknown diverse batch method 'kmeans'"):
        session.query(10, diverse="kmeans")


def test_a_diverse_batch_of_a_modal_strategy_keeps_its_direction(make_session, truth, tmp_path):
    # modAL's margin_sampling scores by margin, lower is better: the batch must lean to
    # the informative end of the candidates, as the batch of our own "margin" does.
    leaning = []
    for name, strategy in [("ours", "margin"), ("theirs", margin_sampling)]:
        session = make_session(learner="logistic-regression", scale="standard",
                               strategy=strategy, queue_size=200,
                               store=tmp_path / f"{name}.sqlite")  # fmt: skip
        label_each_class(session, truth, per_class=5)
        assert session.refresh() >= 1
        candidates, _ = session._ranked(100)
        proba = session.model.predict_proba(session._X[candidates])
        top = np.sort(proba, axis=1)[:, ::-1]
        margin = dict(zip(candidates.tolist(), top[:, 0] - top[:, 1], strict=True))
        picks = positions_of(session, session.query(10, diverse=True))
        assert set(picks.tolist()) <= set(margin)
        leaning.append(np.mean([margin[p] for p in picks]) < np.median(list(margin.values())))
    assert leaning == [True, True]


def test_a_clustered_batch_takes_a_central_row_of_each_cluster_leaning_uncertain():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0]])
    blob = np.repeat(np.arange(3), 40)
    features = centres[blob] + rng.normal(size=(120, 2))
    # Inside each blob the uncertain rows lie to the right (x above the blob's centre),
    # and one far outlier carries the best score of all.
    right = features[:, 0] > centres[blob, 0]
    scores = np.where(right, 0.8, 0.1) + 0.01 * rng.random(120)
    features[0] = [0.0, -30.0]
    scores[0] = 1.0
    for method in ("auto", "clusters"):
        picks = strategies.diverse_batch(features, scores, 3, random_state=0, method=method)
        assert sorted(blob[picks]) == [0, 1, 2]
        assert 0 not in picks  # the outlier is not what a cluster is like
        assert right[picks].all()  # weighted centres sit among the uncertain rows
        assert (np.diff(scores[picks]) <= 0).all()  # best first
    # Fewer distinct rows than the batch: filled with the best-scored ones, no repeats.
    same = np.zeros((6, 2))
    picks = strategies.diverse_batch(same, np.arange(6.0), 4, method="clusters")
    assert len(set(picks.tolist())) == 4


def test_diverse_batch_edge_cases():
    scores = np.array([0.2, 0.9, 0.5])
    features = np.eye(3)
    assert_array_equal(strategies.diverse_batch(features, scores, 3), [1, 2, 0])
    assert_array_equal(strategies.diverse_batch(features, scores, 5), [1, 2, 0])
    assert_array_equal(strategies.diverse_batch(features, scores, 1), [1])


def test_ranked_batch_trades_uncertainty_against_distance():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0]])
    blob = np.repeat(np.arange(3), 20)
    features = centres[blob] + rng.normal(size=(60, 2))
    scores = np.where(blob == 0, 0.9, 0.5) + 0.01 * rng.random(60)  # blob 0 most uncertain
    # The top of the ranking is all blob 0; a ranked batch spreads over the blobs.
    picks = strategies.diverse_batch(features, scores, 3, labelled=np.empty((0, 2)),
                                     method="ranked")  # fmt: skip
    assert sorted(blob[picks]) == [0, 1, 2]
    assert blob[picks[0]] == 0
    assert scores[picks[0]] == scores.max()
    # A labelled row in blob 1 makes blob 1 the least wanted.
    near = strategies.diverse_batch(features, scores, 2, labelled=centres[[1]], method="ranked")
    assert sorted(blob[near]) == [0, 2]
    # alpha = 0: the top of the ranking; alpha = 1: farthest-first, scores ignored.
    top = _batch.ranked_batch(features, scores, 5, centres[[1]], alpha=0.0)
    assert_array_equal(top, np.argsort(-scores)[:5])
    far = _batch.ranked_batch(features, -scores, 3, np.empty((0, 2)), alpha=1.0)
    assert sorted(blob[far]) == [0, 1, 2]
    assert len(set(_batch.ranked_batch(features, scores, 20, None))) == 20
    with pytest.raises(ValueError, match="alpha must be in"):
        _batch.ranked_batch(features, scores, 3, None, alpha=2.0)
    with pytest.raises(ValueError, match=r"unknown diverse batch method .kmeans.*ranked"):
        strategies.diverse_batch(features, scores, 3, method="kmeans")


# -- cold start --------------------------------------------------------------------------


def test_zero_labels_give_a_kmeans_plus_plus_seed_set(make_session, X):
    session = make_session(queue_size=15)
    queue = session._trainer.queue
    assert (queue.kind, queue.version, queue.trained_on) == ("seed", 0, 0)
    pool = pool_positions(session)
    features, _ = robust_standardise(X[pool].astype(np.float64), X[:0])
    expected = pool[strategies.seed_order(features, 15, random_state=0)]
    assert_array_equal(queue.positions, expected)
    assert session.query(15) == [session.catalogue.id_at(int(p)) for p in expected]
    assert session.next().position == expected[0]
    assert "seed set" in session.status_text()


def test_seed_order_is_kmeans_plus_plus():
    rng = np.random.default_rng(1)
    features = np.concatenate([rng.normal(c, 0.1, size=(30, 2)) for c in (0.0, 10.0, 20.0)])
    order = strategies.seed_order(features, 3, random_state=0)
    assert sorted(order // 30) == [0, 1, 2]  # one per far-apart group
    assert_array_equal(order, strategies.seed_order(features, 3, random_state=0))
    assert len(strategies.seed_order(features[:2], 5)) == 2


def test_labels_of_one_class_explore_for_the_others(make_session, truth, X):
    session = make_session(queue_size=20)
    stars = pool_rows(session, truth, 8, seed=1)["Star"]
    label_rows(session, stars, truth)
    assert session.refresh() == 0
    queue = session._trainer.queue
    assert queue.kind == "explore"
    assert "other classes" in session.status_text()
    picks = positions_of(session, session.query(20))
    assert set(truth[picks]) - {"Star"}
    # The first pick is the pool row farthest from every labelled star.
    pool = pool_positions(session)
    features, labelled = robust_standardise(X[pool].astype(np.float64), X[stars])
    nearest = ((features[:, None, :] - labelled[None, :, :]) ** 2).sum(axis=2).min(axis=1)
    assert picks[0] == pool[np.argmax(nearest)]


def test_balance_interleaves_the_predicted_classes(make_session, truth, X, tmp_path):
    predicted = {}
    for balance in (True, False):
        session = make_session(learner="logistic-regression", balance=balance, queue_size=30,
                               store=tmp_path / f"{balance}.sqlite")  # fmt: skip
        rows = pool_rows(session, truth, 10, seed=6)
        label_rows(session, [*rows["Star"], *rows["Galaxy"][:6], *rows["QSO"][:3]], truth)
        assert session.refresh() >= 1
        queue = session._trainer.queue
        predicted[balance] = session.model.predict(X[queue.positions[:15]]).tolist()
        assert positions_of(session, session.query(15)).tolist() == queue.positions[:15].tolist()
    # Rarest class first (3 QSO, 6 Galaxy, 10 Star labels), then round and round.
    assert predicted[True] == [2, 1, 0] * 5
    assert predicted[False] != [2, 1, 0] * 5


class _PredictedAs:
    """The reference per-class ranking: the model's probabilities, rows predicted as
    another class hidden as NaN, ranked by rank_pool one class at a time."""

    def __init__(self, model, c):
        self.model, self.c = model, c

    def predict_proba(self, X):
        P = self.model.predict_proba(X)
        return np.where((np.argmax(P, axis=1) == self.c)[:, None], P, np.nan)


@pytest.mark.parametrize("learner", ["random-forest", "logistic-regression"])
@pytest.mark.parametrize("strategy", ["margin", "entropy", "least-confidence"])
def test_one_pass_by_class_ranks_as_each_class_alone(X, codes, learner, strategy):
    rng = np.random.default_rng(3)
    labelled = rng.choice(len(X), 60, replace=False)
    model = Learner(learner, n_classes=3, random_state=0).fit(X[labelled], codes[labelled])
    exclude = np.zeros(len(X), dtype=bool)
    exclude[labelled] = True
    exclude[rng.choice(len(X), 100, replace=False)] = True
    kw = {"exclude": exclude, "random_state": 7, "chunk_rows": 333}
    for rows in (None, np.sort(rng.choice(len(X), 900, replace=False))):
        per_class = strategies.rank_pool_by_class(model, X, 25, strategy, n_classes=3,
                                                  rows=rows, **kw)  # fmt: skip
        for c in range(3):
            want = strategies.rank_pool(_PredictedAs(model, c), X, 25, strategy, rows=rows, **kw)
            assert_array_equal(per_class[c][0], want[0])
            assert_array_equal(per_class[c][1], want[1])
            assert (model.predict(X[per_class[c][0]]) == c).all()
            assert not exclude[per_class[c][0]].any()
    random = strategies.rank_pool_by_class(model, X, 25, "random", n_classes=3, **kw)
    for c in range(3):
        assert (model.predict(X[random[c][0]]) == c).all()
    assert strategies.rank_pool_by_class(model, X, 5, "margin", n_classes=3,
                                         cancelled=lambda: True, **kw) is None  # fmt: skip


# -- rounds and metrics ------------------------------------------------------------------


def test_each_round_is_scored_on_the_validation_set(make_session, truth):
    session = make_session(queue_size=20)
    validation = session.evaluation.validation
    catalogue_codes = session.catalogue_codes()
    assert validation.size > 0
    assert (catalogue_codes[validation] >= 0).all()
    rows = pool_rows(session, truth, 8, seed=2)
    for start, stop in [(0, 3), (3, 5), (5, 8)]:  # 9, 15 then 24 labels
        label_rows(session, [r for name in rows for r in rows[name][start:stop]], truth)
        assert session.refresh() >= 1
    frame = session.metrics
    rounds = frame[frame["split"] == "validation"]
    assert len(rounds) >= 3
    assert rounds["round"].tolist() == list(range(1, len(rounds) + 1))
    assert (rounds["model_version"] <= session.model_version).all()
    assert (rounds["n"] == validation.size).all()
    for name in CLASSES:
        for kind in ("precision", "recall", "f1"):
            assert rounds[f"{kind}_{name}"].between(0, 1).all()
    for confusion, accuracy in zip(rounds["confusion"], rounds["accuracy"], strict=True):
        confusion = np.asarray(confusion)
        assert confusion.shape == (3, 3)
        assert confusion.sum() == validation.size
        assert accuracy == pytest.approx(np.trace(confusion) / validation.size)
    # The last round's scores are those of the current model, computed here.
    last = rounds[rounds["n_labels"] == 24].iloc[-1]
    truth_codes = catalogue_codes[validation]
    predicted = session.model.predict(session._X[validation])
    assert last["accuracy"] == pytest.approx(accuracy_score(truth_codes, predicted))
    assert last["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(truth_codes, predicted)
    )
    assert last["matthews"] == pytest.approx(matthews_corrcoef(truth_codes, predicted))

    test_row = session.evaluation.evaluate("test")
    test = session.evaluation.test
    assert test_row["split"] == "test"
    assert test_row["n"] == test.size
    assert test_row["accuracy"] == pytest.approx(
        accuracy_score(catalogue_codes[test], session.model.predict(session._X[test]))
    )
    assert (session.metrics["split"] == "test").sum() == 1
    with pytest.raises(ValueError, match="'validation', 'test' or 'curated'"):
        session.evaluation.evaluate("train")


def test_held_out_rows_are_never_proposed_nor_trained_on(make_session, truth):
    session = make_session(queue_size=50)
    evaluation = session.evaluation
    held_out = set(evaluation.held_out.tolist())
    assert held_out == set(evaluation.validation) | set(evaluation.test)
    assert not set(evaluation.validation) & set(evaluation.test)
    assert len(held_out) == session.counts["held_out"] > 0
    # A held-out row labelled by hand keeps its label but is still not trained on.
    sneaky = int(evaluation.validation[0])
    label_rows(session, [sneaky], truth)
    label_each_class(session, truth, per_class=4)
    assert session.refresh() >= 1
    positions, _ = session.training_data()
    assert not set(positions.tolist()) & held_out
    assert session.model.n_labels_ == 12
    assert not set(positions_of(session, session.query(len(session))).tolist()) & held_out
    for _ in range(30):
        candidate = session.next()
        assert candidate.position not in held_out
        session.skip(candidate.id)


def test_advice_appears_after_a_few_rounds(make_session, truth):
    session = make_session(queue_size=20)
    rows = pool_rows(session, truth, 6, seed=4)
    for n in range(6):  # one more of each class per round
        label_rows(session, [rows[name][n] for name in rows], truth)
        session.refresh()
    assert "between the last two models" in session.status_text()
    frame = session.metrics
    assert frame["advice"].iloc[-1] in session.status_text()
    assert frame["agreement"].iloc[1:].between(0, 1).all()


# -- suspect labels ----------------------------------------------------------------------


def test_wrong_labels_rank_among_the_top_suspects(make_session, truth):
    session = make_session(learner="logistic-regression")
    rows = pool_rows(session, truth, 15, seed=7)
    every = [r for name in rows for r in rows[name]]
    flip = {"Star": "Galaxy", "Galaxy": "QSO", "QSO": "Star"}
    wrong = {int(rows[name][i]): flip[name] for name, i in
             [("Star", 0), ("Galaxy", 0), ("QSO", 0), ("Star", 1)]}  # fmt: skip
    ids = label_rows(session, every, truth, wrong=wrong)
    frame = session.suspects()
    assert list(frame.columns) == ["id", "label", "self_confidence", "predicted", "margin"]
    assert len(frame) == len(ids) == 45
    assert (np.diff(frame["self_confidence"]) >= 0).all()
    wrong_ids = {session.catalogue.id_at(p) for p in wrong}
    top = set(frame["id"].iloc[:8])  # checked: 3 or 4 of them for seeds 0 to 8
    assert len(wrong_ids & top) >= 3
    given = dict(zip(frame["id"], frame["label"], strict=True))
    assert all(given[session.catalogue.id_at(p)] == cls for p, cls in wrong.items())


# -- saved models ------------------------------------------------------------------------


def rebuilt_proba(objects: dict, X: np.ndarray, n_classes: int) -> np.ndarray:
    """predict_proba from the saved pieces, the way Learner computes it."""
    Xt = np.array(X, dtype=np.float32, copy=True)
    bad = ~np.isfinite(Xt)
    Xt[bad] = np.broadcast_to(objects["medians"], Xt.shape)[bad]
    if objects["scaler"] is not None:
        Xt = objects["scaler"].transform(Xt).astype(np.float32)
    probas = []
    for member in objects["members"]:
        P = np.zeros((len(Xt), n_classes))
        if isinstance(member, dict):
            for c, est in member["one_vs_rest"].items():
                P[:, int(c)] = est.predict_proba(Xt)[:, list(est.classes_).index(1)]
            for c, value in member["constant"].items():
                P[:, int(c)] = value
            P /= P.sum(axis=1, keepdims=True)
        else:
            P[:, member.classes_] = member.predict_proba(Xt)
        probas.append(P)
    return np.mean(probas, axis=0)


@pytest.mark.parametrize(
    ("learner", "scheme", "scale"),
    [(["decision-tree", "logistic-regression"], "multiclass", "robust"),
     ("logistic-regression", "one-vs-rest", None)],
)  # fmt: skip
def test_a_saved_model_predicts_like_the_session(
    learner, scheme, scale, make_session, truth, tmp_path, session_kwargs
):
    session = make_session(learner=learner, scheme=scheme, scale=scale, random_state=3)
    label_each_class(session, truth, per_class=6)
    assert session.refresh() >= 1
    path = session.save_model(tmp_path / "model")
    objects, manifest = load_model(path, trusted=TREE_TYPES)
    X = session._X
    assert_allclose(rebuilt_proba(objects, X, 3), session.model.predict_proba(X), atol=1e-12)
    assert len(objects["members"]) == len(session.model.members_)
    assert manifest["features"] == session_kwargs["features"]
    assert manifest["classes"] == CLASSES
    assert manifest["learner"] == learner
    assert (manifest["scheme"], manifest["scale"]) == (scheme, scale)
    assert manifest["random_state"] == 3
    assert manifest["n_labels"] == 18
