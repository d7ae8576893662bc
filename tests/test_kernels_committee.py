"""Tests of armillary_kernels' committee measures: numpy twins, modAL parity, selection."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from armillary_kernels import (
    committee_scores,
    committee_top_k,
    consensus_entropy,
    max_disagreement,
    merge_top_k,
    vote_entropy,
)
from armillary_kernels._reference import (
    consensus_entropy_ref,
    max_disagreement_ref,
    top_k_ref,
    vote_entropy_ref,
)

METHODS = ["vote-entropy", "consensus-entropy", "max-disagreement"]
REFERENCES = {
    "vote-entropy": vote_entropy_ref,
    "consensus-entropy": consensus_entropy_ref,
    "max-disagreement": max_disagreement_ref,
}
MEASURES = {
    "vote-entropy": vote_entropy,
    "consensus-entropy": consensus_entropy,
    "max-disagreement": max_disagreement,
}


def committee(n_members, n, n_classes, dtype=np.float64, seed=0, concentration=1.0):
    rng = np.random.default_rng(seed)
    alpha = np.full(n_classes, concentration)
    return rng.dirichlet(alpha, size=(n_members, n)).astype(dtype)


class _FixedCommittee:
    """modAL-committee stand-in whose members' probabilities are fixed: the pieces of
    the Committee interface that modAL.disagreement calls."""

    def __init__(self, P_members):
        self._proba = np.transpose(P_members, (1, 0, 2)).astype(np.float64)  # (N, M, C)
        self.classes_ = np.arange(P_members.shape[2])

    def __len__(self):
        return self._proba.shape[1]

    def __iter__(self):
        return iter(range(len(self)))

    def vote(self, X, **kwargs):
        return np.argmax(self._proba[: len(X)], axis=2)

    def vote_proba(self, X, **kwargs):
        return self._proba[: len(X)]

    def predict_proba(self, X, **kwargs):
        return self._proba[: len(X)].mean(axis=1)


# ------------------------------------------------------------------------ twins


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("n_members", "n_classes"), [(1, 2), (2, 3), (5, 3), (5, 4), (7, 17)])
def test_measures_match_reference(dtype, n_members, n_classes):
    P = committee(n_members, 400, n_classes, dtype, seed=n_classes)
    for method in METHODS:
        got = committee_scores(P, method)
        assert got.dtype == np.float64
        assert got.shape == (400,)
        assert_allclose(got, REFERENCES[method](P), rtol=1e-12, atol=1e-15)
        assert_array_equal(MEASURES[method](P), got)
    if n_members == 1:
        assert_array_equal(vote_entropy(P), 0.0)
        assert_allclose(max_disagreement(P), 0.0, atol=1e-15)


def test_known_rows():
    # Two members, three classes; row 0 agrees, row 1 splits 1-1.
    P = np.array([[[0.8, 0.1, 0.1], [0.2, 0.5, 0.3]], [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]])
    assert_allclose(vote_entropy(P), [0.0, np.log(2)])
    mean = P.mean(axis=0)
    assert_allclose(consensus_entropy(P), -(mean * np.log(mean)).sum(axis=1))
    kl = (P * np.log(P / mean)).sum(axis=2).max(axis=0)
    assert_allclose(max_disagreement(P), kl)


def test_vote_entropy_ties_are_exact():
    """Rows whose votes are permutations of each other score bit for bit the same."""
    rng = np.random.default_rng(3)
    P = committee(6, 3000, 5, seed=3)
    values = vote_entropy(P)
    votes = np.sort(np.stack([(np.argmax(P, axis=2) == c).sum(0) for c in range(5)], 1), 1)
    for pattern in np.unique(votes, axis=0):
        same = np.all(votes == pattern, axis=1)
        assert np.unique(values[same]).size == 1
    assert np.unique(values).size == np.unique(votes, axis=0).shape[0]
    assert rng is not None


def test_list_of_members_is_stacked():
    P = committee(3, 50, 4)
    for method in METHODS:
        assert_array_equal(committee_scores(list(P), method), committee_scores(P, method))


def test_nan_and_negative_rows():
    P = committee(3, 8, 3)
    P[1, 2, 0] = np.nan
    P[2, 5, :] = [1.2, -0.1, -0.1]
    assert_array_equal(np.isnan(vote_entropy(P)), np.isin(np.arange(8), [2]))
    assert_array_equal(np.isnan(max_disagreement(P)), np.isin(np.arange(8), [2, 5]))
    assert np.isnan(consensus_entropy(P)[2])
    for method in METHODS:
        assert_allclose(committee_scores(P, method), REFERENCES[method](P), rtol=1e-12)
        picked = committee_top_k(P, 8, method)[0]
        assert 2 not in picked


# -------------------------------------------------------------------------- modAL


@pytest.mark.parametrize("method", METHODS)
def test_picks_match_modal_for_1_to_100_instances(method):
    disagreement = pytest.importorskip("modAL.disagreement")
    strategy = {
        "vote-entropy": disagreement.vote_entropy_sampling,
        "consensus-entropy": disagreement.consensus_entropy_sampling,
        "max-disagreement": disagreement.max_disagreement_sampling,
    }[method]
    P = committee(5, 1500, 3, seed=7, concentration=0.7)
    fixed = _FixedCommittee(P)
    X = np.zeros((P.shape[1], 1))
    ranked, ranked_scores = committee_top_k(P, 100, method, random_state=0)
    all_scores = committee_scores(P, method)
    for n_instances in range(1, 101):
        modal_idx, modal_scores = strategy(fixed, X, n_instances)
        ours = ranked_scores[:n_instances]
        assert_allclose(np.sort(ours), np.sort(modal_scores), rtol=1e-12)
        if method == "vote-entropy":
            # Few distinct values: rows above the n-th score must agree, and both
            # fill the rest from the rows tied at that score.
            cut = ours[-1]
            above = ranked[:n_instances][ours > cut + 1e-12]
            assert set(above.tolist()) <= set(modal_idx.tolist())
            tied = np.flatnonzero(np.abs(all_scores - cut) <= 1e-12)
            assert set(ranked[:n_instances].tolist()) <= set(above.tolist()) | set(tied.tolist())
        else:
            assert set(ranked[:n_instances].tolist()) == set(modal_idx.tolist())


# ----------------------------------------------------------------------- select


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_k_matches_reference(method, dtype):
    rng = np.random.default_rng(1)
    P = committee(5, 2000, 4, dtype, seed=1)
    exclude = rng.random(2000) < 0.3
    for k in (1, 13, 400):
        for mask in (None, exclude):
            got = committee_top_k(P, k, method, exclude=mask, random_state=9)
            want = top_k_ref(P, k, method, exclude=mask, random_state=9)
            assert_array_equal(got[0], want[0])
            assert_allclose(got[1], want[1], rtol=1e-12)


@pytest.mark.parametrize("method", ["consensus-entropy", "max-disagreement"])
def test_pruning_keeps_the_exact_picks(method):
    """committee_top_k skips rows whose bound is below the heap minimum: picks and
    scores must be those of scoring every row."""
    base = committee(1, 5000, 3, seed=11)[0]
    rng = np.random.default_rng(11)
    P = np.stack([base] * 4)  # members that mostly agree ...
    P[1, ::7] = committee(1, len(P[1, ::7]), 3, seed=12)[0]  # ... but not everywhere
    P[1, 700:770:7] *= 1.3  # rows that do not sum to 1: only some bounds apply
    P[3, 200, 0] = -0.2  # a negative entry: NaN, never picked
    P[:, 300:340] = P[:, 300:301]  # ties
    P[0, 400:420] = np.roll(P[0, 400:420], 1, axis=1)
    for k in (1, 5, 64, 1500):
        for dtype in (np.float64, np.float32):
            Q = P.astype(dtype)
            got = committee_top_k(Q, k, method, random_state=6)
            want = top_k_ref(Q, k, method, random_state=6)
            assert_array_equal(got[0], want[0])
            assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-15)
    if method == "max-disagreement":  # the consensus entropy takes logs of the mean only
        assert 200 not in committee_top_k(P, 5000, method)[0]
    assert rng is not None


@pytest.mark.parametrize("n_members", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("n_classes", [2, 3, 4, 9])
def test_consensus_pruning_of_nearly_uniform_rows(n_members, n_classes):
    """The consensus entropy bounds the members' sums (every member-count path of the
    summation) before dividing: with the highest entropies crowded just below ln C,
    where the quadratic bound does the pruning, picks and scores must stay exact."""
    rng = np.random.default_rng(n_members * 10 + n_classes)
    P = committee(n_members, 9000, n_classes, seed=n_classes, concentration=30.0)
    P[:, 100:110] *= rng.uniform(0.999, 1.001, size=(n_members, 10, 1))  # sums off 1
    P[:, 500:520] = 1.0 / n_classes  # ties at the very top
    P[0, 800, 0] = np.nan
    for dtype in (np.float64, np.float32):
        Q = P.astype(dtype)
        for k in (1, 10, 300):
            got = committee_top_k(Q, k, "consensus-entropy", random_state=2)
            want = top_k_ref(Q, k, "consensus-entropy", random_state=2)
            assert_array_equal(got[0], want[0])
            assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-15)


def test_vote_entropy_ties_spread_over_the_pool():
    P = committee(4, 20_000, 2, seed=5)
    values = vote_entropy(P)
    best = np.flatnonzero(values == values.max())
    assert best.size > 1000
    picked, _ = committee_top_k(P, 200, "vote-entropy", random_state=1)
    assert set(picked.tolist()) <= set(best.tolist())
    per_quarter = np.bincount(picked * 4 // P.shape[1], minlength=4)
    assert np.all((per_quarter > 25) & (per_quarter < 75)), per_quarter
    other, _ = committee_top_k(P, 200, "vote-entropy", random_state=2)
    assert set(other.tolist()) != set(picked.tolist())


def test_chunked_scoring_merges_to_the_single_pass():
    rng = np.random.default_rng(2)
    P = committee(5, 6000, 3, seed=2)
    exclude = rng.random(6000) < 0.1
    bounds = [0, 1, 2000, 2001, 4500, 6000]
    for method in METHODS:
        single = committee_top_k(P, 150, method, exclude=exclude, random_state=4)
        parts = [
            committee_top_k(
                P[:, lo:hi], 150, method, exclude=exclude[lo:hi], random_state=4, offset=lo
            )
            for lo, hi in itertools.pairwise(bounds)
        ]
        merged = merge_top_k(parts, 150, random_state=4)
        assert_array_equal(merged[0], single[0])
        assert_array_equal(merged[1], single[1])


# ------------------------------------------------------------------- bad inputs

GOOD = committee(3, 10, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"P_members": GOOD[0]}, "P_members must be a 3-D array"),
        ({"P_members": GOOD[:, :, :1]}, "at least 2 classes"),
        ({"P_members": GOOD[:0]}, "has no members"),
        ({"P_members": []}, "at least one member"),
        ({"P_members": [GOOD[0], GOOD[1, :5]]}, "same .N, C. shape"),
        ({"P_members": GOOD.astype(np.int32)}, r"dtype int32.*cast it"),
        ({"method": "margin"}, r"unknown method 'margin'.*'consensus-entropy'"),
        ({"k": 0}, "k must be >= 1"),
        ({"exclude": np.zeros(3, bool)}, r"exclude must have shape \(10,\)"),
        ({"random_state": None}, "random_state must be an integer"),
        ({"offset": -2}, "offset must be >= 0"),
    ],
)
def test_committee_top_k_rejects_bad_input(kwargs, match):
    arguments = {"P_members": GOOD, "k": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        committee_top_k(**arguments)


def test_committee_scores_reject_bad_method():
    with pytest.raises(ValueError, match="unknown method 'entropy'"):
        committee_scores(GOOD, "entropy")
