"""Ranked batch-mode selection (Cardoso et al. 2017), behind :func:`strategies.diverse_batch`.

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

import numpy as np


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
    span = scores.max() - scores.min()
    if scores.min() >= 0.0 and scores.max() <= 1.0:
        uncertainty = scores
    else:
        uncertainty = (scores - scores.min()) / span if span > 0 else np.ones(m)
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
