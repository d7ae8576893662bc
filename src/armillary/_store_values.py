"""Checking the fields of label events, and turning stored rows into frames.

Private helpers of :mod:`armillary.store`: no SQL here, so that another backend can reuse
them unchanged.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from numbers import Integral, Real

import numpy as np
import pandas as pd

from armillary._store_schema import ACTS, EVENT_COLUMNS, LABEL_KINDS, PROVENANCES, STATE_OF
from armillary.errors import InvalidEventError, UnknownClassEventError

#: Columns of :meth:`LabelStore.current` (the first ten are the skeleton's, in its order).
CURRENT_COLUMNS = [
    "id",
    "kind",
    "label",
    "annotator",
    "time",
    "session_id",
    "model_version",
    "score",
    "note",
    "event_id",
    "event_kind",
    "provenance",
    "round",
    "strategy",
    "confidence",
    "selection_id",
    "source",
    "act_id",
]
#: Columns of :meth:`LabelStore.events`; here ``kind`` is the event's own kind.
EVENTS_COLUMNS = [
    "id",
    "kind",
    "label",
    "annotator",
    "time",
    "session_id",
    "model_version",
    "score",
    "note",
    "event_id",
    "target_event",
    "act_id",
    "provenance",
    "round",
    "strategy",
    "confidence",
    "selection_id",
    "source",
    "catalogue_row",
]


def default_annotator() -> str:
    """Return the annotator name used when none is given.

    Returns
    -------
    str
        ``$JUPYTERHUB_USER`` when set (in JupyterHub containers the login name is
        often ``jovyan`` for everyone), else the login name from :func:`getpass.getuser`.
    """
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def now() -> str:
    """Return the current UTC time as ISO-8601 with microseconds and ``+00:00``."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


# -- checking ---------------------------------------------------------------------------


def check_kind(kind: object) -> str:
    """Return ``kind`` if an annotator may append it, else raise."""
    if kind not in ACTS:
        hint = f"; call LabelStore.{kind}() instead" if kind in ("undo", "redo") else ""
        msg = f"unknown event kind {kind!r}; valid kinds are {list(ACTS)}{hint}"
        raise InvalidEventError(msg)
    return str(kind)


def check_label(kind: str, label: object, classes: Collection[str] | None) -> str | None:
    """Check a label against its kind and the store's classes."""
    if (label is None) == (kind in LABEL_KINDS):
        msg = (
            f"a {kind!r} event needs a class name as label"
            if label is None
            else f"a {kind!r} event takes no label (got {label!r})"
        )
        raise InvalidEventError(msg)
    if label is None:
        return None
    if not isinstance(label, str) or not label:
        msg = f"label must be a non-empty string, not {label!r}"
        raise InvalidEventError(msg)
    if classes is not None and label not in classes:
        msg = f"unknown class {label!r}; this label store's classes are {', '.join(classes)}"
        raise UnknownClassEventError(msg)
    return label


def check_name(what: str, value: object) -> str:
    """Return a non-empty string name, the default annotator for a missing one."""
    if value is None and what == "annotator":
        value = default_annotator()
    return _field(what, value, _TEXT, optional=False)


# What a field may hold: a test, the conversion to the stored value, and its name in
# messages.
_TEXT = (lambda v: isinstance(v, str) and bool(v), str, "a non-empty string")
_INT = (lambda v: isinstance(v, Integral) and not isinstance(v, bool), int, "an int")
_REAL = (lambda v: isinstance(v, Real) and not isinstance(v, bool), float, "a number")
# NaN fails both comparisons, so it is refused here (and allowed as a plain number).
_UNIT = (lambda v: _REAL[0](v) and 0.0 <= float(v) <= 1.0, float, "a number from 0 to 1")


def _field(what: str, value: object, kind: tuple, *, optional: bool = True) -> object:
    """Return ``value`` converted to its stored type (None stays None when optional);
    raise :class:`InvalidEventError` naming ``what`` when it is not of ``kind``."""
    test, convert, expected = kind
    if value is None and optional:
        return None
    if test(value):
        return convert(value)
    msg = f"{what} must be {expected}{' or None' if optional else ''}, not {value!r}"
    raise InvalidEventError(msg)


