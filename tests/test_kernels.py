"""Tests of armillary_kernels' single-model scores and fused top-k against numpy twins
and modAL (committee, binning and fused inference have their own test_kernels_* files)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import armillary_kernels
from armillary_kernels import entropy, least_confidence, margin, merge_top_k, scores, top_k
from armillary_kernels._fastlog import TINY, log_array
from armillary_kernels._reference import (
    entropy_ref,
    least_confidence_ref,
    margin_ref,
    top_k_ref,
)

METHODS = ["margin", "least-confidence", "entropy"]
REFERENCES = {
    "margin": margin_ref,
    "least-confidence": least_confidence_ref,
    "entropy": entropy_ref,
}
#: The logarithmic scores use the kernels' own log (within 1 ulp of numpy's).
RTOL = {"margin": 0.0, "least-confidence": 0.0, "entropy": 1e-13}
JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")


def random_probabilities(n, n_classes, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(n_classes), size=n).astype(dtype)


def heavy_ties(repeats=10_000, seed=0):
    """Five distinct rows, interleaved over the catalogue (row i is base row i % 5)."""
    base = random_probabilities(5, 3, seed=seed)
    return base[np.tile(np.arange(5), repeats)]


def tied_best_rows(P, method):
    values = REFERENCES[method](P)
    return np.flatnonzero(values == values.max())


def assert_picks_as_twin(P, method, exclude, ks, *, random_state, rtol):
    """top_k equals its numpy twin on P in float64 and float32, for every k in ``ks``,
    with and without ``exclude``: the same picks, scores equal within ``rtol`` (0: exactly)."""
    for dtype in (np.float64, np.float32):
        Q = P.astype(dtype)
        for k in ks:
            for mask in (None, exclude):
                got = top_k(Q, k, method, exclude=mask, random_state=random_state)
                want = top_k_ref(Q, k, method, exclude=mask, random_state=random_state)
                assert_array_equal(got[0], want[0])
                if rtol:
                    assert_allclose(got[1], want[1], rtol=rtol)
                else:
                    assert_array_equal(got[1], want[1])


# ------------------------------------------------------------------------- scores


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_classes", [*range(2, 9), 17, 64])
def test_scores_match_reference(dtype, n_classes):
    P = random_probabilities(500, n_classes, dtype)
    lc = least_confidence(P)
    mg = margin(P)
    assert lc.dtype == np.float64
    assert mg.dtype == np.float64
    assert_allclose(lc, least_confidence_ref(P), rtol=0, atol=0)
    assert_allclose(mg, margin_ref(P), rtol=0, atol=0)
    assert_allclose(lc, 1 - P.max(axis=1).astype(np.float64))
    h = entropy(P)
    assert_allclose(h, entropy_ref(P), rtol=1e-13, atol=1e-15)
    assert_allclose(h, scipy_entropy(P.astype(np.float64), axis=1), rtol=1e-5)
    assert_array_equal(scores(P, "entropy"), h)


def scipy_entropy(P, axis):
    stats = pytest.importorskip("scipy.stats")
    return stats.entropy(P, axis=axis)


def test_fast_log_is_within_one_ulp():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [rng.random(20_000), 10 ** rng.uniform(-307.6, 308, 20_000), [TINY, 0.5, 1.0, 2.0]]
    )
    x = np.concatenate([x, np.sqrt([0.5, 2.0]), np.nextafter(1.0, [0.0, 2.0])])
    got = log_array(x)
    want = np.log(x)
    assert np.all(np.abs(got - want) <= np.spacing(np.abs(want)) + (want == 0))
    assert log_array(np.array([1.0]))[0] == 0.0


def test_scores_of_known_rows():
    P = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.2, 0.5, 0.3]])
    assert_allclose(least_confidence(P), [0.5, 0.0, 0.5])
    assert_allclose(margin(P), [1.0, 0.0, 0.8])
    assert_allclose(
        entropy(P), [np.log(2), 0.0, -(0.2 * np.log(0.2) + 0.5 * np.log(0.5) + 0.3 * np.log(0.3))]
    )
    # Entries below the smallest normal float count as 0; a negative one gives NaN.
    tiny = np.array([[1.0, 1e-310], [1.2, -0.2]])
    assert_array_equal(entropy(tiny), [0.0, np.nan])


def test_nan_rows_score_nan():
    P = random_probabilities(6, 4)
    P[1, 3] = np.nan
    P[4, 0] = np.nan
    pairs = [(margin, margin_ref), (least_confidence, least_confidence_ref), (entropy, entropy_ref)]
    for measure, ref in pairs:
        values = measure(P)
        assert_array_equal(np.isnan(values), [False, True, False, False, True, False])
        assert_allclose(values, ref(P))


def test_odd_layouts_are_accepted():
    P = random_probabilities(300, 5)
    expected = margin_ref(P)
    assert_allclose(margin(np.asfortranarray(P)), expected)
    assert_allclose(margin(P[::-1])[::-1], expected)
    assert_allclose(margin(P.astype(">f8")), expected)
    assert_allclose(margin(P.tolist()), expected)
    assert margin(np.zeros((0, 3))).shape == (0,)


# -------------------------------------------------------------------------- top_k


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_k_matches_reference(method, dtype):
    rng = np.random.default_rng(0)
    P = random_probabilities(3000, 4, dtype)
    P[rng.choice(3000, 30, replace=False), 2] = np.nan
    exclude = rng.random(3000) < 0.3
    for k in (1, 7, 100):
        for mask in (None, exclude):
            got = top_k(P, k, method, exclude=mask, random_state=3)
            want = top_k_ref(P, k, method, exclude=mask, random_state=3)
            assert_array_equal(got[0], want[0])
            assert_allclose(got[1], want[1], rtol=RTOL[method], atol=0)
            assert got[0].dtype == np.int64
            assert got[1].dtype == np.float64
            assert np.all(np.diff(got[1]) <= 0)


def test_excluded_and_nan_rows_are_never_picked():
    P = random_probabilities(50, 3)
    P[[3, 9], 1] = np.nan
    exclude = np.zeros(50, dtype=bool)
    exclude[10:] = True
    indices, picked = top_k(P, 20, exclude=exclude)
    assert indices.size == 8  # rows 0..9 but 3 and 9
    assert set(indices.tolist()) == set(range(10)) - {3, 9}
    want = top_k_ref(P, 20, exclude=exclude)
    assert_array_equal(indices, want[0])
    assert_allclose(picked, want[1])


def test_k_larger_than_pool_and_empty_pools():
    P = random_probabilities(40, 3)
    indices, _ = top_k(P, 1000, "least_confidence")
    assert_array_equal(indices, top_k_ref(P, 1000, "least-confidence")[0])
    assert indices.size == 40
    none = top_k(P, 5, exclude=np.ones(40, dtype=bool))
    assert none[0].size == 0
    assert none[1].size == 0
    assert top_k(np.zeros((0, 2)), 3)[0].size == 0


@pytest.mark.parametrize("n_blocks", [1, 3, 16, 1000])
def test_block_count_does_not_change_picks(monkeypatch, n_blocks):
    from armillary_kernels import _validate

    monkeypatch.setattr(_validate, "n_blocks", lambda n: max(1, min(n_blocks, n)))
    P = heavy_ties(repeats=200)
    P[::7] = random_probabilities(len(P[::7]), 3, seed=1)
    for k in (1, 20, 999):
        got = top_k(P, k, "margin", random_state=11)
        want = top_k_ref(P, k, "margin", random_state=11)
        assert_array_equal(got[0], want[0])
        assert_allclose(got[1], want[1])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_chunked_heaps_keep_the_exact_picks(monkeypatch, method, workers):
    """A top-k hands its rows out in chunks to one heap per worker, each heap carried
    (full, and skipping) from chunk to chunk: with chunks far smaller than a tile, many
    per heap, the picks and scores must be the numpy twin's, with NaN rows, ties at the
    top, exclusions and both dtypes."""
    from armillary_kernels import _select, _validate

    monkeypatch.setattr(_select, "MIN_CHUNK_ROWS", 777)
    monkeypatch.setattr(_validate, "n_blocks", lambda n: max(1, min(workers, n)))
    rng = np.random.default_rng(workers)
    P = random_probabilities(30_000, 4, seed=workers) ** 2
    P /= P.sum(axis=1, keepdims=True)
    P[rng.choice(len(P), 300, replace=False), 1] = np.nan
    P[rng.choice(len(P), 200, replace=False)] = 0.25  # tied best rows for every method
    P[-3:] = 0.25  # and some in the very last chunk
    exclude = rng.random(len(P)) < 0.1
    assert_picks_as_twin(P, method, exclude, (1, 10, 500), random_state=3, rtol=RTOL[method])


@pytest.mark.parametrize("workers", [1, 2, 16])
@pytest.mark.parametrize("n", [0, 1, 16_383, 16_385, 3_000_017])
def test_chunks_cover_every_row_once(n, workers):
    """The chunks are consecutive, cover ``n`` rows exactly, shrink as they go, and a
    shared iterator hands each out once however many threads pull from it."""
    import threading

    from armillary_kernels._select import MIN_CHUNK_ROWS, chunks

    bounds = list(chunks(n, workers))
    assert [start for start, _ in bounds] == [0, *(stop for _, stop in bounds)][: len(bounds)]
    assert (bounds[-1][1] if bounds else 0) == n
    sizes = [stop - start for start, stop in bounds]
    assert sizes == sorted(sizes, reverse=True)
    assert all(size >= MIN_CHUNK_ROWS for size in sizes[:-1])

    shared = chunks(n, workers)
    taken: list[list[tuple[int, int]]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=lambda t=t: taken[t].extend(shared)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(itertools.chain(*taken)) == bounds


def test_no_chunk_is_lost_when_threads_race_for_the_last_ones(monkeypatch):
    """Eight threads switching as often as the interpreter allows pull tiny chunks from
    one shared iterator: every chunk reaches exactly one thread. (CPython's
    ``iter(callable, sentinel)``, used before, dropped claimed chunks here.)"""
    import sys
    import threading

    from armillary_kernels import _select

    monkeypatch.setattr(_select, "MIN_CHUNK_ROWS", 1)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(50):
            shared = _select.chunks(400, 8)
            taken: list[list[tuple[int, int]]] = [[] for _ in range(8)]

            def pull(t, shared=shared, taken=taken):
                for chunk in shared:
                    taken[t].append(chunk)
                    sum(range(50))  # Python work between chunks: switch points

            threads = [threading.Thread(target=pull, args=(t,)) for t in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            rows = sorted(itertools.chain(*taken))
            assert rows[0][0] == 0
            assert rows[-1][1] == 400
            assert all(a[1] == b[0] for a, b in itertools.pairwise(rows))
    finally:
        sys.setswitchinterval(switch)


def test_odd_layouts_give_the_same_picks():
    P = random_probabilities(500, 4)
    want = top_k(P, 25)
    for variant in (np.asfortranarray(P), P.astype(">f8"), P.tolist()):
        assert_array_equal(top_k(variant, 25)[0], want[0])


# ------------------------------------------------------------------------- ties


@pytest.mark.parametrize("method", METHODS)
def test_heavy_ties_are_broken_by_a_seeded_hash(method):
    P = heavy_ties()
    k = 200
    tied = tied_best_rows(P, method)
    assert tied.size == 10_000
    assert np.unique(scores(P, method)).size == 5  # identical rows, identical scores

    first, values = top_k(P, k, method, random_state=0)
    again, _ = top_k(P, k, method, random_state=0)
    other, _ = top_k(P, k, method, random_state=1)
    assert_array_equal(first, again)
    assert_array_equal(first, top_k_ref(P, k, method, random_state=0)[0])
    assert np.all(values == values[0])
    assert set(first.tolist()) <= set(tied.tolist())
    assert set(first.tolist()) != set(other.tolist())
    assert not np.array_equal(np.sort(first), tied[:k])
    # Picks spread over the whole catalogue: about 50 in each quarter.
    per_quarter = np.bincount(first * 4 // len(P), minlength=4)
    assert np.all((per_quarter > 25) & (per_quarter < 75)), per_quarter


def test_chunked_scoring_merges_to_the_single_pass():
    rng = np.random.default_rng(0)
    pools = [heavy_ties(repeats=2000), random_probabilities(10_000, 4)]
    for P in pools:
        exclude = rng.random(len(P)) < 0.2
        bounds = [0, 1, 2499, 2500, 6_666, len(P)]
        for method in METHODS:
            for k in (1, 50, 300):
                single = top_k(P, k, method, exclude=exclude, random_state=5)
                parts = [
                    top_k(P[lo:hi], k, method, exclude=exclude[lo:hi], random_state=5, offset=lo)
                    for lo, hi in itertools.pairwise(bounds)
                ]
                merged = merge_top_k(parts, k, random_state=5)
                assert_array_equal(merged[0], single[0])
                assert_allclose(merged[1], single[1], rtol=0, atol=0)


def test_offset_shifts_indices_and_hash():
    P = heavy_ties(repeats=100)
    local, _ = top_k(P, 10, random_state=2)
    shifted, _ = top_k(P, 10, random_state=2, offset=1_000_000)
    assert np.all(shifted >= 1_000_000)
    assert_array_equal(shifted, top_k_ref(P, 10, random_state=2, offset=1_000_000)[0])
    assert not np.array_equal(shifted - 1_000_000, local)


# ------------------------------------------------------------------------ modAL


class _FixedProba:
    """sklearn-like stand-in whose predict_proba returns a fixed matrix."""

    def __init__(self, proba):
        self.proba = proba

    def predict_proba(self, X, **kwargs):
        return self.proba[: len(X)]


MODAL_STRATEGIES = {
    "margin": "margin_sampling",
    "least-confidence": "uncertainty_sampling",
    "entropy": "entropy_sampling",
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_picks_match_modal_for_1_to_100_instances(method, n_classes):
    uncertainty = pytest.importorskip("modAL.uncertainty")
    strategy = getattr(uncertainty, MODAL_STRATEGIES[method])
    P = random_probabilities(2000, n_classes, seed=n_classes)
    classifier = _FixedProba(P)
    X = np.zeros((len(P), 1))
    ranked, ranked_scores = top_k(P, 100, method)
    for k in (1, 7, 100):  # a top-k is the prefix of a longer one
        assert_array_equal(top_k(P, k, method)[0], ranked[:k])
    for n_instances in range(1, 101):
        modal_idx, modal_values = strategy(classifier, X, n_instances)
        assert set(ranked[:n_instances].tolist()) == set(modal_idx.tolist())
        # modAL returns margins (smaller = better) where we return 1 - margin.
        theirs = 1 - modal_values if method == "margin" else modal_values
        assert_allclose(np.sort(ranked_scores[:n_instances]), np.sort(theirs), rtol=1e-12)


def test_entropy_pruning_keeps_the_exact_picks():
    """top_k skips rows whose entropy bound is below the heap minimum: the picks and
    scores must be those of scoring every row, whatever the rows look like."""
    rng = np.random.default_rng(1)
    P = random_probabilities(6000, 3, seed=2)
    P[:2000] = P[:2000] ** 3  # sharp rows, far below the top
    P[100:110] *= 1.5  # rows that do not sum to 1: only the quadratic bound applies
    P[200, 0] = -0.1  # negative entry: NaN, never picked
    P[300:400] = P[300]  # ties
    P[500:900] = heavy_ties(repeats=80, seed=3)
    for k in (1, 10, 150, 2500):
        for dtype in (np.float64, np.float32):
            Q = P.astype(dtype)
            got = top_k(Q, k, "entropy", random_state=4)
            want = top_k_ref(Q, k, "entropy", random_state=4)
            assert_array_equal(got[0], want[0])
            assert_allclose(got[1], want[1], rtol=1e-13)
    assert 200 not in top_k(P, 6000, "entropy")[0]
    order = rng.permutation(len(P))
    assert set(top_k(P[order], 10, "entropy")[1]) == set(top_k(P, 10, "entropy")[1])


@pytest.mark.parametrize("method", ["margin", "least-confidence"])
@pytest.mark.parametrize("n_classes", [2, 3, 4, 7])
def test_tiles_below_the_heap_are_skipped_exactly(method, n_classes):
    """Once a block's heap is full, a tile none of whose rows reaches its minimum is
    skipped after a counting pass: the picks must be those of scoring every row, over
    pools of many tiles, with NaN rows, ties and late candidates."""
    rng = np.random.default_rng(n_classes)
    P = random_probabilities(40_000, n_classes, seed=n_classes) ** 2
    P /= P.sum(axis=1, keepdims=True)
    P[rng.choice(len(P), 400, replace=False), n_classes - 1] = np.nan
    P[rng.choice(len(P), 300, replace=False)] = 1.0 / n_classes  # ties at the top
    P[-5:] = np.full(n_classes, 1.0 / n_classes)  # the last tile holds picks too
    P[17, 0] = np.nan
    P[17, 1:] = 1.0 / n_classes  # NaN first: not counted, never picked
    exclude = rng.random(len(P)) < 0.2
    assert_picks_as_twin(P, method, exclude, (1, 10, 700), random_state=5, rtol=0.0)


def test_entropy_bounds_hold_for_every_row():
    """The pruning bounds (table and quadratic) must flag every row whose entropy
    reaches the threshold: nearly uniform, sharp, unnormalised and tied rows."""
    from armillary_kernels._prune import _bound_limit, _entropy_flags
    from armillary_kernels.scoring import bound_table

    rng = np.random.default_rng(8)
    for n_classes in (2, 3, 4, 9, 64):
        near = rng.dirichlet(np.full(n_classes, 500.0), size=300)
        sharp = rng.dirichlet(np.full(n_classes, 0.3), size=300)
        scaled = near[:100] * rng.uniform(0.98, 1.02, size=(100, 1))
        P = np.concatenate([near, sharp, scaled, np.full((3, n_classes), 1.0 / n_classes)])
        exact = entropy(P)
        flags = np.zeros(len(P))
        for threshold in np.quantile(exact, [0.0, 0.5, 0.9, 0.99, 1.0]):
            limit = _bound_limit(bound_table(n_classes), threshold)
            _entropy_flags(P, limit, threshold, flags)
            reach = exact >= threshold
            assert np.all(flags[reach] == 1.0), (n_classes, threshold)


# ------------------------------------------------------------------- bad inputs

GOOD = random_probabilities(10, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"P": GOOD[:, 0]}, "P must be a 2-D array"),
        ({"P": GOOD[:, :1]}, "at least 2 columns"),
        ({"P": (GOOD * 100).astype(np.int64)}, r"dtype int64.*cast it"),
        ({"P": GOOD.astype(np.float16)}, r"dtype float16.*cast it"),
        ({"k": 0}, "k must be >= 1"),
        ({"k": 2.5}, "k must be an integer"),
        ({"k": True}, "k must be an integer"),
        ({"method": "bogus"}, r"unknown method 'bogus'.*'entropy'.*'least-confidence'.*'margin'"),
        ({"method": None}, "unknown method None"),
        ({"exclude": np.zeros(10, dtype=int)}, "exclude must be a boolean mask"),
        ({"exclude": np.zeros(9, dtype=bool)}, r"exclude must have shape \(10,\)"),
        ({"random_state": None}, "random_state must be an integer"),
        ({"random_state": "seed"}, "random_state must be an integer"),
        ({"offset": -1}, "offset must be >= 0"),
        ({"offset": 1.0}, "offset must be an integer"),
    ],
)
def test_top_k_rejects_bad_input(kwargs, match):
    arguments = {"P": GOOD, "k": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        top_k(**arguments)


def test_scores_reject_bad_input():
    with pytest.raises(ValueError, match="P must be a 2-D array"):
        margin(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="at least 2 columns"):
        least_confidence(np.zeros((4, 1)))
    with pytest.raises(ValueError, match="cast it"):
        least_confidence(np.zeros((4, 2), dtype=np.int32))


def test_merge_top_k_rejects_bad_input():
    part = top_k(GOOD, 3)
    with pytest.raises(ValueError, match="more than one chunk"):
        merge_top_k([part, part], 3)
    with pytest.raises(ValueError, match="3 indices but 2 scores"):
        merge_top_k([(part[0], part[1][:2])], 3)
    with pytest.raises(ValueError, match="k must be >= 1"):
        merge_top_k([part], 0)
    assert merge_top_k([], 3)[0].size == 0


# ------------------------------------------------------------------------ import


@pytest.mark.skipif(JIT_DISABLED, reason="nothing compiles without the JIT")
def test_import_compiles_nothing_and_leaves_sklearn_alone():
    code = """
import sys, numba, armillary_kernels
from armillary_kernels import _fastlog, _measures, _prune, _select, _tile, binning, forest, fused
compiled = [
    name
    for module in (_fastlog, _measures, _prune, _select, _tile, binning, forest, fused)
    for name, value in vars(module).items()
    if isinstance(value, numba.core.registry.CPUDispatcher) and value.signatures
]
assert not compiled, compiled
assert "sklearn" not in sys.modules
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_public_names():
    assert set(armillary_kernels.__all__) == {
        "LinearModel",
        "TreeEnsemble",
        "committee_scores",
        "committee_top_k",
        "consensus_entropy",
        "counts2d",
        "entropy",
        "from_sklearn",
        "fused_proba",
        "fused_scores",
        "fused_top_k",
        "least_confidence",
        "linear_model",
        "margin",
        "max_disagreement",
        "merge_top_k",
        "pack_trees",
        "scores",
        "stat2d",
        "top_k",
        "vote_entropy",
    }
    for name in armillary_kernels.__all__:
        assert getattr(armillary_kernels, name).__doc__
