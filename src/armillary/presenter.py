"""Presenter: fills a :class:`~armillary.widget.LabelPane` from a Session and answers it.

The path of one label: the view sends an ``act`` message; the presenter asks the session
to commit it to the store, and only after the commit raises ``acked[client]`` to the
message's ``seq``, then shows the next candidate. An act that fails is answered with a
``nack`` and an error line; it is never acknowledged.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from armillary import plots
from armillary._plain import plain_value
from armillary.errors import ArmillaryError
from armillary.widget import LabelPane

if TYPE_CHECKING:
    from armillary.session import Candidate, Session

#: Largest image sent to the pane; bigger files are shown as "image too large".
MAX_IMAGE_BYTES = 2_000_000
RECENT_LENGTH = 8


def format_value(value: Any) -> str | None:
    """A value for people: ``None`` when missing (NaN, masked, empty); 6 significant digits."""
    value = plain_value(value)
    if isinstance(value, float | np.floating):
        # Six significant digits: RA 277.835, DEC -7.56772, r 21.0029 (exponent form
        # from 1e6 and below 1e-4).
        return f"{value:.6g}"
    return None if value is None else str(value)


def read_image(path: Path | None) -> bytes:
    """The bytes of an image file, or empty when there is none or it cannot be read."""
    if path is None:
        return b""
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            return b""
        return path.read_bytes()
    except OSError:
        return b""


class PanePresenter:
    """Keeps one pane in step with one session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pane = LabelPane(
            title=session.catalogue.name,
            classes=[
                {"name": name, "colour": colour, "key": str(i + 1) if i < 9 else ""}
                for i, (name, colour) in enumerate(
                    zip(session.classes, session.colours, strict=True)
                )
            ],
        )
        # Where each candidate sits: maps of every row, binned once.
        self._maps = plots.SessionMaps(session)
        self._maps_version = -1
        self.pane.maps = [m.wire() for m in self._maps.maps]
        # Re-entrant: a listener may run in this thread (``session.refresh()``).
        self._lock = threading.RLock()
        #: The trainer's last failure; it stays on show until a model lands.
        self._training_error = ""
        self._done: OrderedDict[tuple[str, int], str | None] = OrderedDict()
        self.pane.on_msg(self._on_msg)
        session.on_change(self._on_session_change)
        self.show(session.next())

    def show(self, candidate: Candidate | None) -> None:
        """Put a candidate (or the end of the pool) on the pane."""
        session = self.session
        if candidate is None:
            shown: dict[str, Any] = {}
            image = b""
        else:
            shown = {
                "id": candidate.id,
                "score": candidate.score,
                "model_version": candidate.model_version,
                "values": [
                    {"name": k, "value": format_value(v)} for k, v in candidate.values.items()
                ],
                "has_images": bool(session.image_columns),
                "map_positions": self._maps.position(candidate.position),
                "cutouts": [{"name": k, "url": v} for k, v in candidate.cutouts.items()],
                "image_name": next(
                    (p.name for p in candidate.images.values() if p is not None), None
                ),
            }
            image = next((read_image(p) for p in candidate.images.values() if p), b"")
        labelled = None
        if self._maps.maps and session.labels_version() != self._maps_version:
            self._maps_version = session.labels_version()
            labelled = self._maps.labelled()
        with self.pane.hold_sync():
            if labelled is not None:
                self.pane.map_labels = labelled
            self.pane.candidate = shown
            self.pane.image = image
            self.pane.counts = session.counts
            self.pane.status = session.status_text()

    def _on_session_change(self, event: str) -> None:
        # Under the lock: an act being answered must not wipe a failure reported meanwhile.
        with self._lock:
            if event == "error":
                self._training_error = getattr(self.session, "_last_error", "training failed")
                self.pane.error = self._training_error
                return
            if self._training_error and self.pane.error == self._training_error:
                self.pane.error = ""
            self._training_error = ""
            self.pane.status = self.session.status_text()

    def _on_msg(self, _widget: Any, content: dict, _buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "act":
            return
        client, seq = str(content.get("client", "")), int(content.get("seq", 0))
        with self._lock:
            key = (client, seq)
            if key in self._done:  # a re-send of an act already handled
                self._answer(client, seq, self._done[key])
                return
            error = self._apply(content)
            self._done[key] = error
            while len(self._done) > 1000:
                self._done.popitem(last=False)
            self._answer(client, seq, error)

    def _apply(self, content: dict) -> str | None:
        """Commit one act; returns an error message, or ``None`` once it is committed."""
        session = self.session
        action, row_id = content.get("action"), content.get("id")
        try:
            if action == "label":
                session.label(row_id, content.get("label"))
            elif action == "unsure":
                session.unsure(row_id)
            elif action == "skip":
                session.skip(row_id)
            elif action == "undo":
                event = session.undo()
                if event is None:
                    return "Nothing to undo in this session."
                self._after_undo(event, content)
                return None
            else:
                return f"unknown action {action!r}"
        except (ArmillaryError, ValueError, KeyError) as err:
            return str(err)
        self._remember(content)
        self.show(session.next())
        return None

    def _after_undo(self, event: Any, content: dict) -> None:
        """Show the source whose act was reversed, so it can be labelled again."""
        session = self.session
        self._remember({**content, "id": event.row_id, "label": f"{event.kind} undone"})
        position = session.catalogue.position(event.row_id)
        self.show(session.candidate(position, None, session.model_version))

    def _remember(self, content: dict) -> None:
        act = {k: content.get(k) for k in ("client", "seq", "action", "id", "label")}
        self.pane.recent = [act, *self.pane.recent][:RECENT_LENGTH]

    def _answer(self, client: str, seq: int, error: str | None) -> None:
        if error is None:
            with self.pane.hold_sync():
                self.pane.error = self._training_error  # an act's own error is over
                self.pane.acked = {
                    **self.pane.acked,
                    client: max(seq, self.pane.acked.get(client, 0)),
                }
        else:
            self.pane.error = error
            self.pane.send({"type": "nack", "client": client, "seq": seq, "error": error})