def provenance_values(
    kinds: Collection[str],
    *,
    annotator: object,
    session_id: object,
    provenance: object = "human",
    **fields: object,
) -> dict[str, object]:
    """Check the fields shared by the events of one act; return the columns to insert.

    ``fields`` are ``round, strategy, model_version, score, confidence, note,
    selection_id, source``.
    """
    if provenance not in PROVENANCES:
        msg = f"provenance must be one of {list(PROVENANCES)}, not {provenance!r}"
        raise InvalidEventError(msg)
    if provenance == "catalogue" and not set(kinds) <= {"label", "relabel"}:
        msg = "catalogue labels are 'label' events; other kinds are a person's acts"
        raise InvalidEventError(msg)
    note, selection = fields.get("note"), fields.get("selection_id")
    if "note" in kinds and note is None:
        raise InvalidEventError("a 'note' event needs its text as note='...'")
    if "bulk_label" in kinds and selection is None:
        raise InvalidEventError(
            "a 'bulk_label' event needs selection_id='...' naming the selection it labels"
        )
    return {
        "provenance": provenance,
        "annotator": check_name("annotator", annotator),
        "session_id": check_name("session_id", session_id),
        **{
            name: _field(name, fields.get(name), kind)
            for name, kind in (
                ("round", _INT),
                ("strategy", _TEXT),
                ("model_version", _INT),
                ("score", _REAL),
                ("confidence", _UNIT),
                ("note", _TEXT),
                ("selection_id", _TEXT),
                ("source", _TEXT),
            )
        },
    }


def id_text(row_id: object) -> tuple[str, str]:
    """Return one id as stored text and its type name (``'int'`` or ``'str'``)."""
    if isinstance(row_id, str):
        return row_id, "str"
    if isinstance(row_id, Integral) and not isinstance(row_id, bool):
        return str(int(row_id)), "int"
    msg = f"row id {row_id!r} must be an int or a str, not {type(row_id).__name__}"
    raise InvalidEventError(msg)


def ids_text(row_ids: Sequence[object] | np.ndarray) -> tuple[list[str], str]:
    """Return many ids as stored texts and their one type name; refuse mixed types."""
    array = np.asarray(row_ids) if not isinstance(row_ids, list) else None
    if array is not None and array.dtype.kind in "iu":
        return array.astype(str).tolist(), "int"
    if array is not None and array.dtype.kind == "U":
        return array.tolist(), "str"
    values = row_ids.tolist() if array is not None else list(row_ids)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # a C loop, 1M: 20 ms
        return values, "str"
    pairs = [id_text(v) for v in values]
    types = {t for _, t in pairs}
    if len(types) > 1:
        msg = "row ids must be all ints or all strs, not a mix"
        raise InvalidEventError(msg)
    return [text for text, _ in pairs], types.pop() if types else "str"


def check_row(row: object) -> int | None:
    """Return a catalogue row position as an int (None stays None), else raise."""
    if row is None:
        return None
    if _is_row(row):
        return int(row)
    msg = f"row must be a catalogue row position (an int >= 0) or None, not {row!r}"
    raise InvalidEventError(msg)


def check_rows(rows: object, n: int) -> np.ndarray | None:
    """Return catalogue row positions, one per row id, as int64 (None stays None)."""
    if rows is None:
        return None
    array = np.asarray(rows, dtype=object) if isinstance(rows, (list, tuple)) else np.asarray(rows)
    if array.shape != (n,):
        msg = f"rows must give one catalogue row per row id ({n}), not shape {array.shape}"
        raise InvalidEventError(msg)
    if array.dtype.kind in "iu":
        bad = np.flatnonzero((array < 0) | (array > _MAX_ROW))
    else:  # objects (Python ints, or anything), floats, bools: one by one
        bad = [k for k, v in enumerate(array.tolist()) if not _is_row(v)]
    if len(bad):
        k = int(bad[0])
        value = array[k].item() if hasattr(array[k], "item") else array[k]
        msg = (
            f"rows must be catalogue row positions (ints >= 0), one per row id; "
            f"rows[{k}] is {value!r}"
        )
        raise InvalidEventError(msg)
    return array.astype(np.int64)


