"""Tests of armillary_kernels' fused inference: scikit-learn parity and numpy twins."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from armillary_kernels import (
    LinearModel,
    fused_proba,
    fused_scores,
    fused_top_k,
    linear_model,
    merge_top_k,
    pack_trees,
    scores,
    top_k,
)
from armillary_kernels._reference_extra import linear_proba_ref, trees_proba_ref
from armillary_kernels.sklearn_adapter import from_sklearn

ensemble = pytest.importorskip("sklearn.ensemble")
linear = pytest.importorskip("sklearn.linear_model")
tree = pytest.importorskip("sklearn.tree")
datasets = pytest.importorskip("sklearn.datasets")

METHODS = ["margin", "least-confidence", "entropy"]


def training(n_classes=3, n=1500, seed=0, nan=False):
    X, y = datasets.make_classification(
        n, 6, n_informative=4, n_redundant=0, n_classes=n_classes, random_state=seed
    )
    if nan:
        X[np.random.default_rng(seed).random(X.shape) < 0.05] = np.nan
    return X, y


def pool(n=2003, seed=1, nan=False):
    X = np.random.default_rng(seed).normal(size=(n, 6)) * 1.5
    if nan:
        X[::37, 2] = np.nan
        X[5::53] = np.nan
    return X


FORESTS = {
    "random-forest": lambda: ensemble.RandomForestClassifier(8, max_depth=9, random_state=0),
    "extra-trees": lambda: ensemble.ExtraTreesClassifier(8, max_depth=9, random_state=0),
    "few-trees": lambda: ensemble.RandomForestClassifier(3, max_depth=4, random_state=0),
    "one-tree": lambda: tree.DecisionTreeClassifier(max_depth=7, random_state=0),
}


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("random-forest", np.float64),
        ("random-forest", np.float32),
        ("extra-trees", np.float64),
        ("few-trees", np.float32),
        ("one-tree", np.float64),
    ],
)
def test_trees_match_predict_proba_exactly(name, dtype):
    X, y = training()
    estimator = FORESTS[name]().fit(X, y)
    model = from_sklearn(estimator)
    Xp = pool(n=803).astype(dtype)
    want = estimator.predict_proba(Xp)
    got = fused_proba(Xp, model)
    assert got.dtype == np.float64
    assert_array_equal(got, want)  # same arithmetic in the same order
    trees = [estimator.tree_] if name == "one-tree" else [e.tree_ for e in estimator.estimators_]
    assert_array_equal(got, trees_proba_ref(Xp, trees))
    for method in METHODS:
        assert_array_equal(fused_scores(Xp, model, method), scores(want, method))
        for k in (1, 300):
            picked = fused_top_k(Xp, model, k, method, random_state=3)
            expected = top_k(want, k, method, random_state=3)
            assert_array_equal(picked[0], expected[0])
            assert_array_equal(picked[1], expected[1])


@pytest.mark.parametrize("n_classes", [2, 4])
def test_missing_values_follow_the_trees(n_classes):
    X, y = training(n_classes=n_classes, nan=True)
    estimator = ensemble.RandomForestClassifier(6, max_depth=8, random_state=1).fit(X, y)
    model = from_sklearn(estimator)
    assert model.nan_child.size == model.nodes.shape[0]
    Xp = pool(n=801, nan=True)
    want = estimator.predict_proba(Xp)
    assert_array_equal(fused_proba(Xp, model), want)
    members = [e.tree_ for e in estimator.estimators_]
    assert_array_equal(fused_proba(Xp, model), trees_proba_ref(Xp, members))
    assert_array_equal(fused_top_k(Xp, model, 50, "entropy")[0], top_k(want, 50, "entropy")[0])


def test_few_rows_and_chunks():
    X, y = training()
    estimator = ensemble.RandomForestClassifier(5, max_depth=6, random_state=2).fit(X, y)
    model = from_sklearn(estimator)
    Xp = pool(n=1500, seed=4)
    want = estimator.predict_proba(Xp)
    for n in (1, 7, 8, 9, 17):
        assert_array_equal(fused_proba(Xp[:n], model), want[:n])
    rng = np.random.default_rng(0)
    exclude = rng.random(1500) < 0.25
    single = fused_top_k(Xp, model, 120, "margin", exclude=exclude, random_state=8)
    assert_array_equal(single[0], top_k(want, 120, "margin", exclude=exclude, random_state=8)[0])
    bounds = [0, 5, 1024, 1499, 1500]
    parts = [
        fused_top_k(
            Xp[lo:hi], model, 120, "margin", exclude=exclude[lo:hi], random_state=8, offset=lo
        )
        for lo, hi in itertools.pairwise(bounds)
    ]
    assert_array_equal(merge_top_k(parts, 120, random_state=8)[0], single[0])


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_logistic_regression_matches_predict_proba(n_classes):
    X, y = training(n_classes=n_classes)
    estimator = linear.LogisticRegression(max_iter=1000).fit(X, y)
    model = from_sklearn(estimator)
    assert isinstance(model, LinearModel)
    Xp = pool()
    want = estimator.predict_proba(Xp)
    got = fused_proba(Xp, model)
    assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert_allclose(got, linear_proba_ref(Xp, model.coef, model.intercept), rtol=1e-12, atol=1e-15)
    assert_allclose(
        fused_proba(Xp.astype(np.float32), model),
        estimator.predict_proba(Xp.astype(np.float32)),
        rtol=1e-6,
    )
    for method in METHODS:
        for k in (1, 50):
            picked = fused_top_k(Xp, model, k, method)
            expected = top_k(want, k, method)
            assert_array_equal(picked[0], expected[0])
            assert_allclose(picked[1], expected[1], rtol=1e-12)


def test_pack_trees_accepts_plain_arrays():
    # Root splits feature 1 at 0.5; left leaf all class 0, right leaf 1:3 of classes.
    stump = SimpleNamespace(
        children_left=np.array([1, -1, -1]),
        children_right=np.array([2, -1, -1]),
        feature=np.array([1, -2, -2]),
        threshold=np.array([0.5, -2.0, -2.0]),
        value=np.array([[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]]),
    )
    model = pack_trees([stump, stump], n_features=2)
    X = np.array([[9.0, 0.4], [9.0, 0.6], [0.0, np.nan], [0.0, 0.5]])
    assert_array_equal(fused_proba(X, model), [[1, 0], [0.25, 0.75], [0.25, 0.75], [1, 0]])
    assert_array_equal(model.depths, [1, 1])
    assert_array_equal(model.roots, [0, 3])


def _stump(**changes):
    fields = {
        "children_left": np.array([1, -1, -1]),
        "children_right": np.array([2, -1, -1]),
        "feature": np.array([0, -2, -2]),
        "threshold": np.array([0.0, -2.0, -2.0]),
        "value": np.ones((3, 1, 2)) / 2,
    }
    fields.update(changes)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize(
    ("trees", "match"),
    [
        ([], "at least one tree"),
        ([_stump(feature=np.array([3, -2, -2]))], "splits on feature 3, but n_features is 2"),
        ([_stump(children_left=np.array([1, 1, -1]))], "do not describe a binary tree"),
        ([_stump(children_right=np.array([2, 5, -1]))], "do not describe a binary tree"),
        ([_stump(threshold=np.zeros(2))], "node arrays of different lengths"),
        ([_stump(value=np.ones((3, 2, 2)))], "2 outputs"),
        ([_stump(value=np.ones((3, 1, 1)))], "at least 2"),
        ([_stump(), _stump(value=np.ones((3, 1, 3)))], "tree 1 has 3 classes, tree 0 has 2"),
        ([SimpleNamespace(children_left=np.array([-1]))], "has no attribute 'children_right'"),
    ],
)
def test_pack_trees_rejects_bad_trees(trees, match):
    with pytest.raises(ValueError, match=match):
        pack_trees(trees, n_features=2)


def test_bad_models_and_inputs():
    X, y = training()
    model = from_sklearn(ensemble.RandomForestClassifier(2, max_depth=3).fit(X, y))
    with pytest.raises(ValueError, match="X has 5 features but the model was fitted on 6"):
        fused_proba(np.zeros((3, 5)), model)
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        fused_top_k(np.zeros(6), model, 3)
    with pytest.raises(ValueError, match="X has dtype int64"):
        fused_scores(np.zeros((3, 6), dtype=np.int64), model)
    with pytest.raises(ValueError, match="model must be a TreeEnsemble or LinearModel"):
        fused_proba(np.zeros((3, 6)), object())
    with pytest.raises(ValueError, match="unknown method 'vote-entropy'"):
        fused_top_k(np.zeros((3, 6)), model, 3, "vote-entropy")
    with pytest.raises(ValueError, match=r"exclude must have shape \(3,\), one entry per row of X"):
        fused_top_k(np.zeros((3, 6)), model, 3, exclude=np.zeros(2, bool))
    with pytest.raises(ValueError, match=r"K = 1 \(binary\) or K >= 3"):
        linear_model(np.zeros((2, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="must be finite"):
        linear_model(np.full((1, 4), np.nan), np.zeros(1))
    with pytest.raises(ValueError, match="is not fitted"):
        from_sklearn(ensemble.RandomForestClassifier())
    with pytest.raises(ValueError, match="got SVC"):
        from_sklearn(pytest.importorskip("sklearn.svm").SVC())
    assert fused_top_k(np.zeros((0, 6)), model, 3)[0].size == 0
    assert fused_proba(np.zeros((0, 6)), model).shape == (0, 3)
