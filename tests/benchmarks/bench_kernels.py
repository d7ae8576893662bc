"""Benchmark of armillary_kernels against modAL, plain numpy, scikit-learn and vaex.

A script, not a test: it prints tables and asserts nothing.

    python tests/benchmarks/bench_kernels.py            # the full run (~10 minutes)
    python tests/benchmarks/bench_kernels.py --quick    # small sizes, a minute or so
    python tests/benchmarks/bench_kernels.py --only least-confidence,consensus-entropy
                                                        # those rows of the full run only

Times are the best of a few runs (modAL at N = 1e7 runs once), wall clock, on every
core numba is allowed (``NUMBA_NUM_THREADS``).  Ratios: ``modAL/ours`` and
``numpy/ours`` are speed-ups; ``bw/ours`` is our speed as a fraction of the read-bandwidth
reference, a numba sum over the very bytes of ``P`` (1.0 = as fast as reading them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial

import numba
import numpy as np

import armillary_kernels as ak
from armillary_kernels._select import in_blocks

K = 10


# ---------------------------------------------------------------------- helpers


def best(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` calls (after one untimed warm-up when repeat > 1)."""
    if repeat > 1:
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def probabilities(n: int, n_classes: int, dtype, seed: int = 0) -> np.ndarray:
    """Random rows on the simplex (uniform draws normalised), built in chunks."""
    rng = np.random.default_rng(seed)
    P = np.empty((n, n_classes), dtype=dtype)
    step = 5_000_000
    for lo in range(0, n, step):
        block = rng.random((min(step, n - lo), n_classes), dtype=np.float64) + 1e-3
        P[lo : lo + block.shape[0]] = block / block.sum(axis=1, keepdims=True)
    return P


@numba.njit(fastmath=True, nogil=True, cache=True)
def _sum_slice(flat, lo, hi):
    part = flat[lo:hi]
    total = 0.0
    for i in range(part.shape[0]):
        total += part[i]
    return total


@numba.njit(parallel=True, fastmath=True, cache=True)
def _sum_prange(flat, n_blocks):
    parts = np.zeros(n_blocks)
    n = flat.shape[0]
    for b in numba.prange(n_blocks):
        parts[b] = _sum_slice(flat, b * n // n_blocks, (b + 1) * n // n_blocks)
    return parts.sum()


def bandwidth(P: np.ndarray, repeat: int) -> float:
    """Read-bandwidth reference: the faster of two parallel numba sums over P's bytes
    (numba prange, and the thread pool the kernels use)."""
    flat = P.reshape(-1)
    threads = numba.get_num_threads()
    prange = best(lambda: _sum_prange(flat, threads), repeat)
    pool = best(
        lambda: in_blocks(lambda b, lo, hi: _sum_slice(flat, lo, hi), flat.size, threads), repeat
    )
    return min(prange, pool)


class FixedProba:
    """What modAL's strategies need of a classifier: predict_proba, here precomputed."""

    def __init__(self, proba: np.ndarray) -> None:
        self.proba = proba

    def predict_proba(self, X, **kwargs):
        return self.proba


class FixedCommittee:
    """What modAL.disagreement needs of a committee, with everything precomputed (the
    members' votes too, so modAL's time leaves out the argmax that ours includes)."""

    def __init__(self, P_members: np.ndarray) -> None:
        self._proba = np.ascontiguousarray(np.transpose(P_members, (1, 0, 2)))
        self._votes = np.argmax(self._proba, axis=2)
        self.classes_ = np.arange(P_members.shape[2])

    def __len__(self) -> int:
        return self._proba.shape[1]

    def __iter__(self):
        return iter(range(len(self)))

    def vote(self, X, **kwargs):
        return self._votes

    def vote_proba(self, X, **kwargs):
        return self._proba

    def predict_proba(self, X, **kwargs):
        return self._proba.mean(axis=1)


def numpy_top_k(P: np.ndarray, method: str) -> np.ndarray:
    """Plain vectorised numpy: score every row, argpartition, sort the k."""
    if method == "least-confidence":
        values = 1.0 - P.max(axis=1)
    elif method == "margin":
        top2 = np.partition(P, P.shape[1] - 2, axis=1)[:, -2:]
        values = 1.0 - (top2[:, 1] - top2[:, 0])
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = -np.where(P > 0, P * np.log(P), 0.0).sum(axis=1)
    picks = np.argpartition(-values, K - 1)[:K]
    return picks[np.argsort(-values[picks])]


def row(*cells) -> str:
    widths = (9, 3, 8, 18, 10, 10, 10, 10, 10, 10, 8)
    return " ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=False))


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.4f}"


