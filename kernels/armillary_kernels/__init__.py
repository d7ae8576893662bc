"""armillary_kernels: the compiled scoring and binning core of Armillary.

Numba kernels behind validated wrappers; imports only numpy and numba, so it runs in
batch jobs and on Dask workers as well as in the labelling session.  The kernels
compile on their first call (and are cached on disk), never at import.

- :mod:`.scoring`: margin, least confidence, entropy; fused top-k; merging chunks.
- :mod:`.committee`: vote entropy, consensus entropy, max disagreement; their top-k.
- :mod:`.fused`, :mod:`.forest`: scores and top-k straight from a feature matrix for
  tree ensembles and linear models; :mod:`.sklearn_adapter` reads fitted estimators.
- :mod:`.binning`: 2-D counts, per-class counts and per-bin statistics.

Developers: numba keys each cached function on its own source file only, so after
editing a kernel delete ``kernels/armillary_kernels/__pycache__`` (or point
``NUMBA_CACHE_DIR`` elsewhere), or callers in other files keep their stale machine code.
An installed release is unaffected (every file is new).
"""

from __future__ import annotations

from .binning import counts2d, stat2d
from .committee import (
    committee_scores,
    committee_top_k,
    consensus_entropy,
    max_disagreement,
    vote_entropy,
)
from .forest import TreeEnsemble, pack_trees
from .fused import LinearModel, fused_proba, fused_scores, fused_top_k, linear_model
from .scoring import entropy, least_confidence, margin, merge_top_k, scores, top_k
from .sklearn_adapter import from_sklearn

__all__ = [
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
]
