"""The wire layer: the labelling pane's traits, and the dock that shows it in JupyterLab.

Nothing here holds logic. :class:`armillary.presenter.PanePresenter` fills these traits
from a :class:`armillary.Session` and answers the pane's messages. The JavaScript side
mirrors these traits in ``js/types.ts``; keep both in step.
"""

from __future__ import annotations

from pathlib import Path

import anywidget
import ipywidgets
import traitlets

from armillary import __version__

_STATIC = Path(__file__).parent / "static"


class LabelPane(anywidget.AnyWidget):
    """One source at a time, with label buttons. Display it inline or dock it.

    Messages from the view are events: ``{"type": "act", "client": str, "seq": int,
    "action": "label" | "unsure" | "skip" | "undo", "id": str | int | None,
    "label": str | None}``. The kernel commits the act to the label store and only then
    raises ``acked[client]`` to ``seq``; a failed act is answered with a ``{"type":
    "nack", "client", "seq", "error"}`` message and never acknowledged.
    """

    _esm = _STATIC / "widget.js"
    _css = _STATIC / "widget.css"

    #: Catalogue name shown in the header.
    title = traitlets.Unicode("").tag(sync=True)
    #: ``[{"name": str, "colour": "#rrggbb", "key": "1"}]`` in button order.
    classes = traitlets.List(traitlets.Dict()).tag(sync=True)
    #: The source on show: ``{"id", "score", "model_version", "values": [{"name",
    #: "value"}], "image_name", "has_images", "cutouts", "map_positions"}``; a missing value
    #: is ``None``. Empty when the pool is done.
    candidate = traitlets.Dict().tag(sync=True)
    #: Density maps of the whole catalogue: ``[{"x", "y", "limits": [[x0, x1], [y0, y1]],
    #: "png": bytes}]`` (the PNG a binary buffer; y up). The candidate's coordinates on
    #: each are its ``map_positions``.
    maps = traitlets.List(traitlets.Dict()).tag(sync=True)
    #: The human labels on the maps: ``{"codes": uint8 bytes (class index), "xy": [float32
    #: bytes of (x, y) pairs, one per map]}``.
    map_labels = traitlets.Dict().tag(sync=True)
    #: PNG bytes of the candidate's image (empty when it has none).
    image = traitlets.Bytes(b"").tag(sync=True)
    #: Highest committed ``seq`` per client (view) id.
    acked = traitlets.Dict().tag(sync=True)
    #: The most recent acts, newest first: ``{"client", "seq", "action", "id", "label"}``.
    recent = traitlets.List(traitlets.Dict()).tag(sync=True)
    #: One line about the model: version, labels trained on, strategy.
    status = traitlets.Unicode("").tag(sync=True)
    #: Counts shown in the header: ``{"labelled", "unsure", "skipped", "pool"}``.
    counts = traitlets.Dict().tag(sync=True)
    #: The last error, in words; empty when all is well.
    error = traitlets.Unicode("").tag(sync=True)


class Dock(ipywidgets.Widget):
    """A model the ``armillary`` JupyterLab extension turns into a side-panel tab.

    While ``docked`` is true the extension shows ``child`` in the ``area`` of the
    JupyterLab shell; closing the tab sets ``docked`` to false.
    """

    _model_name = traitlets.Unicode("DockModel").tag(sync=True)
    _model_module = traitlets.Unicode("armillary").tag(sync=True)
    _model_module_version = traitlets.Unicode(f"^{__version__}").tag(sync=True)

    child = traitlets.Instance(LabelPane).tag(sync=True, **ipywidgets.widget_serialization)
    title = traitlets.Unicode("Armillary").tag(sync=True)
    area = traitlets.Enum(["right", "left", "main"], default_value="right").tag(sync=True)
    docked = traitlets.Bool(True).tag(sync=True)
