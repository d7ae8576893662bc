"""Argument checks shared by the public wrappers.

Every public function of :mod:`armillary_kernels` runs its arguments through these
before calling a kernel, so that a kernel only ever sees C-contiguous, native-endian
arrays of the dtypes it was written for, and the user gets a :class:`ValueError` that
names the argument and says what to do instead of a numba typing error.
"""

from __future__ import annotations

from operator import index as _as_index

import numba
import numpy as np

from ._reference import tie_seed


def native(array: np.ndarray) -> np.ndarray:
    """Return ``array`` C-contiguous and native-endian (copying only when needed)."""
    if not array.dtype.isnative:  # e.g. big-endian columns straight from a FITS file
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array)


def float_array(values, name: str, ndim: int, what: str) -> np.ndarray:
    """Return ``values`` as a C-contiguous float32/float64 array with ``ndim`` axes."""
    array = np.asarray(values)
    if array.ndim != ndim:
        msg = f"{name} must be a {ndim}-D array ({what}); got shape {array.shape}"
        raise ValueError(msg)
    if array.dtype.kind != "f" or array.dtype.itemsize not in (4, 8):
        msg = (
            f"{name} has dtype {array.dtype}; it must be float32 or float64: "
            f"cast it first, e.g. {name}.astype(np.float32)"
        )
        raise ValueError(msg)
    return native(array)


def probabilities(P, name: str = "P") -> np.ndarray:
    """Return ``P`` as a C-contiguous, native-endian float32/float64 (N, C) array."""
    P = float_array(P, name, 2, "rows x classes")
    if P.shape[1] < 2:
        msg = f"{name} must have at least 2 columns (classes); got shape {P.shape}"
        raise ValueError(msg)
    return P


def member_probabilities(P_members, name: str = "P_members") -> np.ndarray:
    """Return committee probabilities as a C-contiguous (M, N, C) float array.

    A list of (N, C) arrays, one per member, is stacked (a copy).
    """
    if isinstance(P_members, (list, tuple)):
        if not P_members:
            msg = f"{name} is empty; a committee needs at least one member"
            raise ValueError(msg)
        shapes = {np.shape(member) for member in P_members}
        if len(shapes) != 1:
            msg = f"{name}: every member must give the same (N, C) shape; got {sorted(shapes)}"
            raise ValueError(msg)
        P_members = np.stack([np.asarray(member) for member in P_members])
    P = float_array(P_members, name, 3, "members x rows x classes")
    if P.shape[0] < 1:
        msg = f"{name} has no members; got shape {P.shape}"
        raise ValueError(msg)
    if P.shape[2] < 2:
        msg = f"{name} must have at least 2 classes (last axis); got shape {P.shape}"
        raise ValueError(msg)
    return P


def integer(value, name: str, minimum: int) -> int:
    """Return ``value`` as a Python int >= ``minimum`` (bools are refused)."""
    if isinstance(value, (bool, np.bool_)):
        msg = f"{name} must be an integer; got {value!r}"
        raise ValueError(msg)
    try:
        number = _as_index(value)
    except TypeError:
        msg = f"{name} must be an integer; got {value!r}"
        raise ValueError(msg) from None
    if number < minimum:
        msg = f"{name} must be >= {minimum}; got {number}"
        raise ValueError(msg)
    return number


def random_state(value) -> np.uint64:
    """Return the 64-bit tie-break seed of an integer ``random_state``."""
    if value is None or isinstance(value, (bool, np.bool_)):
        msg = (
            f"random_state must be an integer (the same one for every chunk of a pool); "
            f"got {value!r}"
        )
        raise ValueError(msg)
    try:
        return tie_seed(_as_index(value))
    except TypeError:
        msg = f"random_state must be an integer; got {value!r}"
        raise ValueError(msg) from None


def method(value, table: dict[str, int]) -> int:
    """Return the code of a method name, or raise listing the valid names."""
    if isinstance(value, str) and value in table:
        return table[value]
    names = ", ".join(repr(name) for name in sorted(table))
    msg = f"unknown method {value!r}; valid names are {names}"
    raise ValueError(msg)


def exclude_mask(exclude, n: int, what: str = "P") -> tuple[np.ndarray, bool]:
    """Return ``(mask, has_mask)``; an absent mask is an empty array and False."""
    if exclude is None:
        return np.zeros(0, dtype=np.bool_), False
    mask = np.asarray(exclude)
    if mask.dtype != np.bool_:
        msg = f"exclude must be a boolean mask (True = skip the row); got dtype {mask.dtype}"
        raise ValueError(msg)
    if mask.shape != (n,):
        msg = f"exclude must have shape ({n},), one entry per row of {what}; got {mask.shape}"
        raise ValueError(msg)
    return np.ascontiguousarray(mask), True


def n_blocks(n: int) -> int:
    """One block of rows per numba thread (fewer for tiny pools)."""
    return max(1, min(numba.get_num_threads(), n))
