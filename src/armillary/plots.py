"""Density maps of the whole catalogue, fed by binned data: where a source sits.

The pane shows, beside each candidate, small maps of the catalogue on pairs of axes (by
default the session's first two features; ``Session(axes=[("g - r", "r - i"), ...])``),
with the candidate marked. Every row is binned by the compiled core
(:func:`armillary_kernels.counts2d`), once per session; a map crosses to the browser as a
small PNG, and each candidate adds only its coordinates.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

import armillary_kernels
from armillary.errors import ArmillaryError

if TYPE_CHECKING:
    from armillary.session import Session

#: Bins along each axis of a pane map.
MAP_BINS = 120
#: Share of finite values left outside each end of an axis (robust limits).
TAIL = 0.005
_SAMPLE = 1_000_000  # rows that set the limits


@dataclass(frozen=True)
class DensityMap:
    """One map: its axes, their limits, the PNG (log counts, y up) and the counts."""

    x: str
    y: str
    limits: tuple[tuple[float, float], tuple[float, float]]
    png: bytes
    counts: np.ndarray
    outside: int

    def wire(self) -> dict[str, Any]:
        """The pane's form of the map (the PNG crosses as a binary buffer)."""
        return {"x": self.x, "y": self.y, "limits": [list(p) for p in self.limits], "png": self.png}


def axis_values(session: Session, name: str) -> np.ndarray:
    """Every row's value on one axis: the session's feature array when it is a feature."""
    if name in session.features:
        return session._X[:, session.features.index(name)]
    return session.catalogue.to_numpy([name], dtype=np.float32)[:, 0]


def robust_limits(values: np.ndarray, name: str) -> tuple[float, float]:
    """The range holding all but :data:`TAIL` of the finite values at each end."""
    step = max(1, values.size // _SAMPLE)
    sample = values[::step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        raise ArmillaryError(f"axis {name!r} has no finite value: pick another axis")
    lo, hi = (float(v) for v in np.quantile(sample, [TAIL, 1 - TAIL]))
    if not hi > lo:  # one value (or nearly): a unit-wide window around it
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.02 * (hi - lo)
    return lo - pad, hi + pad


def density_map(x_values: np.ndarray, y_values: np.ndarray, x: str, y: str) -> DensityMap:
    """Bin every row and draw the counts (log scale, darker is denser)."""
    limits = (robust_limits(x_values, x), robust_limits(y_values, y))
    counts, _ = armillary_kernels.counts2d(x_values, y_values, limits, MAP_BINS)
    finite = int(np.count_nonzero(np.isfinite(x_values) & np.isfinite(y_values)))
    outside = finite - int(counts.sum())
    level = np.log1p(counts.T[::-1].astype(np.float64))  # rows from the top: y up
    level /= max(level.max(), 1.0)
    # White where empty, to near-black where densest; a little grey for a single source.
    shade = np.where(counts.T[::-1] > 0, 215 - 195 * level, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(shade, mode="L").save(buffer, format="PNG", optimize=True)
    return DensityMap(x, y, limits, buffer.getvalue(), counts, outside)


#: Most labelled sources drawn on the maps (an even subset beyond).
MAX_POINTS = 20_000


class SessionMaps:
    """The density maps of a session's axes, and the places of its labelled sources."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.values: dict[str, np.ndarray] = {}
        self.maps: list[DensityMap] = []
        for x, y in session.axes:
            for name in (x, y):
                if name not in self.values:
                    self.values[name] = axis_values(session, name)
            self.maps.append(density_map(self.values[x], self.values[y], x, y))

    def labelled(self) -> dict[str, Any]:
        """The pane's ``map_labels``: class codes (uint8) of the human labels, and their
        (x, y) on each map (float32 pairs, NaN where missing), as binary buffers."""
        positions, codes = self.session.pool.training()
        if positions.size > MAX_POINTS:
            keep = np.linspace(0, positions.size - 1, MAX_POINTS).astype(np.int64)
            positions, codes = positions[keep], codes[keep]
        return {
            "codes": codes.astype(np.uint8).tobytes(),
            "xy": [
                np.column_stack([self.values[m.x][positions], self.values[m.y][positions]])
                .astype(np.float32)
                .tobytes()
                for m in self.maps
            ],
        }


def session_maps(session: Session) -> list[DensityMap]:
    """The density maps of the session's axes (every row of the catalogue)."""
    return SessionMaps(session).maps


def positions(session: Session, position: int) -> list[list[float | None]]:
    """A row's coordinates on each map (None where missing)."""
    names = list(dict.fromkeys(n for pair in session.axes for n in pair))
    if not names:
        return []
    row = session.catalogue.row(position, names)
    out = []
    for x, y in session.axes:
        xy = [row[x], row[y]]
        out.append([float(v) if v is not None and np.isfinite(float(v)) else None for v in xy])
    return out
