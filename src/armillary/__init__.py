"""Armillary: active-learning labelling for astronomy catalogues, docked in JupyterLab."""

from __future__ import annotations

__version__ = "0.1.0"

# The version above comes first: the modules below (and the widget) read it.
from armillary import cutouts, datasets
from armillary.astronomical import session_from_astronomical
from armillary.catalogue import Catalogue, open_catalogue
from armillary.derive import register_combination
from armillary.errors import ArmillaryError
from armillary.labels_io import export_labels, import_labels
from armillary.learners import Learner
from armillary.pool import Pool
from armillary.session import Candidate, Session
from armillary.store import LabelStore

__all__ = [
    "ArmillaryError",
    "Candidate",
    "Catalogue",
    "Dock",
    "LabelPane",
    "LabelStore",
    "Learner",
    "Pool",
    "Session",
    "__version__",
    "cutouts",
    "datasets",
    "export_labels",
    "import_labels",
    "open_catalogue",
    "register_combination",
    "session_from_astronomical",
]


def __getattr__(name: str):
    # The widget pulls in ipywidgets and anywidget; import it only when asked for.
    if name in ("LabelPane", "Dock"):
        from armillary import widget

        return getattr(widget, name)
    raise AttributeError(f"module 'armillary' has no attribute {name!r}")


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the prebuilt extension (``jupyter labextension develop``)."""
    return [{"src": "labextension", "dest": "armillary"}]
