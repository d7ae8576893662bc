"""Diverse batches behind :func:`strategies.diverse_batch`: clustered and ranked.

Clustered (the default; Zhdanov 2019, "diverse mini-batch active learning"): the
candidates, already the top of the ranking, are split into ``n`` clusters by k-means
weighted by their uncertainty, and each cluster gives the candidate nearest its centre.
The weights (uncertainty rescaled over the candidates) pull each centre towards the
uncertain rows; taking the row nearest the centre, not the most uncertain one, keeps
outliers out of the batch. With a random forest, whose tied scores are already broken
by a seeded hash (so the top ``n`` is a random draw from the most uncertain rows), it
learns about as fast as the top ``n`` per label and faster than ranked batch
mode (``tests/benchmarks/bench_learning.py``); its point is that a batch never holds
near-copies, whatever the learner.

Ranked (Cardoso et al. 2017):

A batch of the top ``n`` uncertain rows is mostly ``n`` near-copies of one hard case: the
model learns from them what it would have learned from one. Ranked batch mode builds the
batch greedily instead, each pick maximising

    alpha * (1 - similarity) + (1 - alpha) * uncertainty

where ``similarity = 1 / (1 + distance)`` to the nearest row already labelled *or already
picked for this batch*, and ``uncertainty`` is the candidates' score as it is when it lies
in 0..1 (the named measures: 1 - max probability, 1 - margin, ...), else rescaled to 0..1
(a callable's rank order). As in
modAL's ``uncertainty_batch_sampling``, ``alpha = |unlabelled| / (|unlabelled| + |labelled|)``
over the candidates, so diversity weighs most while few rows are labelled and uncertainty
takes over as labels accumulate.
"""

from __future__ import annotations

import warnings

import numpy as np


def _rescaled(scores: np.ndarray) -> np.ndarray:
    """Scores min-max scaled to 0..1 (all ones where they are all equal)."""
    span = scores.max() - scores.min()
    return (scores - scores.min()) / span if span > 0 else np.ones(len(scores))


def _uncertainty(scores: np.ndarray) -> np.ndarray:
    """Scores as they are when they lie in 0..1 (the named measures), else rescaled."""
    if scores.min() >= 0.0 and scores.max() <= 1.0:
        return scores
    return _rescaled(scores)


def clustered_batch(
    features: np.ndarray, scores: np.ndarray, n: int, random_state: int = 0
) -> np.ndarray:
    """Pick ``n`` of the candidates: the row nearest each centre of an uncertainty-weighted
    k-means; best score first. Indices into ``features``.

    Where the candidates hold fewer than ``n`` distinct points (k-means then leaves
    clusters empty), the batch is filled up with the best-scored rows not yet taken.
    """
    from sklearn.cluster import KMeans

    features = np.asarray(features, dtype=np.float64)
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    # Weights spread over the candidates' own range (best 1, worst ~0): the candidates are
    # the top of the ranking, so their raw uncertainties differ little and would barely
    # pull the centres. The floor keeps k-means' total weight positive.
    weight = _rescaled(scores) + 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fewer distinct points than clusters": filled below
        km = KMeans(n_clusters=n, n_init=3, random_state=random_state).fit(
            features, sample_weight=weight
        )
    distance = ((features - km.cluster_centers_[km.labels_]) ** 2).sum(axis=1)
    picks = []
    for c in range(n):
        members = np.flatnonzero(km.labels_ == c)
        if members.size:
            picks.append(int(members[np.argmin(distance[members])]))
    if len(picks) < n:
        order = np.argsort(-scores, kind="stable")
        picks += order[~np.isin(order, picks)][: n - len(picks)].tolist()
    picks = np.array(picks, dtype=np.int64)
    return picks[np.argsort(-scores[picks], kind="stable")]


def _nearest(features: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Euclidean distance from each row of ``features`` to its nearest row of ``others``."""
    nearest = np.full(len(features), np.inf)
    for start in range(0, len(others), 1024):
        block = others[start : start + 1024]
        d2 = ((features[:, None, :] - block[None, :, :]) ** 2).sum(axis=2).min(axis=1)
        nearest = np.minimum(nearest, d2)
    return np.sqrt(nearest)


def ranked_batch(
    features: np.ndarray,
    scores: np.ndarray,
    n: int,
    labelled: np.ndarray | None = None,
    alpha: float | None = None,
) -> np.ndarray:
    """Pick ``n`` of the candidates, in pick order (indices into ``features``).

    Parameters
    ----------
    features : (m, F) imputed, scaled features of the candidates.
    scores : (m,) informativeness, higher is better.
    n : batch size (``n >= m`` returns every candidate, best score first).
    labelled : (L, F) features of the rows labelled so far, same space; may be empty.
    alpha : weight of dissimilarity; default ``m / (m + L)`` (1 without ``labelled``:
        farthest-first among the candidates, from the best-scored one).
    """
    features = np.asarray(features, dtype=np.float64)
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    m = len(scores)
    if n >= m:
        return np.argsort(-scores, kind="stable")
    uncertainty = _uncertainty(scores)
    if alpha is None:
        alpha = 1.0 if labelled is None else m / (m + len(labelled))
    labelled = np.empty((0, features.shape[1])) if labelled is None else np.asarray(labelled)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    nearest = _nearest(features, labelled) if len(labelled) else np.full(m, np.inf)
    first = int(np.argmax(scores))  # ties below (nothing labelled) go to the best score
    picks: list[int] = []
    taken = np.zeros(m, dtype=bool)
    for _ in range(n):
        similarity = 1.0 / (1.0 + nearest)  # 0 where nothing is near (no labels yet)
        value = alpha * (1.0 - similarity) + (1.0 - alpha) * uncertainty
        value[taken] = -np.inf
        i = first if not picks and not np.isfinite(nearest).any() else int(np.argmax(value))
        picks.append(i)
        taken[i] = True
        nearest = np.minimum(nearest, np.sqrt(((features - features[i]) ** 2).sum(axis=1)))
    return np.array(picks, dtype=np.int64)
