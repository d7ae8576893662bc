"""armillary_kernels: the compiled scoring and binning core of Armillary.

Numba kernels behind validated wrappers; imports only numpy and numba, so it runs in
batch jobs and on Dask workers as well as in the labelling session.  The kernels
compile on their first call (and are cached on disk), never at import.
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
from .fused import (
    LinearModel,
    TreeEnsemble,
    fused_proba,
    fused_scores,
    fused_top_k,
    linear_model,
    pack_trees,
)
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
