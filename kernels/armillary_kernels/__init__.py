"""armillary_kernels: the compiled scoring core of Armillary.

Numba kernels behind validated wrappers; imports only numpy and numba, so it runs in
batch jobs and on Dask workers as well as in the labelling session.  The kernels
compile on their first call (and are cached on disk), never at import.
"""

from __future__ import annotations

from .scoring import least_confidence, margin, merge_top_k, top_k

__all__ = ["least_confidence", "margin", "merge_top_k", "top_k"]
