"""Learning quality: curves for random, margin and batch strategies, on four data sets.

A script, not a test. It prints, for the example catalogue (in two settings) and
scikit-learn's bundled digits and breast-cancer sets, the seed-averaged accuracy at a few
label counts and the area under each curve (mean accuracy over the curve), then checks the
targets:

* margin beats random (area under the curve) on all of them;
* Star accuracy (Star against the rest, AstronomicAL's per-classifier figure) is at least
  97.5% with at most 30 labels. It is reported for both example-catalogue settings:

  - "example catalogue (full)": every row, the example features
    (:data:`armillary.datasets.EXAMPLE_FEATURES`: the 10 adjacent colours u-g ... w1-w2 and
    the morphology column r_psf_model); infrared non-detections are NaN (the learner
    imputes them);
  - "example catalogue (AstronomicAL setting)": AstronomicAL's published setting, i.e. only
    rows detected at >= 5 sigma in all 11 bands (every ``<band>_err`` < 0.2177 mag, what an
    SDSS x UKIDSS x WISE inner-join cross-match holds), trained on the 11 magnitudes plus
    all 55 pairwise differences (its example configuration: ``subtract (a-b)``, n=2).

Strategies, with the session's default learner (extra trees, 100): random and margin one
label per round; margin ten per round, the top ten ("margin (top 10)", the baseline for
batches) and a diverse batch of ten (the default clustered batch of
:func:`armillary.strategies.diverse_batch`, from the top 100). Last, margin with a random
forest of 100 trees ("margin (random-forest)"), AstronomicAL's learner and Armillary's
default before extra trees.

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
from armillary.datasets import BANDS, EXAMPLE_FEATURES, GENERATOR_VERSION, make_catalogue
from armillary.simulate import area_under_curve, simulate

FEATURES = list(EXAMPLE_FEATURES)
LEARNER = "extra-trees"  # the session's default
RUNS = [  # strategy, diverse batch, batch size, learner
    ("random", False, 1, LEARNER),
    ("margin", False, 1, LEARNER),
    ("margin", False, 10, LEARNER),
    ("margin", True, 10, LEARNER),
    ("margin", False, 1, "random-forest"),  # AstronomicAL's learner, for comparison
]
FULL = "example catalogue (full)"
ASTRONOMICAL = "example catalogue (AstronomicAL setting)"
FIVE_SIGMA = 2.5 / np.log(10) / 5  # 0.2177 mag


def _catalogue(rows: int):
    import armillary

    folder = Path(tempfile.gettempdir()) / "armillary-bench"
    path = folder / f"catalogue_{rows}_v{GENERATOR_VERSION}.fits"
    if not path.exists():
        make_catalogue(n=rows, seed=0, path=path, thumbnails=0)
    return armillary.open_catalogue(path, id_column="ID")


def example_catalogue(
    rows: int, pool: int
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray]:
    cat = _catalogue(rows)
    X = cat.to_numpy(FEATURES)
    y = cat.column("true_label").astype(np.int64)
    return X, y, ["Star", "Galaxy", "QSO"], *split(y, pool)


def astronomical_setting(
    rows: int, pool: int
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Cross-matched rows (>= 5 sigma in all 11 bands); 11 magnitudes + 55 pairwise colours."""
    cat = _catalogue(rows)
    mags = cat.to_numpy(list(BANDS)).astype(np.float64)
    errs = cat.to_numpy([f"{b}_err" for b in BANDS])
    keep = np.flatnonzero(np.all(errs < FIVE_SIGMA, axis=1))  # NaN (undetected) fails too
    mags = mags[keep]
    pairs = [mags[:, a] - mags[:, b] for a in range(len(BANDS)) for b in range(a + 1, len(BANDS))]
    X = np.column_stack([mags, *pairs]).astype(np.float32)
    y = cat.column("true_label").astype(np.int64)[keep]
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
    for strategy, diverse, batch, learner in RUNS:
        t = time.perf_counter()
        frame = simulate(
            X,
            y,
            classes,
            validation=validation,
            pool=pool,
            learner=learner,
            strategy=strategy,
            budget=budget,
            seeds=seeds,
            batch=batch,
            diverse=diverse,
            random_state=0,
        )
        frame["data"] = name
        if batch > 1 and not diverse:
            frame["strategy"] = f"{strategy} (top {batch})"
        if learner != LEARNER:
            frame["strategy"] = f"{strategy} ({learner})"
        frames.append(frame)
        print(f"  {name}: {frame['strategy'].iloc[0]:<18} {time.perf_counter() - t:6.1f} s")
    return pd.concat(frames, ignore_index=True)


def ceiling(X, y, validation, pool) -> float:
    """Star accuracy of a 300-tree forest trained on the whole pool: what the data allow."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(SimpleImputer(strategy="median"),
                          RandomForestClassifier(300, n_jobs=-1, random_state=0))  # fmt: skip
    predicted = model.fit(X[pool], y[pool]).predict(X[validation])
    return float(np.mean((predicted == 0) == (y[validation] == 0)))


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
        FULL: (example_catalogue(args.rows, 20_000), 60 if args.quick else 100),
        ASTRONOMICAL: (astronomical_setting(args.rows, 20_000), 60),
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
            f"-> {'margin beats random' if auc['margin'] > auc['random'] else 'MISSED'}; "
            f"margin with a random forest {auc['margin (random-forest)']:.4f}"
        )
        if name in (FULL, ASTRONOMICAL):
            star = frame[(frame.strategy == "margin") & (frame.n_labels <= 30)]
            best = star.groupby("n_labels")["accuracy_Star"].mean()
            print(table(frame, at, "accuracy_Star"))
            ok = (best >= 0.975).any()
            first = best[best >= 0.975].index.min() if ok else None
            forest = frame[(frame.strategy == "margin (random-forest)") & (frame.n_labels == 30)]
            verdicts.append(
                f"{name}: Star accuracy with <=30 labels (margin): best "
                f"{best.max():.4f}, at {best.index.max()} labels {best.iloc[-1]:.4f}"
                + (f", >=97.5% from {first} labels" if ok else " -> MISSED")
                + f"; with a random forest at 30 labels {forest['accuracy_Star'].mean():.4f}"
                + f" (forest on all {len(pool):,} pool labels: "
                f"{ceiling(X, y, validation, pool):.4f})"
            )
        print()
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
