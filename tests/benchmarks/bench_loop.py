"""How long the labeller waits: label() -> next() at catalogue scale, against AstronomicAL's way.

A script, not a test (timings on shared machines are noisy): it prints figures and ratios
measured in one run.

    python tests/benchmarks/bench_loop.py                 # 10M rows (generated once, ~1 min)
    python tests/benchmarks/bench_loop.py --rows 1000000  # smaller
    python tests/benchmarks/bench_loop.py --quick         # 200k rows, 50 labels
    python tests/benchmarks/bench_loop.py --unfused       # as before the fused rescoring

What it measures, on the example catalogue with a 100-tree random forest and margin:

* label -> next: the time from ``session.label()`` returning to ``session.next()``
  returning, over N labels made as fast as a script can (median, p95). The background
  trainer is busy the whole time; this is what the pane waits for.
* queue reflects a label: from ``label()`` to the publication of a queue whose model was
  trained on that label, for the full pool and with ``pool_sample``.
* AstronomicAL's way, on a 1M-row sample in the same run: refit the forest, predict_proba
  over the pool, modAL's margin_sampling, per label.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import armillary
from armillary.datasets import EXAMPLE_FEATURES, GENERATOR_VERSION, make_catalogue

FEATURES = list(EXAMPLE_FEATURES)
CLASSES = ["Star", "Galaxy", "QSO"]


def catalogue(rows: int, folder: Path) -> armillary.Catalogue:
    path = folder / f"catalogue_{rows}_v{GENERATOR_VERSION}.fits"
    if not path.exists():
        t = time.perf_counter()
        make_catalogue(n=rows, seed=0, path=path, thumbnails=0)
        print(f"generated {rows:,} rows in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    cat = armillary.open_catalogue(path, id_column="ID")
    print(f"opened (cache) in {time.perf_counter() - t:.1f} s")
    return cat


def session_for(cat, store: Path, **kw) -> armillary.Session:
    return armillary.Session(
        cat,
        classes=CLASSES,
        features=FEATURES,
        label_column="labels",
        label_map={0: "Star", 1: "Galaxy", 2: "QSO"},
        store=store,
        learner="random-forest",
        strategy="margin",
        random_state=0,
        **kw,
    )


def label_then_next(session, truth: np.ndarray, n: int) -> np.ndarray:
    """Label n candidates as fast as possible; return label->next latencies (s)."""
    waits = []
    candidate = session.next()
    for _ in range(n):
        session.label(candidate.id, CLASSES[truth[candidate.position]])
        t = time.perf_counter()
        candidate = session.next()
        waits.append(time.perf_counter() - t)
    return np.array(waits)


def time_to_reflect(session, truth: np.ndarray, n: int, timeout: float = 900) -> np.ndarray:
    """For n labels, one at a time: seconds until a queue trained on that label lands."""
    out = []
    for _ in range(n):
        candidate = session.next()
        wanted = session.counts["labelled"] + 1
        t = time.perf_counter()
        session.label(candidate.id, CLASSES[truth[candidate.position]])
        while session._trainer.queue.trained_on < wanted:
            if time.perf_counter() - t > timeout:
                raise RuntimeError("the queue did not reflect a label in time")
            time.sleep(0.005)
        out.append(time.perf_counter() - t)
    return np.array(out)


def astronomical_way(cat, truth: np.ndarray, rows: int, n: int) -> np.ndarray:
    """Per label: refit, predict_proba over the whole pool, modAL margin_sampling."""
    from modAL.uncertainty import margin_sampling
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = cat.to_numpy(FEATURES)
    sample = np.sort(rng.choice(len(X), size=min(rows, len(X)), replace=False))
    X, y = X[sample], truth[sample]
    labelled = list(rng.choice(len(X), size=10, replace=False))
    times = []
    for _ in range(n):
        t = time.perf_counter()
        model = RandomForestClassifier(n_estimators=100, n_jobs=-1, random_state=0)
        model.fit(X[labelled], y[labelled])
        pool = np.setdiff1d(np.arange(len(X)), labelled)
        idx, _ = margin_sampling(model, X[pool], n_instances=1)
        labelled.append(int(pool[idx[0]]))
        times.append(time.perf_counter() - t)
    return np.array(times)


def describe(name: str, seconds: np.ndarray) -> str:
    ms = seconds * 1e3
    return (
        f"{name:<44} median {np.median(ms):9.2f} ms   p95 {np.percentile(ms, 95):9.2f} ms   "
        f"max {ms.max():9.2f} ms   (n={len(ms)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--reflect", type=int, default=3, help="labels timed until reflected")
    parser.add_argument("--pool-sample", type=int, default=200_000)
    parser.add_argument("--astro-rows", type=int, default=1_000_000)
    parser.add_argument("--astro-labels", type=int, default=5)
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "armillary-bench"
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--unfused",
        action="store_true",
        help="rescore with predict_proba + top_k, not the fused kernel (the old path)",
    )
    args = parser.parse_args()
    if args.unfused:
        from armillary import strategies

        strategies.fused_scorer = lambda learner, strategy: None
    if args.quick:
        args.rows, args.labels, args.astro_rows, args.pool_sample = 200_000, 50, 200_000, 50_000
    args.data.mkdir(parents=True, exist_ok=True)
    version = sys.version.split()[0]
    print(f"python {version}, {os.cpu_count()} cores, armillary {armillary.__version__}")
    print("rescoring: " + ("predict_proba + top_k (--unfused)" if args.unfused else "fused"))
    cat = catalogue(args.rows, args.data)
    truth = cat.column("true_label").astype(np.int64)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        session = session_for(cat, Path(tmp) / "full.sqlite")
        print(f"session ready in {time.perf_counter() - t:.1f} s ({len(cat):,} rows)")
        waits = label_then_next(session, truth, args.labels)
        rows.append(describe(f"label -> next, full pool ({len(cat):,})", waits))
        reflect = time_to_reflect(session, truth, args.reflect)
        rows.append(describe("label -> queue reflects it, full pool", reflect))
        session.close()
        sampled = session_for(cat, Path(tmp) / "sample.sqlite", pool_sample=args.pool_sample)
        waits_s = label_then_next(sampled, truth, args.labels)
        rows.append(describe(f"label -> next, pool_sample={args.pool_sample:,}", waits_s))
        reflect_s = time_to_reflect(sampled, truth, args.reflect)
        rows.append(describe("label -> queue reflects it, pool_sample", reflect_s))
        sampled.close()
    astro = astronomical_way(cat, truth, args.astro_rows, args.astro_labels)
    rows.append(
        describe(f"AstronomicAL's way per label ({min(args.astro_rows, len(cat)):,})", astro)
    )
    print()
    print("\n".join(rows))
    print()
    print(f"p95 label -> next, full pool: {np.percentile(waits, 95) * 1e3:.2f} ms (target < 50 ms)")
    print(
        f"AstronomicAL per label / Armillary label->next (median): "
        f"{np.median(astro) / np.median(waits):,.0f}x"
    )


if __name__ == "__main__":
    main()
