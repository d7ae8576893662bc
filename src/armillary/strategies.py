"""Query strategies: by name (scored with the compiled core) or any modAL-style callable.

A strategy is any callable ``(learner, X, n_instances=1, **kw) -> (indices, scores)``, so
modAL's own strategies plug in unchanged (the session's :class:`~armillary.learners.Learner`
offers ``predict_proba``, ``vote``, ``vote_proba``, ``classes_`` and ``len``). Names are
scored in one fused pass per chunk by :mod:`armillary_kernels`, never building more than
one chunk of probabilities at a time.

Besides ranking, this module holds the selectors the session uses around it: a
diversity-aware batch (uncertainty-weighted clusters, or ranked batch mode), the
cold-start seed set (k-means++ over a sample of the pool), a farthest-first search for
classes not yet labelled, and a class-balanced merge for rare classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.cluster import kmeans_plusplus
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

import armillary_kernels
from armillary import _batch
from armillary.learners import Learner

SINGLE = ("least-confidence", "margin", "entropy", "random")
COMMITTEE = ("vote-entropy", "consensus-entropy", "max-disagreement")
NAMES = SINGLE + COMMITTEE
#: Measures that :class:`FusedScorer` computes straight from the features.
FUSED = ("least-confidence", "margin", "entropy")
#: Estimators whose fused probabilities are bit-identical to ``predict_proba``. Not
#: ``LogisticRegression``: scikit-learn multiplies float32 features in float32, the
#: kernel in float64, so probabilities differ by ~1e-7 and picks would change.
_FUSED_TREES = (RandomForestClassifier, ExtraTreesClassifier, DecisionTreeClassifier)

Strategy = str | Callable[..., Any]


def resolve_strategy(strategy: Strategy, *, committee: bool) -> Strategy:
    """Check a strategy name (or accept a callable); raise a clear error otherwise.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones), or a committee measure
        asked of a single learner.
    """
    if callable(strategy):
        return strategy
    if strategy not in NAMES:
        raise ValueError(
            f"unknown strategy {strategy!r}; valid names: {', '.join(NAMES)} "
            "(or pass a function (learner, X, n_instances=1) -> (indices, scores))"
        )
    if strategy in COMMITTEE and not committee:
        raise ValueError(
            f"strategy {strategy!r} measures disagreement in a committee: pass several "
            "learners, e.g. learner=['random-forest', 'extra-trees', 'knn']"
        )
    return strategy


def strategy_name(strategy: Strategy) -> str:
    return strategy if isinstance(strategy, str) else getattr(strategy, "__name__", "custom")


def rank_chunk(
    learner: Any,
    X: np.ndarray,
    k: int,
    strategy: str,
    *,
    exclude: np.ndarray | None,
    offset: int,
    random_state: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` of one chunk of rows (global indices ``offset + i``), best first."""
    kw = {"exclude": exclude, "random_state": random_state, "offset": offset}
    if strategy == "random":
        # Equal scores everywhere: the kernel's seeded hash of the row index decides,
        # which is a uniform random order, the same however the pool is chunked.
        flat = np.full((len(X), 2), 0.5, dtype=np.float32)
        idx, _ = armillary_kernels.top_k(flat, k, method="least-confidence", **kw)
        return idx, np.zeros(len(idx))
    if strategy in COMMITTEE:
        members = learner.member_proba(X)
        return armillary_kernels.committee_top_k(members, k, method=strategy, **kw)
    if isinstance(learner, FusedScorer):
        return learner.top_k(X, k, strategy, **kw)
    proba = learner.predict_proba(X)
    return armillary_kernels.top_k(proba, k, method=strategy, **kw)