def ratio(a: float | None, b: float | None, digits: int = 1) -> str:
    return "-" if a is None or b is None else f"{a / b:.{digits}f}"


# --------------------------------------------------------------------- sections


def chosen(strategies: dict, only: set[str] | None) -> dict:
    """The strategies named in ``--only`` (all without it)."""
    return {name: fn for name, fn in strategies.items() if only is None or name in only}


def single_model(sizes: list[int], quick: bool, only: set[str] | None = None) -> None:
    from modAL import uncertainty

    strategies = chosen(
        {
            "margin": uncertainty.margin_sampling,
            "least-confidence": uncertainty.uncertainty_sampling,
            "entropy": uncertainty.entropy_sampling,
        },
        only,
    )
    if not strategies:
        return
    print("\n## Single-model measures, top-10 (seconds)\n")
    print(
        row(
            "N",
            "C",
            "dtype",
            "method",
            "modAL",
            "numpy",
            "ours",
            "bw-ref",
            "modAL/ours",
            "numpy/ours",
            "bw/ours",
        )
    )
    for n in sizes:
        for n_classes in (2, 4):
            P = probabilities(n, n_classes, np.float64)
            X = np.empty((n, 0))
            repeat = 3 if n >= 10_000_000 else 5
            reference = bandwidth(P, repeat)
            for method, strategy in strategies.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    modal = best(
                        partial(strategy, FixedProba(P), X, n_instances=K),
                        1 if n >= 10_000_000 else 2,
                    )
                plain = best(partial(numpy_top_k, P, method), 1 if n >= 10_000_000 else 3)
                ours = best(partial(ak.top_k, P, K, method), repeat)
                print(
                    row(
                        f"{n:.0e}",
                        n_classes,
                        "float64",
                        method,
                        fmt(modal),
                        fmt(plain),
                        fmt(ours),
                        fmt(reference),
                        ratio(modal, ours),
                        ratio(plain, ours),
                        ratio(reference, ours, 2),
                    )
                )
            del P
    if not quick and "margin" in strategies:
        big_margin()


def big_margin() -> None:
    n = 100_000_000
    P = probabilities(n, 4, np.float32)
    reference = bandwidth(P, 3)
    ours = best(lambda: ak.top_k(P, K, "margin"), 3)
    print(
        row(
            f"{n:.0e}",
            4,
            "float32",
            "margin",
            "skipped",
            "skipped",
            fmt(ours),
            fmt(reference),
            "-",
            "-",
            ratio(reference, ours, 2),
        )
    )
    print(
        f"  (1e8 x 4 float32 = {P.nbytes / 1e9:.1f} GB; modAL and numpy skipped: minutes "
        "and several GB of temporaries)"
    )


def committee(sizes: list[int], only: set[str] | None = None) -> None:
    from modAL import disagreement

    strategies = chosen(
        {
            "vote-entropy": disagreement.vote_entropy_sampling,
            "consensus-entropy": disagreement.consensus_entropy_sampling,
            "max-disagreement": disagreement.max_disagreement_sampling,
        },
        only,
    )
    if not strategies:
        return
    print("\n## Committee measures, M = 5, C = 4, top-10 (seconds)\n")
    print(
        row("N", "C", "dtype", "method", "modAL", "", "ours", "bw-ref", "modAL/ours", "", "bw/ours")
    )
    for n in sizes:
        P = np.stack([probabilities(n, 4, np.float64, seed=s) for s in range(5)])
        reference = bandwidth(P, 3)
        fixed = FixedCommittee(P)
        X = np.empty((n, 0))
        for method, strategy in strategies.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                modal = best(partial(strategy, fixed, X, n_instances=K), 1)
            ours = best(partial(ak.committee_top_k, P, K, method), 3)
            print(
                row(
                    f"{n:.0e}",
                    4,
                    "float64",
                    method,
                    fmt(modal),
                    "",
                    fmt(ours),
                    fmt(reference),
                    ratio(modal, ours),
                    "",
                    ratio(reference, ours, 2),
                )
            )
    print("  (modAL runs once per line; its committee's votes and probabilities are precomputed)")