def _is_row(value: object) -> bool:
    """Whether a value is a catalogue row position SQLite can hold."""
    return _INT[0](value) and 0 <= value <= _MAX_ROW


_MAX_ROW = 2**63 - 1  # SQLite's largest integer


def per_row(value: object, n: int, what: str) -> np.ndarray:
    """A scalar repeated n times, or a sequence of length n, as an object array."""
    if value is None or isinstance(value, str):
        return np.full(n, value, dtype=object)
    array = np.asarray(value, dtype=object)
    if array.shape != (n,):
        msg = f"{what} must be one value or one per row ({n}), not shape {array.shape}"
        raise InvalidEventError(msg)
    return array


def check_labels(kinds: np.ndarray, labels: np.ndarray, classes: Collection[str] | None) -> None:
    """Vectorised :func:`check_label` for an act of many events."""
    for kind in pd.unique(kinds):
        check_kind(kind)
    needs = np.isin(kinds, LABEL_KINDS)
    missing = pd.isna(labels)
    if (needs & missing).any() or (~needs & ~missing).any():
        k = int(np.flatnonzero(needs == missing)[0])
        check_label(str(kinds[k]), None if missing[k] else labels[k], classes)
    for label in pd.unique(labels[needs]):
        check_label("label", label, classes)


# -- reading back -----------------------------------------------------------------------


def fold(rows: Sequence[tuple]) -> tuple[dict[int, bool], tuple | None]:
    """Replay one row's events (``EVENT_COLUMNS`` order, oldest first).

    Returns
    -------
    undone : dict of int to bool
        For each act that an undo or redo aimed at, whether it is undone now.
    state : tuple or None
        The row's latest state-setting act that is not undone (per provenance, the
        caller filters), or None.
    """
    kind_at, target_at = EVENT_COLUMNS.index("kind"), EVENT_COLUMNS.index("target_event")
    undone: dict[int, bool] = {}
    for row in rows:
        if row[kind_at] in ("undo", "redo"):
            undone[row[target_at]] = row[kind_at] == "undo"
    live = [r for r in rows if r[kind_at] in STATE_OF and not undone.get(r[0], False)]
    return undone, (live[-1] if live else None)


def frame(rows: list[tuple], columns: list[str], *, state: bool = False) -> pd.DataFrame:
    """Build a typed frame from rows selected in ``EVENT_COLUMNS`` order.

    With ``state``, ``kind`` is the state the event put its row in and ``event_kind``
    the event's own kind.
    """
    raw = zip(*rows, strict=True) if rows else [()] * len(EVENT_COLUMNS)
    cols = dict(zip(EVENT_COLUMNS, raw, strict=True))

    def text(name: str) -> np.ndarray:
        return np.array(cols[name], dtype=object)

    def ints(name: str) -> pd.arrays.IntegerArray:
        return pd.array(cols[name], dtype="Int64")

    kinds = text("kind")
    out = {
        "id": ids_back(cols["row_id"], cols["row_id_type"]),
        "kind": np.array([STATE_OF[k] for k in kinds], dtype=object) if state else kinds,
        "event_kind": kinds,
        "time": pd.to_datetime(pd.Series(cols["time"], dtype=object), utc=True, format="ISO8601"),
        "event_id": np.array(cols["event_id"], dtype=np.int64),
        "act_id": np.array(cols["act_id"], dtype=np.int64),
        "score": np.array(cols["score"], dtype=np.float64),
        "confidence": np.array(cols["confidence"], dtype=np.float64),
        **{
            name: ints(name) for name in ("model_version", "round", "target_event", "catalogue_row")
        },
    }
    return pd.DataFrame({name: out[name] if name in out else text(name) for name in columns})


def ids_back(text: Sequence[str], types: Sequence[str]) -> np.ndarray:
    """Give ids back with their type: int64 when all are ints that fit, else objects."""
    kinds = set(types)
    if kinds == {"int"}:
        try:
            return np.fromiter(map(int, text), dtype=np.int64, count=len(text))
        except OverflowError:  # ids beyond int64 stay Python ints
            return np.array([int(t) for t in text], dtype=object)
    if kinds <= {"str"}:
        return np.array(text, dtype=object)
    return np.array(
        [int(t) if k == "int" else t for t, k in zip(text, types, strict=True)], dtype=object
    )
