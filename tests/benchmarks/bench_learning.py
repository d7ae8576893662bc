"""Learning quality: curves for random, margin and the diversity batch, on three data sets.

A script, not a test. It prints, for the example catalogue and scikit-learn's bundled
digits and breast-cancer sets, the seed-averaged accuracy at a few label counts and the
area under each curve (mean accuracy over the curve), then checks the targets:

* margin beats random (area under the curve) on all three;
* on the example catalogue, Star accuracy (Star against the rest, AstronomicAL's
  per-classifier figure) is at least 97.5% with at most 30 labels.

    python tests/benchmarks/bench_learning.py            # 5 seeds (~15-20 min on 2 cores)
    python tests/benchmarks/bench_learning.py --quick    # 2 seeds, shorter curves
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_digits

from armillary import metrics as mt
from armillary.datasets import make_catalogue
from armillary.simulate import area_under_curve, simulate

FEATURES = [
    "u - g",
    "g - r",
    "r - i",
    "i - z",
    "z - y",
    "y - j",
    "j - h",
    "h - k",
    "k - w1",
    "w1 - w2",
]
RUNS = [("random", False, 1), ("margin", False, 1), ("margin", True, 10)]


def example_catalogue(
    rows: int, pool: int
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray]:
    import armillary

    folder = Path(tempfile.gettempdir()) / "armillary-bench"
    path = folder / f"catalogue_{rows}.fits"
    if not path.exists():
        make_catalogue(n=rows, seed=0, path=path, thumbnails=0)
    cat = armillary.open_catalogue(path, id_column="ID")
    X = cat.to_numpy(FEATURES)
    y = cat.column("true_label").astype(np.int64)
    return X, y, ["Star", "Galaxy", "QSO"], *split(y, pool)


def split(y: np.ndarray, pool: int | None) -> tuple[np.ndarray, np.ndarray]:
    validation, _ = mt.holdout_split(y, validation=min(0.3, 3000 / len(y)), random_state=0)
    rest = np.setdiff1d(np.arange(len(y)), validation)
    if pool and rest.size > pool:
        rest = np.sort(np.random.default_rng(0).choice(rest, pool, replace=False))
    return np.asarray(validation), rest


def bundled(loader) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray]:
    data = loader()
    X = data.data.astype(np.float32)
    y = data.target.astype(np.int64)
    names = [str(n) for n in data.target_names]
    return X, y, names, *split(y, None)


def curves(name, X, y, classes, validation, pool, budget, seeds) -> pd.DataFrame:
    frames = []
    for strategy, diverse, batch in RUNS:
        t = time.perf_counter()
        frame = simulate(
            X,
            y,
            classes,
            validation=validation,
            pool=pool,
            learner="random-forest",
            strategy=strategy,
            budget=budget,
            seeds=seeds,
            batch=batch,
            diverse=diverse,
            random_state=0,
        )
        frame["data"] = name
        frames.append(frame)
        print(f"  {name}: {frame['strategy'].iloc[0]:<18} {time.perf_counter() - t:6.1f} s")
    return pd.concat(frames, ignore_index=True)


def table(frame: pd.DataFrame, at: list[int], metric: str = "accuracy") -> str:
    mean = frame.groupby(["strategy", "n_labels"])[metric].mean().unstack("strategy")
    shown = mean.reindex([n for n in at if n in mean.index])
    auc = area_under_curve(frame, metric)
    lines = [f"{metric} (mean of seeds) by labels:", shown.round(4).to_string(), "",
             "area under the curve:", auc.round(4).to_string()]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seeds = 2 if args.quick else args.seeds
    sets = {
        "example catalogue": (example_catalogue(args.rows, 20_000), 60 if args.quick else 100),
        "digits": (bundled(load_digits), 60 if args.quick else 150),
        "breast cancer": (bundled(load_breast_cancer), 40 if args.quick else 80),
    }
    verdicts = []
    for name, ((X, y, classes, validation, pool), budget) in sets.items():
        print(
            f"{name}: {len(y):,} rows, pool {len(pool):,}, validation {len(validation):,}, "
            f"budget {budget}, {seeds} seeds"
        )
        frame = curves(name, X, y, classes, validation, pool, budget, seeds)
        at = [n for n in (5, 10, 20, 30, 50, 80, 100, 150) if n <= budget]
        print(table(frame, at))
        auc = area_under_curve(frame)
        verdicts.append(
            f"{name}: margin AUC {auc['margin']:.4f} vs random {auc['random']:.4f} "
            f"-> {'margin beats random' if auc['margin'] > auc['random'] else 'MISSED'}"
        )
        if name == "example catalogue":
            star = frame[(frame.strategy == "margin") & (frame.n_labels <= 30)]
            best = star.groupby("n_labels")["accuracy_Star"].mean()
            print(table(frame, at, "accuracy_Star"))
            ok = (best >= 0.975).any()
            first = best[best >= 0.975].index.min() if ok else None
            verdicts.append(
                f"example catalogue: Star accuracy with <=30 labels (margin): best "
                f"{best.max():.4f}" + (f", >=97.5% from {first} labels" if ok else " -> MISSED")
            )
        print()
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
