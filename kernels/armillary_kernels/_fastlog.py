"""A natural logarithm that the compiler can vectorise.

numba calls the C library's scalar ``log`` once per element (there is no SVML on most
machines), which makes entropy-like measures compute-bound at several times the cost of
reading the probabilities.  :func:`log_tile` computes ``ln x`` over a small buffer in
two straight-line loops (bit manipulation, then a polynomial) that LLVM turns into SIMD
code.  The method is fdlibm's ``__ieee754_log`` (Sun Microsystems, 1993): write
``x = 2**k * (1 + f)`` with ``sqrt(2)/2 <= 1 + f < sqrt(2)``, then
``ln(1 + f) = 2s + s*R(s*s)`` with ``s = f / (2 + f)``; its error is below 1 ulp.

Domain: ``x`` must be a normal positive float64 (``x >= TINY``).  Callers clamp their
input to ``TINY`` and mask the terms of zero, negative and NaN entries themselves; a
``+inf`` input returns about 709.78 rather than ``inf``.
"""

from __future__ import annotations

import numba
import numpy as np

#: Smallest normal float64; probabilities below it count as 0 in ``p * ln p`` terms.
TINY = float(np.finfo(np.float64).tiny)

_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10

# Bit patterns as int64: sqrt(2)/2, the shift that moves the exponent boundary from 1.0
# down to sqrt(2)/2, and the mantissa mask.
_SQRTH_BITS = np.int64(0x3FE6A09E667F3BCD)
_SHIFT = np.int64(0x3FF0000000000000 - 0x3FE6A09E667F3BCD)
_MANTISSA = np.int64(0x000FFFFFFFFFFFFF)
_BIAS = np.int64(1023)
_S52 = np.int64(52)


# error_model="numpy": no zero-division check on ``f / (2 + f)``, which would stop
# LLVM from vectorising the loop (2 + f is never 0 here).
@numba.njit(cache=True, nogil=True, error_model="numpy")
def log_tile(x, mant, out, n):
    """Write ``ln(x[j])`` to ``out[j]`` for ``j < n``.

    Parameters
    ----------
    x : float64 array
        Inputs, each >= :data:`TINY` and finite (see the module docstring).
    mant : int64 array
        Scratch space, at least ``n`` long.
    out : float64 array
        Results, at least ``n`` long; must not alias ``x``.
    n : int
        Number of entries.
    """
    bits = x.view(np.int64)
    scaled = mant.view(np.float64)
    for j in range(n):
        ix = bits[j] + _SHIFT
        out[j] = np.float64((ix >> _S52) - _BIAS)
        mant[j] = (ix & _MANTISSA) + _SQRTH_BITS
    for j in range(n):
        k = out[j]
        f = scaled[j] - 1.0
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
        t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
        r = t2 + t1
        hfsq = 0.5 * f * f
        out[j] = k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)


def log_array(x: np.ndarray) -> np.ndarray:
    """Apply :func:`log_tile` to a whole float64 array (for tests and benchmarks).

    Parameters
    ----------
    x : numpy.ndarray
        Values >= :data:`TINY`, float64.

    Returns
    -------
    numpy.ndarray
        ``ln x``, float64, same shape.
    """
    values = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    out = np.empty_like(values)
    log_tile(values, np.empty(values.size, dtype=np.int64), out, values.size)
    return out.reshape(np.shape(x))
