"""The session's views and files: its pane and dock, its plot, and its run configuration.

A mixin of :class:`armillary.Session`, kept apart so that ``session.py`` holds the
labelling loop itself. Each method imports what it presents (the widget, bokeh, the
configuration reader) only when called: nothing below the session imports them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class ViewsMixin:
    """Pane, dock, plot and run configuration of a :class:`~armillary.Session`."""

    _pane: Any
    _dock: Any
    catalogue: Any

    def save_config(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write this session's set-up to a JSON run configuration; returns its path.

        It records the catalogue (path, id column, derived columns, content identity),
        the label store, and everything the session was made with, so that
        :meth:`from_config` makes the same session again: same labels, same random state,
        same candidates. See :mod:`armillary.run_config`.
        """
        from armillary.run_config import write_config

        return write_config(self, path, overwrite=overwrite)

    @classmethod
    def from_config(cls, path: str | os.PathLike, **overrides: Any) -> Any:
        """Make the session a run configuration (:meth:`save_config`) describes.

        Keyword arguments override what it records, e.g. ``catalogue=`` (a moved file),
        ``store=`` or ``learner=``. Raises :class:`~armillary.run_config.ConfigError`
        naming the file and what is wrong: not a configuration, written by a newer
        Armillary, its catalogue or store missing, a catalogue with other contents.
        """
        from armillary.run_config import load_session

        return load_session(cls, path, overrides)

    def plot(self, x: str | None = None, y: str | None = None, **kwargs: Any) -> Any:
        """The whole catalogue on ``x`` against ``y`` (default the first of :attr:`axes`),
        your labels and the next candidate on it: a bokeh figure that a notebook shows
        inline (see :func:`armillary.plots.figure`)."""
        from armillary.plots import figure

        return figure(self, x, y, **kwargs)

    def pane(self) -> Any:
        """The labelling pane (a widget); the same pane on every call."""
        if self._pane is None:
            from armillary.presenter import PanePresenter

            self._pane = PanePresenter(self).pane
        return self._pane

    def dock(self, area: str = "right") -> None:
        """Show the pane in JupyterLab's side panel (again, if it was closed)."""
        from armillary.widget import Dock

        pane = self.pane()
        if self._dock is None:
            self._dock = Dock(child=pane, title=self.catalogue.name, area=area)
        elif self._dock.docked:
            self._dock.send({"type": "open"})
        else:
            self._dock.docked = True

    def undock(self) -> None:
        """Close the side-panel tab; the session and its labels stay."""
        if self._dock is not None:
            self._dock.docked = False
