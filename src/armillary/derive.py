"""Derived features: AstronomicAL's combination generator, custom combinations, safe
division, and the NaN / inf census of :meth:`armillary.Catalogue.describe`.

Combinations
------------
``catalogue.combine(["u", "g", "r"], "subtract", n=2)`` adds one virtual column per
2-combination of the columns (in the order given), named as AstronomicAL named them:
``u-g``, ``u-r``, ``g-r``. The four operations of AstronomicAL are built in:

=============  ======  =====================  ======================================
operation      symbol  name (n=3)             value
=============  ======  =====================  ======================================
``subtract``   ``-``   ``u-g-r``              ``u - g - r``
``add``        ``+``   ``u+g+r``              ``u + g + r``
``multiply``   ``*``   ``u*g*r``              ``u * g * r``
``divide``     ``/``   ``u/g/r``              ``u / g / r``, NaN where a divisor is 0
=============  ======  =====================  ======================================

:func:`register_combination` adds an operation of your own: a function of ``n`` numpy
arrays returning one, applied chunk by chunk. Its columns are named ``a<symbol>b`` when it
has a symbol, else ``name(a,b)``.

Division
--------
In :meth:`~armillary.Catalogue.derive` and :meth:`~armillary.Catalogue.combine`, every
``a / b`` becomes ``safe_divide(a, b)``: dividing by zero gives NaN, never inf, never a
warning and never an exception. (An expression passed straight to ``to_numpy`` is
evaluated as written.)
"""

from __future__ import annotations

import ast
import itertools
import re
from dataclasses import dataclass

import numpy as np

__all__ = [
    "combination",
    "combinations",
    "describe_chunks",
    "register_combination",
    "safe_divide",
    "safe_division",
]


@dataclass(frozen=True)
class Combination:
    """A way of combining columns: a symbol joining names, and how to compute the value.

    Attributes
    ----------
    name : str
    symbol : str or None
        Joins the column names of a combination's name (``g-j``).
    operator : str or None
        Python operator of a built-in combination (its vaex expression is a chain of it).
    function : callable or None
        ``function(*arrays) -> array`` of a registered combination.
    """

    name: str
    symbol: str | None
    operator: str | None = None
    function: object = None

    def column_name(self, columns):
        """The name of the combination of ``columns``."""
        if self.symbol:
            return self.symbol.join(columns)
        return f"{self.name}({','.join(columns)})"

    def expression(self, operands):
        """The vaex expression combining ``operands`` (names or bracketed expressions)."""
        if self.operator is not None:
            return f" {self.operator} ".join(operands)
        return f"{self.name}({', '.join(operands)})"


_BUILT_IN = {
    "subtract": Combination("subtract", "-", "-"),
    "add": Combination("add", "+", "+"),
    "multiply": Combination("multiply", "*", "*"),
    "divide": Combination("divide", "/", "/"),
}
_SYMBOLS = {c.symbol: name for name, c in _BUILT_IN.items()}
_REGISTRY = dict(_BUILT_IN)


def register_combination(name, function, symbol=None):
    """Register a combination function under ``name`` for :meth:`Catalogue.combine`.

    Parameters
    ----------
    name : str
        A Python identifier, not one of the built-in operations; registering a name again
        replaces the earlier function.
    function : callable
        ``function(*arrays) -> array``: called with one numpy array per column of a
        combination (chunks of rows, floats or integers) and returning an array of the
        same length.
    symbol : str, optional
        Joins the column names of a combination's name (``"~"`` -> ``g~j``); without it
        the name is ``name(g,j)``.

    Returns
    -------
    callable
        ``function``, so this works as a decorator through :func:`functools.partial`.

    Examples
    --------
    >>> import numpy as np
    >>> from armillary.derive import register_combination
    >>> def flux_ratio(a, b):
    ...     return 10 ** (-0.4 * (a - b))
    >>> _ = register_combination("flux_ratio", flux_ratio)
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a combination needs a Python identifier as its name, got {name!r}")
    if name in _BUILT_IN:
        raise ValueError(f"{name!r} is a built-in combination; pick another name")
    if not callable(function):
        raise TypeError(f"a combination function must be callable, got {function!r}")
    if symbol is not None and (not isinstance(symbol, str) or not symbol.strip()):
        raise ValueError(f"a combination symbol must be a non-empty str, got {symbol!r}")
    _REGISTRY[name] = Combination(name, symbol, None, function)
    return function


def combination(op):
    """The :class:`Combination` called ``op`` (a name or a built-in symbol such as ``"-"``).

    Raises
    ------
    ValueError
        ``op`` is not known; the message lists the known ones.
    """
    key = _SYMBOLS.get(op, op) if isinstance(op, str) else op
    if key not in _REGISTRY:
        known = ", ".join([*_BUILT_IN, *sorted(set(_REGISTRY) - set(_BUILT_IN))])
        raise ValueError(
            f"unknown combination {op!r}; the known ones are {known} "
            "(register more with armillary.derive.register_combination)"
        )
    return _REGISTRY[key]


def combinations(columns, n):
    """Every ``n``-combination of ``columns`` in AstronomicAL's order."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if n > len(columns):
        raise ValueError(f"n={n} is more than the {len(columns)} columns given")
    return list(itertools.combinations(columns, n))