def rank_pool(
    learner: Any,
    X: np.ndarray,
    k: int,
    strategy: Strategy,
    *,
    exclude: np.ndarray,
    random_state: int,
    chunk_rows: int,
    rows: np.ndarray | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Rank the pool and return (positions, scores) of the best ``k``, best first.

    ``rows`` restricts scoring to a sample of positions (``pool_sample``). Returns
    ``None`` when ``cancelled()`` turns true between chunks (newer labels arrived).
    A learner that :func:`fused_scorer` can pack is scored by the fused kernel, with
    the same picks as ``predict_proba``; any other keeps the ``predict_proba`` path.
    """
    if callable(strategy):
        return _rank_callable(learner, X, k, strategy, exclude=exclude, rows=rows)
    learner = fused_scorer(learner, strategy) or learner
    if rows is not None:
        return _rank_rows(learner, X, k, strategy, exclude, random_state, chunk_rows, rows)
    parts = []
    for start in range(0, len(X), chunk_rows):
        if cancelled is not None and cancelled():
            return None
        stop = min(start + chunk_rows, len(X))
        parts.append(
            rank_chunk(
                learner,
                X[start:stop],
                k,
                strategy,
                exclude=np.ascontiguousarray(exclude[start:stop]),
                offset=start,
                random_state=random_state,
            )
        )
    return armillary_kernels.merge_top_k(parts, k, random_state=random_state)


class FusedScorer:
    """A fitted :class:`~armillary.learners.Learner` packed for the fused kernels.

    Made by :func:`fused_scorer` once per ranking. Each chunk of raw rows is imputed and
    scaled by the learner itself (``learner.transform``), passed through the member's
    own pipeline steps, then scored by :func:`armillary_kernels.fused_top_k` tile by
    tile, never building the chunk's probabilities. One-vs-rest members are packed one
    estimator per class; their probabilities come from
    :func:`armillary_kernels.fused_proba` and are combined by the member's own
    ``combine``. Probabilities, scores and picks are those of ``learner.predict_proba``
    bit for bit (a forest's trees summed in order, as ``predict_proba`` with
    ``n_jobs=1`` sums them).
    """

    def __init__(self, learner: Learner, parts: dict[int | None, tuple[Any, Any]]) -> None:
        self.learner = learner
        self.member = learner.members_[0]
        self.parts = parts  # class (None: multiclass) -> (pipeline steps or None, model)

    def _proba(self, Xt: np.ndarray, key: int | None) -> np.ndarray:
        steps, model = self.parts[key]
        return armillary_kernels.fused_proba(_through(steps, Xt), model)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """What ``learner.predict_proba(X)`` returns, computed by the fused kernel."""
        Xt = self.learner.transform(X)
        if None in self.parts:
            return self._proba(Xt, None)
        positive = {c: self._proba(Xt, c)[:, 1] for c in self.parts}
        return self.member.combine(positive, len(Xt))

    def top_k(
        self, X: np.ndarray, k: int, strategy: str, *, exclude, offset: int, random_state: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` of raw rows ``X`` (global indices ``offset + i``), as :func:`rank_chunk`."""
        kw = {"exclude": exclude, "random_state": random_state, "offset": offset}
        if None not in self.parts:
            proba = self.predict_proba(X)
            return armillary_kernels.top_k(proba, k, method=strategy, **kw)
        steps, model = self.parts[None]
        Xt = _through(steps, self.learner.transform(X))
        return armillary_kernels.fused_top_k(Xt, model, k, strategy, **kw)


def fused_scorer(learner: Any, strategy: Strategy) -> FusedScorer | None:
    """A :class:`FusedScorer` for ``learner`` and ``strategy``, or ``None`` when the
    fused kernel cannot give exactly ``learner.predict_proba``'s picks.

    Fused: a fitted :class:`~armillary.learners.Learner` with one member (no committee),
    multiclass or one-vs-rest, whose estimators are exactly ``RandomForestClassifier``,
    ``ExtraTreesClassifier`` or ``DecisionTreeClassifier`` (subclasses may change
    ``predict_proba``), bare or last in a ``Pipeline``; strategy margin,
    least-confidence or entropy. Anything else returns ``None``.
    """
    if not (isinstance(strategy, str) and strategy in FUSED):
        return None
    if type(learner) is not Learner or len(getattr(learner, "members_", ())) != 1:
        return None
    member = learner.members_[0]
    if learner.scheme == "multiclass":
        estimators = {None: member}
    else:
        estimators = dict(getattr(member, "estimators_", {}))
    parts = {}
    for key, estimator in estimators.items():
        part = _pack(estimator, learner.n_classes if key is None else None)
        if part is None:
            return None
        parts[key] = part
    if learner.scheme != "multiclass" and not parts:
        return None  # every class constant: nothing to fuse
    return FusedScorer(learner, parts)


def _pack(estimator: Any, n_classes: int | None) -> tuple[Any, Any] | None:
    """(pipeline steps or None, packed trees) of a fitted estimator, or ``None``.

    With ``n_classes``, the trees' class columns are spread over ``n_classes`` columns
    as :func:`~armillary.learners.aligned_proba` does (absent classes are zero); else
    (one-vs-rest) the estimator must know classes 0 and 1 in that order.
    """
    steps = None
    if type(estimator) is Pipeline:
        steps, estimator = estimator[:-1], estimator[-1]
    if type(estimator) not in _FUSED_TREES or getattr(estimator, "n_outputs_", 1) != 1:
        return None
    classes = np.asarray(estimator.classes_)
    if n_classes is None and classes.tolist() != [0, 1]:
        return None
    try:
        model = armillary_kernels.from_sklearn(estimator)
    except ValueError:
        return None
    if n_classes is not None and len(classes) != n_classes:
        value = np.zeros((len(model.value), n_classes))
        value[:, classes.astype(np.intp)] = model.value
        model = model._replace(value=value)
    return steps, model


def _through(steps: Any, Xt: np.ndarray) -> np.ndarray:
    return Xt if steps is None else np.asarray(steps.transform(Xt))


def rank_pool_by_class(
    learner: Any,
    X: np.ndarray,
    k: int,
    strategy: str,
    *,
    n_classes: int,
    exclude: np.ndarray,
    random_state: int,
    chunk_rows: int,
    rows: np.ndarray | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """For each class ``c``, the best ``k`` pool rows among those the model predicts as
    ``c`` (positions, scores; best first), for class-balanced querying.

    One pass over the pool: each chunk's probabilities are computed once (by the fused
    kernel where :func:`fused_scorer` can pack the learner, bit-identical to
    ``predict_proba``) and ranked once per class, rows predicted as another class hidden
    as NaN (which the kernels never pick). ``strategy`` is one of :data:`SINGLE`;
    ``"random"`` draws at random within each predicted class. ``rows`` and ``cancelled``
    as in :func:`rank_pool`.
    """
    proba = (fused_scorer(learner, strategy) or learner).predict_proba
    if rows is not None:
        rows = rows[~exclude[rows]]
    n = len(X) if rows is None else len(rows)
    parts: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(n_classes)]
    for start in range(0, n, chunk_rows):
        if cancelled is not None and cancelled():
            return None
        stop = min(start + chunk_rows, n)
        if rows is None:
            P, skip = proba(X[start:stop]), np.ascontiguousarray(exclude[start:stop])
        else:
            P, skip = proba(X[rows[start:stop]]), None
        predicted = np.argmax(P, axis=1)
        if strategy == "random":  # equal scores: the seeded hash of the row decides
            P, method = np.full((len(P), 2), 0.5), "least-confidence"
        else:
            method = strategy
        for c in range(n_classes):
            hidden = np.where((predicted == c)[:, None], P, np.nan)
            parts[c].append(
                armillary_kernels.top_k(
                    hidden, k, method=method, exclude=skip, offset=start,
                    random_state=random_state,
                )
            )
    empty = (np.empty(0, np.int64), np.empty(0))
    merged = [
        armillary_kernels.merge_top_k(p, k, random_state=random_state) if p else empty
        for p in parts
    ]
    if strategy == "random":
        merged = [(idx, np.zeros(len(idx))) for idx, _ in merged]
    if rows is not None:
        merged = [(rows[idx], scores) for idx, scores in merged]
    return merged


def _rank_rows(learner, X, k, strategy, exclude, random_state, chunk_rows, rows):
    rows = rows[~exclude[rows]]
    if rows.size == 0:
        return np.empty(0, np.int64), np.empty(0)
    parts = []
    for start in range(0, len(rows), chunk_rows):
        chunk = rows[start : start + chunk_rows]
        parts.append(
            rank_chunk(
                learner,
                X[chunk],
                k,
                strategy,
                exclude=None,
                offset=start,
                random_state=random_state,
            )
        )
    local, scores = armillary_kernels.merge_top_k(parts, k, random_state=random_state)
    return rows[local], scores


def _rank_callable(learner, X, k, strategy, *, exclude, rows):
    """Call a modAL-style strategy on the pool rows (or the sample) and map back."""
    pool = np.flatnonzero(~exclude) if rows is None else rows[~exclude[rows]]
    if pool.size == 0:
        return np.empty(0, np.int64), np.empty(0)
    Xp = learner_input(X, pool)
    local, scores = _call(strategy, learner, Xp, min(k, pool.size))
    order = _best_first(strategy, learner, Xp[local])
    return pool[local[order]], scores[order]


def _call(strategy, learner, X, n):
    """One call of a modAL-style strategy: checked indices into ``X`` and their scores."""
    result = strategy(learner, X, n_instances=n)
    if isinstance(result, tuple) and len(result) == 2:
        local, scores = result
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    else:
        local, scores = result, None
    local = np.asarray(local, dtype=np.int64).reshape(-1)
    if local.size and (local.min() < 0 or local.max() >= len(X)):
        raise ValueError(
            f"strategy {strategy_name(strategy)} returned indices outside 0..{len(X) - 1}"
        )
    if scores is None or scores.shape != local.shape:
        scores = np.full(local.shape, np.nan)
    return local, scores


def _best_first(strategy, learner, X):
    """Order a strategy's picks so that its own choice comes first.

    modAL's selectors (``multi_argmax``) return their picks unordered, yet the queue is
    read front first. The strategy picks half of the first ``n`` rows, recursively, so
    ``order[0]`` is its ``n_instances=1`` choice and each prefix of length ``n / 2**j``
    is its choice of that many (``log2 n`` calls on at most ``n`` rows).
    """
    order = np.arange(len(X))
    n = len(order)
    while n > 1:
        head = order[:n]
        chosen = head[np.unique(_call(strategy, learner, X[head], n // 2)[0])]
        order[:n] = np.concatenate([chosen, head[~np.isin(head, chosen)]])
        n = len(chosen)
    return order


def batch_scores(strategy: Strategy, scores: np.ndarray) -> np.ndarray:
    """Scores for :func:`diverse_batch`, higher is better, of rows ranked best first.

    A named strategy's scores say that already. A callable's scores are its own (modAL's
    ``margin_sampling`` returns margins, where lower is better), so its rank order is used.
    """
    if callable(strategy):
        return -np.arange(len(scores), dtype=np.float64)
    return np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)


def learner_input(X: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The raw feature rows handed to a callable strategy (the learner imputes/scales)."""
    return np.ascontiguousarray(X[positions])


def diverse_batch(
    features: np.ndarray,
    scores: np.ndarray,
    n: int,
    *,
    random_state: int = 0,
    labelled: np.ndarray | None = None,
    method: str = "auto",
) -> np.ndarray:
    """Pick ``n`` informative *and* different rows of the candidates.

    ``features`` (already imputed and scaled) and ``scores`` (higher is better) describe
    the candidates, e.g. the top few hundred of the ranking. Returns indices into them.
    With ``n`` >= the number of candidates all are returned, best first.

    ``method="clusters"`` (and ``"auto"``, the default): diverse mini-batch selection
    (Zhdanov 2019): k-means into ``n`` clusters weighted by uncertainty, and from each
    the candidate nearest its centre, best score first. ``method="ranked"``: ranked batch
    mode (Cardoso et al. 2017, modAL's ``uncertainty_batch_sampling``), greedy picks
    trading uncertainty against distance to ``labelled`` (features of the labelled rows,
    same space) and to the picks so far. Both are in :mod:`armillary._batch`, with why
    clusters is the default.
    """
    if method not in ("auto", "ranked", "clusters"):
        raise ValueError(
            f"unknown diverse batch method {method!r}; valid: auto, ranked, clusters"
        )
    m = len(scores)
    if n >= m:
        return np.argsort(-scores, kind="stable")
    if n <= 1:
        return np.array([int(np.argmax(scores))])
    if method == "ranked":
        return _batch.ranked_batch(features, scores, n, labelled)
    return _batch.clustered_batch(features, scores, n, random_state)


def seed_order(features: np.ndarray, n: int, *, random_state: int = 0) -> np.ndarray:
    """A diverse seed set from zero labels: k-means++ centres chosen among the rows.

    Returns ``min(n, len(features))`` indices into ``features`` (imputed, scaled), in
    the order k-means++ picked them: each far from those before it.
    """
    n = min(n, len(features))
    if n == 0:
        return np.empty(0, np.int64)
    _, idx = kmeans_plusplus(features, n_clusters=n, random_state=random_state)
    return np.asarray(idx, dtype=np.int64)


def explore_order(features: np.ndarray, labelled: np.ndarray, n: int) -> np.ndarray:
    """Farthest-first from the labelled rows: finds classes not labelled yet.

    With labels of one class only a classifier cannot rank, but rows far from everything
    labelled so far are likely to belong to other classes. Greedy farthest-first
    traversal of ``features`` (a sample of the pool, imputed and scaled) from
    ``labelled`` (the labelled rows, same space). Returns indices into ``features``.
    """
    n = min(n, len(features))
    if n == 0:
        return np.empty(0, np.int64)
    nearest = np.full(len(features), np.inf)
    for start in range(0, len(labelled), 1024):
        block = labelled[start : start + 1024]
        d = ((features[:, None, :] - block[None, :, :]) ** 2).sum(axis=2).min(axis=1)
        nearest = np.minimum(nearest, d)
    picks = []
    for _ in range(n):
        i = int(np.argmax(nearest))
        picks.append(i)
        nearest = np.minimum(nearest, ((features - features[i]) ** 2).sum(axis=1))
        nearest[i] = -1.0
    return np.array(picks, dtype=np.int64)


def balanced_merge(
    per_class: Sequence[tuple[np.ndarray, np.ndarray]], label_counts: Sequence[int], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Interleave per-class rankings, rarest class first, for class-balanced querying.

    ``per_class[c]`` holds the best rows among those predicted as class ``c``. Classes
    with fewer labels come first in each round, so a rare class is queried as often as
    a common one.
    """
    order = np.argsort(np.asarray(label_counts), kind="stable")
    positions: list[int] = []
    scores: list[float] = []
    seen: set[int] = set()
    cursors = [0] * len(per_class)
    while len(positions) < k:
        moved = False
        for c in order:
            idx, sc = per_class[c]
            while cursors[c] < len(idx) and int(idx[cursors[c]]) in seen:
                cursors[c] += 1
            if cursors[c] < len(idx):
                seen.add(int(idx[cursors[c]]))
                positions.append(int(idx[cursors[c]]))
                scores.append(float(sc[cursors[c]]))
                cursors[c] += 1
                moved = True
                if len(positions) == k:
                    break
        if not moved:
            break
    return np.array(positions, dtype=np.int64), np.array(scores, dtype=np.float64)
