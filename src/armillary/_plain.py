"""One rule for what counts as a missing catalogue value, shared by every view of a source."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def plain_value(value: Any) -> Any:
    """A catalogue value as a plain value, or None when missing (None, NaN, inf, an empty
    or blank string). Bytes are decoded, integers become ``int``; a numpy float keeps its
    own type, so that a float32 prints its own shortest digits (277.83542, not
    277.8354187011719)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, np.floating):
        return value if np.isfinite(value) else None
    if isinstance(value, numbers.Real):
        x = float(value)
        return x if math.isfinite(x) else None
    return value