def safe_divide(a, b):
    """``a / b`` as floats, NaN where ``b`` is 0 or either is missing (masked)."""
    a, b = _floats(a), _floats(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, np.nan, np.true_divide(a, b))


def _floats(values):
    if np.ma.isMaskedArray(values):
        return np.where(
            np.ma.getmaskarray(values), np.nan, np.ma.getdata(values).astype(np.float64)
        )
    return np.asarray(values, dtype=np.float64)


SAFE_DIVIDE = "safe_divide"
"""Name of :func:`safe_divide` in the expressions of derived columns."""


class _SafeDivision(ast.NodeTransformer):
    def visit_BinOp(self, node):
        self.generic_visit(node)
        if not isinstance(node.op, ast.Div):
            return node
        if isinstance(node.right, ast.Constant) and node.right.value not in (0, 0.0):
            return node  # dividing by a non-zero number needs no care
        return ast.Call(ast.Name(SAFE_DIVIDE, ast.Load()), [node.left, node.right], [])


def safe_division(expression):
    """``expression`` with each ``a / b`` as ``safe_divide(a, b)`` (see
    :func:`safe_divide`).

    Returns the expression unchanged when it holds no division or is not valid Python
    (vaex then reports the error).
    """
    if "/" not in expression:
        return expression
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return expression
    return ast.unparse(_SafeDivision().visit(tree))


def operand(name, virtual):
    """How column ``name`` enters an expression: its name, or its bracketed expression."""
    if name.isidentifier():
        return name
    if name in virtual:
        return f"({virtual[name]})"
    raise ValueError(
        f"column {name!r} cannot be combined: its name is not a Python "
        "identifier (derive it under another name first)"
    )


# --------------------------------------------------------------------------- census

_STATS = ("rows", "nan", "posinf", "neginf", "finite", "min", "max", "mean", "std")


def describe_chunks(names, chunks):
    """Counts and moments per column, accumulated over ``(start, block)`` chunks.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``names``; columns ``rows``, ``nan``, ``posinf``, ``neginf``,
        ``finite`` (counts), and ``min``, ``max``, ``mean``, ``std`` of the finite values
        (NaN where a column has none). Means and variances are merged chunk by chunk
        (Chan et al.), so they stay accurate for large offsets.
    """
    import pandas as pd

    k = len(names)
    counts = {key: np.zeros(k, np.int64) for key in _STATS[:5]}
    low, high = np.full(k, np.inf), np.full(k, -np.inf)
    mean, m2 = np.zeros(k), np.zeros(k)
    for _, block in chunks:
        block = block.astype(np.float64, copy=False)
        finite = np.isfinite(block)
        counts["rows"] += block.shape[0]
        counts["nan"] += np.isnan(block).sum(axis=0)
        counts["posinf"] += np.isposinf(block).sum(axis=0)
        counts["neginf"] += np.isneginf(block).sum(axis=0)
        low = np.minimum(low, np.where(finite, block, np.inf).min(axis=0, initial=np.inf))
        high = np.maximum(high, np.where(finite, block, -np.inf).max(axis=0, initial=-np.inf))
        mean, m2 = _merge_moments(counts["finite"], mean, m2, block, finite)
        counts["finite"] += finite.sum(axis=0)
    seen = counts["finite"] > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(m2 / counts["finite"])
    frame = pd.DataFrame(
        {
            **counts,
            "min": np.where(seen, low, np.nan),
            "max": np.where(seen, high, np.nan),
            "mean": np.where(seen, mean, np.nan),
            "std": np.where(seen, std, np.nan),
        },
        index=pd.Index(list(names), name="feature"),
    )
    return frame[list(_STATS)]


def _merge_moments(n_a, mean_a, m2_a, block, finite):
    """Mean and sum of squared deviations after adding the finite values of ``block``."""
    n_b = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_b = np.where(finite, block, 0.0).sum(axis=0) / n_b
        deviation = np.where(finite, block - mean_b, 0.0)
        m2_b = (deviation * deviation).sum(axis=0)
        n = n_a + n_b
        delta = mean_b - mean_a
        mean = np.where(n_b > 0, mean_a + delta * n_b / np.maximum(n, 1), mean_a)
        m2 = np.where(n_b > 0, m2_a + m2_b + delta**2 * n_a * n_b / np.maximum(n, 1), m2_a)
    return mean, m2


def is_plain_name(text):
    """Whether ``text`` is a bare identifier (a column name, not an expression)."""
    return re.fullmatch(r"[A-Za-z_]\w*", text) is not None
