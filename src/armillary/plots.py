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


def binned(
    x_values: np.ndarray, y_values: np.ndarray, x: str, y: str, bins: int
) -> tuple[tuple[tuple[float, float], tuple[float, float]], np.ndarray]:
    """Robust limits of both axes, and every row's count in a ``bins`` x ``bins`` grid."""
    limits = (robust_limits(x_values, x), robust_limits(y_values, y))
    counts, _ = armillary_kernels.counts2d(x_values, y_values, limits, bins)
    return limits, counts


def density_map(x_values: np.ndarray, y_values: np.ndarray, x: str, y: str) -> DensityMap:
    """Bin every row and draw the counts (log scale, darker is denser)."""
    limits, counts = binned(x_values, y_values, x, y, MAP_BINS)
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

    def position(self, row: int) -> list[list[float | None]]:
        """A row's coordinates on each map (None where missing), from the binned arrays."""
        out = []
        for m in self.maps:
            xy = (float(self.values[m.x][row]), float(self.values[m.y][row]))
            out.append([v if np.isfinite(v) else None for v in xy])
        return out

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


# --------------------------------------------------------------------------- notebook


class Plot:
    """A bokeh figure of the catalogue, shown in a notebook as a self-contained frame.

    ``.figure`` is the :class:`bokeh.plotting.figure` (change it as you like, or show it
    with bokeh's own tools); ``.save(path)`` writes a standalone HTML file. BokehJS is
    inlined, never fetched: the plot works on a machine without internet access.
    """

    def __init__(self, figure: Any, height: int) -> None:
        self.figure = figure
        self._height = height

    def html(self) -> str:
        """The figure as a standalone HTML page (BokehJS inlined)."""
        from bokeh.embed import file_html
        from bokeh.resources import INLINE

        return file_html(self.figure, INLINE, title=self.figure.title.text or "armillary")

    def save(self, path: Any) -> Any:
        from pathlib import Path

        path = Path(path)
        path.write_text(self.html(), encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        import html

        return (
            f'<iframe class="armillary-plot" srcdoc="{html.escape(self.html(), quote=True)}" '
            f'style="width: 100%; height: {self._height + 30}px; border: 0" '
            'sandbox="allow-scripts"></iframe>'
        )


def figure(
    session: Session,
    x: str | None = None,
    y: str | None = None,
    *,
    bins: int | None = None,
    height: int = 520,
) -> Plot:
    """Every row of the catalogue as a density image on ``x`` against ``y`` (default the
    session's first axes), the human labels on top in their class colours (hover shows
    id and label), and the session's next candidate as a blue ring. ``bins`` along each
    axis default to about ``sqrt(rows) / 1.5`` (60 to 400): fine where the catalogue is
    big, not speckled where it is small. The figure takes the frame's width."""
    from bokeh.models import ColumnDataSource, HoverTool, LinearColorMapper
    from bokeh.palettes import Greys256
    from bokeh.plotting import figure as new_figure

    if x is None or y is None:
        if not session.axes:
            raise ArmillaryError("plot needs x and y: the session has no axes")
        x, y = session.axes[0]
    xv, yv = axis_values(session, x), axis_values(session, y)
    if bins is None:
        bins = int(np.clip(np.sqrt(len(xv)) / 1.5, 60, 400))
    limits, counts = binned(xv, yv, x, y, bins)
    level = np.log1p(counts.T.astype(np.float64))
    level[counts.T == 0] = np.nan
    (x0, x1), (y0, y1) = limits
    fig = new_figure(
        height=height, sizing_mode="stretch_width", x_range=(x0, x1), y_range=(y0, y1),
        title=f"{session.catalogue.name}: {len(session.catalogue):,} rows",
        x_axis_label=x, y_axis_label=y, tools="pan,wheel_zoom,box_zoom,reset,save",
        match_aspect=False,
    )  # fmt: skip
    mapper = LinearColorMapper(
        palette=list(reversed(Greys256))[40:], low=0, high=max(float(np.nanmax(level)), 1.0),
        nan_color=(0, 0, 0, 0),
    )  # fmt: skip
    fig.image(image=[level], x=x0, y=y0, dw=x1 - x0, dh=y1 - y0, color_mapper=mapper)
    positions, codes = session.pool.training()
    dots = fig.scatter(
        "x", "y", source=ColumnDataSource({
            "x": xv[positions], "y": yv[positions],
            "id": [str(i) for i in session.catalogue.ids_at(positions)],
            "label": [session.classes[c] for c in codes],
            "colour": [session.colours[c] for c in codes],
        }),
        color="colour", legend_group="label", size=7, line_color="black", line_width=0.6,
    )  # fmt: skip
    fig.add_tools(HoverTool(renderers=[dots], tooltips=[("id", "@id"), ("label", "@label")]))
    candidate = session.next()
    if candidate is not None:
        cx, cy = xv[candidate.position], yv[candidate.position]
        fig.scatter(
            [cx], [cy], marker="circle", size=20, fill_alpha=0, line_color="#1a56db",
            line_width=3, legend_label=f"candidate {candidate.id}",
        )  # fmt: skip
    fig.legend.location = "top_left"
    fig.legend.background_fill_alpha = 0.7
    return Plot(fig, height)
