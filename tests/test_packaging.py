"""The installed package: one version everywhere, built JavaScript present, extension installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import armillary

REPO = Path(__file__).resolve().parents[1]


def test_python_and_npm_versions_agree():
    package = json.loads((REPO / "package.json").read_text())
    assert package["version"] == armillary.__version__


def test_pane_javascript_is_built():
    static = Path(armillary.__file__).parent / "static"
    assert (static / "widget.js").stat().st_size > 1000
    assert (static / "widget.css").stat().st_size > 100


def test_lab_extension_is_installed_where_jupyterlab_looks():
    installed = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "armillary"
    meta = json.loads((installed / "package.json").read_text())
    assert meta["name"] == "armillary"
    assert meta["version"] == armillary.__version__
    assert meta["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")


def test_dock_model_asks_for_this_version_of_the_extension():
    from armillary.widget import Dock

    assert Dock._model_module.default_value == "armillary"
    assert Dock._model_module_version.default_value == f"^{armillary.__version__}"