def fused(n: int, n_trees: int) -> None:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    print(f"\n## Fused inference + top-10, {n:.0e} rows, 10 features, 4 classes (seconds)\n")
    X, y = make_classification(10_000, 10, n_informative=6, n_classes=4, random_state=0)
    pool = np.random.default_rng(1).normal(size=(n, 10)).astype(np.float32)
    forest = RandomForestClassifier(n_trees, random_state=0, n_jobs=-1).fit(X, y)
    logistic = LogisticRegression(max_iter=1000).fit(X, y)
    print(f"{'model':>34} {'predict_proba':>14} {'+ our top_k':>12} {'fused':>8} {'speed-up':>9}")
    for name, model in (
        (f"RandomForest({n_trees}, n_jobs=-1)", forest),
        ("LogisticRegression", logistic),
    ):
        arrays = ak.from_sklearn(model)
        proba = best(lambda m=model: m.predict_proba(pool), 2)
        both = best(lambda m=model: ak.top_k(m.predict_proba(pool), K), 2)
        ours = best(lambda a=arrays: ak.fused_top_k(pool, a, K), 3)
        print(f"{name:>34} {proba:>14.3f} {both:>12.3f} {ours:>8.3f} {both / ours:>8.2f}x")
    nodes = sum(tree.tree_.node_count for tree in forest.estimators_)
    print(
        f"  (forest fitted on 10,000 rows: {nodes:,} nodes, depth up to "
        f"{max(t.tree_.max_depth for t in forest.estimators_)})"
    )


