"""Simulated labelling: run the active-learning loop with known labels as the oracle.

This compares strategies and learners without a human (as ml-research's StandardAL does):
from a cold start, the loop fits, asks the strategy for the next rows, reveals their
labels from the oracle, and scores every round on a held-out validation set. Nothing is
written to any label store. Every run is reproducible from ``random_state``: run ``i``
draws its seed from ``numpy.random.SeedSequence(random_state).spawn(seeds)[i]``, so the
runs of neighbouring ``random_state`` values share nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from armillary import metrics as mt
from armillary import strategies as st
from armillary.learners import Learner
from armillary.trainer import CHUNK_ROWS, _standardise

if TYPE_CHECKING:
    from armillary.session import Session


def simulate(
    X: np.ndarray,
    oracle: np.ndarray,
    classes: Sequence[str],
    *,
    validation: np.ndarray,
    learner: Any = "extra-trees",
    scheme: str = "multiclass",
    scale: str | None = None,
    strategy: Any = "margin",
    budget: int = 200,
    seeds: int = 5,
    batch: int = 1,
    diverse: bool = False,
    initial: int | None = None,
    pool: np.ndarray | None = None,
    random_state: int = 0,
) -> pd.DataFrame:
    """Learning curves: one row per seed and number of labels.

    Parameters
    ----------
    X : (N, F) array
        Raw features of every row (NaN allowed; the learner imputes).
    oracle : (N,) int array
        True class codes (-1 where unknown: never queried).
    classes : class names, in code order.
    validation : positions scored every round, never queried or trained on.
    strategy : name or modAL-style callable; ``batch`` rows are labelled per round,
        chosen as a diverse batch (:func:`armillary.strategies.diverse_batch`) when
        ``diverse`` is true.
    initial : size of the cold-start seed set (k-means++); default ``len(classes)``.
    pool : positions that may be queried (default: every row with a known label that is
        not in ``validation``).

    Returns
    -------
    pandas.DataFrame
        Columns ``seed, strategy, n_labels``, then accuracy, balanced_accuracy, matthews,
        per-class precision/recall/f1 and ``accuracy_<class>`` (one class against the rest,
        AstronomicAL's per-classifier accuracy).
    """
    oracle = np.asarray(oracle, dtype=np.int64)
    validation = np.asarray(validation, dtype=np.int64)
    if validation.size == 0:
        raise ValueError("simulate needs a validation set with known labels")
    if pool is None:
        known = oracle >= 0
        known[validation] = False
        pool = np.flatnonzero(known)
    if np.asarray(pool).size == 0:
        raise ValueError("the oracle knows the class of no row outside the validation set")
    committee = isinstance(learner, list | tuple)
    strategy = st.resolve_strategy(strategy, committee=committee)
    spec = {"learner": learner, "scheme": scheme, "scale": scale, "classes": list(classes)}
    frames = []
    for seed, run_seed in enumerate(run_seeds(random_state, seeds)):
        rows = _run_one(
            X,
            oracle,
            validation,
            pool,
            spec,
            strategy,
            budget,
            batch,
            diverse,
            initial,
            run_seed,
        )
        frame = pd.DataFrame(rows)
        frame.insert(0, "strategy", st.strategy_name(strategy) + (" (diverse)" if diverse else ""))
        frame.insert(0, "seed", seed)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def run_seeds(random_state: int, n: int) -> list[int]:
    """Independent integer seeds for ``n`` runs, spawned from ``random_state``.

    ``SeedSequence.spawn`` gives statistically independent streams, unlike
    ``random_state + i`` with which ``random_state=0`` and ``1`` would share all but one run.
    """
    children = np.random.SeedSequence(random_state).spawn(n)
    return [int(child.generate_state(1, dtype=np.uint32)[0] >> 1) for child in children]


def _run_one(X, oracle, validation, pool, spec, strategy, budget, batch, diverse, initial, seed):
    classes = spec["classes"]
    labelled = list(_cold_start(X, oracle, pool, initial or len(classes), seed))
    rows = []
    while True:
        codes = oracle[labelled]
        model = None
        if np.unique(codes).size >= 2:
            model = Learner(
                spec["learner"],
                scheme=spec["scheme"],
                scale=spec["scale"],
                n_classes=len(classes),
                random_state=seed,
            ).fit(X[labelled], codes)
            rows.append(_score(model, X, oracle, validation, classes, len(labelled)))
        if len(labelled) >= budget:
            return rows
        want = min(batch, budget - len(labelled))
        more = _next_rows(X, oracle, pool, labelled, model, strategy, want, diverse, seed)
        if not more:  # the pool is used up before the budget
            return rows
        labelled += more


def _cold_start(X, oracle, pool, n, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sample = pool if pool.size <= 20_000 else rng.choice(pool, 20_000, replace=False)
    feats, _ = _standardise(X[sample], X[sample[:0]])
    return sample[st.seed_order(feats, n, random_state=seed)]


def _next_rows(X, oracle, pool, labelled, model, strategy, n, diverse, seed) -> list[int]:
    exclude = np.ones(len(X), dtype=bool)
    exclude[pool] = False
    exclude[labelled] = True
    if model is None:  # one class so far: look far from what is labelled
        rng = np.random.default_rng(seed)
        candidates = np.flatnonzero(~exclude)
        if candidates.size > 20_000:
            candidates = rng.choice(candidates, 20_000, replace=False)
        feats, done = _standardise(X[candidates], X[np.array(labelled)])
        return [int(p) for p in candidates[st.explore_order(feats, done, n)]]
    k = n * 10 if diverse and n > 1 else n
    positions, scores = st.rank_pool(
        model, X, k, strategy, exclude=exclude, random_state=seed, chunk_rows=CHUNK_ROWS
    )
    if diverse and n > 1 and len(positions) > n:
        both, _ = _standardise(model.transform(np.concatenate([X[positions], X[labelled]])),
                               X[:0])  # one robust scale for candidates and labelled rows
        feats, done = both[: len(positions)], both[len(positions) :]
        pick = st.diverse_batch(
            feats, st.batch_scores(strategy, scores), n, random_state=seed, labelled=done
        )
        positions = positions[pick]
    return [int(p) for p in positions[:n]]


def _score(model, X, oracle, validation, classes, n_labels) -> dict[str, Any]:
    truth = oracle[validation]
    pred = model.predict(X[validation])
    scores = mt.round_metrics(truth, pred, classes)
    scores.pop("confusion", None)
    for c, name in enumerate(classes):
        scores[f"accuracy_{name}"] = float(np.mean((pred == c) == (truth == c)))
    return {"n_labels": n_labels, **scores}


def summarise(curves: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Mean and standard deviation over seeds per strategy and number of labels."""
    grouped = curves.groupby(["strategy", "n_labels"])[metric]
    return grouped.agg(["mean", "std"]).reset_index()


def area_under_curve(curves: pd.DataFrame, metric: str = "accuracy") -> pd.Series:
    """Mean of the seed-averaged curve over its label counts, per strategy (0..1)."""
    mean = curves.groupby(["strategy", "n_labels"])[metric].mean().reset_index()
    return mean.groupby("strategy")[metric].mean()


def simulate_session(
    session: Session,
    *,
    oracle: Any = "labels",
    budget: int = 200,
    strategy: Any = None,
    seeds: int = 5,
    batch: int = 1,
    diverse: bool = False,
    pool_sample: int | None = 20_000,
    learner: Any = None,
) -> pd.DataFrame:
    """:meth:`Session.simulate`: the session's features, classes, learner and held-out set.

    ``oracle`` is ``"labels"`` (the catalogue's label column, through ``label_map``), the
    name of another column of class codes (mapped through ``label_map``), or an array of
    class codes. The pool is every row the oracle knows, less the validation and test rows
    (at most ``pool_sample`` of them, drawn once with the session's ``random_state``).
    """
    codes = _oracle_codes(session, oracle)
    held = session.evaluation.held_out
    validation = session.evaluation.validation
    if validation.size == 0:
        raise ValueError("simulate needs catalogue labels for a validation set (label_column)")
    known = codes >= 0
    known[held] = False
    pool = np.flatnonzero(known)
    if pool_sample and pool.size > pool_sample:
        rng = np.random.default_rng(session.random_state)
        pool = np.sort(rng.choice(pool, pool_sample, replace=False))
    return simulate(
        session._X,
        codes,
        session.classes,
        validation=validation,
        learner=session.settings.learner if learner is None else learner,
        scheme=session.settings.scheme,
        scale=session.settings.scale,
        strategy=session.strategy if strategy is None else strategy,
        budget=budget,
        seeds=seeds,
        batch=batch,
        diverse=diverse,
        pool=pool,
        random_state=session.random_state,
    )


def _oracle_codes(session: Session, oracle: Any) -> np.ndarray:
    if isinstance(oracle, str):
        if oracle == "labels":
            return session.catalogue_codes()
        raw = pd.Series(session.catalogue.column(oracle))
        lookup = {code: session.classes.index(name) for code, name in session.label_map.items()}
        if not lookup:
            raise ValueError(f"oracle column {oracle!r} needs the session's label_map to read it")
        return raw.map(lookup).fillna(-1).to_numpy(dtype=np.int64)
    codes = np.asarray(oracle, dtype=np.int64)
    if codes.shape != (len(session.catalogue),):
        raise ValueError(
            f"an oracle array needs one code per catalogue row ({len(session.catalogue)})"
        )
    return codes