def binning(n: int) -> None:
    import vaex

    print(f"\n## 1024 x 1024 counts of {n:.0e} points (seconds)\n")
    rng = np.random.default_rng(2)
    x = rng.normal(size=n)
    y = 0.5 * rng.normal(size=n) + 0.3 * x
    limits = [[-4.0, 4.0], [-3.0, 3.0]]
    frame = vaex.from_arrays(x=x, y=y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = best(lambda: frame.count(binby=[frame.x, frame.y], shape=1024, limits=limits), 5)
        grid_vaex = frame.count(binby=[frame.x, frame.y], shape=1024, limits=limits)
    ours = best(lambda: ak.counts2d(x, y, limits, 1024), 5)
    plain = best(lambda: np.histogram2d(x, y, bins=1024, range=limits), 1)
    same = np.array_equal(grid_vaex, ak.counts2d(x, y, limits, 1024)[0])
    by = rng.integers(0, 3, n)
    per_class = best(lambda: ak.counts2d(x, y, limits, 1024, by=by), 3)
    mean = best(lambda: ak.stat2d(x, y, by.astype(np.float64), limits, 1024, "mean"), 3)
    print(f"{'vaex count':>22} {'ours counts2d':>14} {'vaex/ours':>10} {'numpy histogram2d':>18}")
    print(f"{theirs:>22.4f} {ours:>14.4f} {theirs / ours:>10.2f} {plain:>18.3f}")
    print(
        f"  (grids identical to vaex's: {same}; ours per class, 3 classes: {per_class:.4f}; "
        f"per-bin mean: {mean:.4f})"
    )


_COMPILE_PROBE = """
import json, time, numpy as np
t0 = time.perf_counter()
import numba
t1 = time.perf_counter()
import armillary_kernels as ak
out = {"import numba": t1 - t0, "import": time.perf_counter() - t1}
from sklearn.ensemble import RandomForestClassifier
rng = np.random.default_rng(0)
P = rng.dirichlet(np.ones(4), 2000)
X = rng.normal(size=(500, 5)); y = rng.integers(0, 3, 500)
forest = ak.from_sklearn(RandomForestClassifier(5, random_state=0).fit(X, y))
calls = {
    "top_k float64": lambda: ak.top_k(P, 10),
    "top_k float32": lambda: ak.top_k(P.astype(np.float32), 10),
    "committee_top_k": lambda: ak.committee_top_k(np.stack([P, P]), 10),
    "fused_top_k (forest)": lambda: ak.fused_top_k(X, forest, 10),
    "counts2d": lambda: ak.counts2d(X[:, 0], X[:, 1], ((-1, 1), (-1, 1)), 64),
    "stat2d": lambda: ak.stat2d(X[:, 0], X[:, 1], X[:, 2], ((-1, 1), (-1, 1)), 64),
}
for name, call in calls.items():
    t0 = time.perf_counter(); call(); first = time.perf_counter() - t0
    t0 = time.perf_counter(); call(); out[name] = (first, time.perf_counter() - t0)
print(json.dumps(out))
"""


def compile_times() -> None:
    print("\n## Compile time: first call in a fresh process (seconds)\n")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        runs = []
        for _ in range(2):  # empty cache, then the cache the first run wrote
            done = subprocess.run(
                [sys.executable, "-c", _COMPILE_PROBE],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    cold, warm = runs
    print(f"{'call':>22} {'cold (compile)':>15} {'cached (load)':>14} {'then warm':>10}")
    for name in cold:
        if name.startswith("import"):
            continue
        print(f"{name:>22} {cold[name][0]:>15.2f} {warm[name][0]:>14.3f} {warm[name][1]:>10.4f}")
    total_cold = sum(v[0] for k, v in cold.items() if not k.startswith("import"))
    total_warm = sum(v[0] for k, v in warm.items() if not k.startswith("import"))
    print(f"{'all of the above':>22} {total_cold:>15.2f} {total_warm:>14.3f}")
    print(
        f"  (import armillary_kernels after numba: {cold['import']:.2f} s cold, "
        f"{warm['import']:.2f} s with the cache, nothing compiles at import; "
        f"import numba itself: {cold['import numba']:.2f} s)"
    )


SINGLE = ("margin", "least-confidence", "entropy")
COMMITTEE = ("vote-entropy", "consensus-entropy", "max-disagreement")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument(
        "--only",
        metavar="METHODS",
        help="comma-separated measures to time (of " + ", ".join(SINGLE + COMMITTEE) + "); "
        "the fused, binning and compile sections are then skipped",
    )
    args = parser.parse_args()
    only = None if args.only is None else set(args.only.split(","))
    if only is not None and not only <= set(SINGLE + COMMITTEE):
        parser.error(f"unknown measures in --only: {sorted(only - set(SINGLE + COMMITTEE))}")
    started = time.perf_counter()
    print(
        f"# bench_kernels{' --quick' if args.quick else ''}"
        f"{'' if only is None else ' --only ' + args.only}: numba {numba.__version__}, "
        f"numpy {np.__version__}, {numba.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    warmup = probabilities(1000, 4, np.float64)  # compile outside the timings
    for method in SINGLE:
        ak.top_k(warmup, K, method)
    for method in COMMITTEE:
        ak.committee_top_k(np.stack([warmup] * 5), K, method)
    ak.top_k(warmup.astype(np.float32), K)
    if args.quick:
        single_model([100_000, 1_000_000], quick=True, only=only)
        committee([100_000], only=only)
    else:
        single_model([1_000_000, 10_000_000], quick=False, only=only)
        committee([1_000_000, 10_000_000], only=only)
    if only is None:
        if args.quick:
            fused(100_000, 20)
            binning(1_000_000)
        else:
            fused(1_000_000, 100)
            binning(10_000_000)
        compile_times()
    print(
        f"\n# done in {time.perf_counter() - started:.0f} s, load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
