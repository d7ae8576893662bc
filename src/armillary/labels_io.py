"""Labels in and out of a label store: imports, and exports with their provenance.

Imports
    :func:`import_label_column` (the catalogue's own labels, provenance ``"catalogue"``),
    :func:`import_astronomical_test_set` (AstronomicAL's ``test_set.json``,
    ``{"<id>": int_label}`` with -1 for unsure, as test-set labels) and
    :func:`import_astronomical_config` (the ``classifiers`` labels of an AstronomicAL
    configuration). Each checks every id and class first and writes one act, so a bad
    file writes nothing and one :meth:`~armillary.store.LabelStore.undo` (in the session
    named) takes a whole import back. Rows already in the state an import would give
    them are left alone, so importing a file twice writes it once.
Exports
    :func:`labels_frame` (pandas), :func:`labels_table` (astropy) and
    :func:`export_labels` (FITS, VOTable, Parquet, CSV, ECSV by the file's suffix): each
    row's current state with its provenance columns, alone or joined back onto the
    catalogue's columns.

The catalogue may be any object with ``ids``, ``index_of``, ``id_at``, ``column``,
``columns``, ``df`` (vaex), ``id_column`` and ``name``, as :class:`armillary.Catalogue`
has.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from armillary.errors import ColumnNotFoundError, LabelFileError

__all__ = [
    "FORMATS",
    "export_labels",
    "import_astronomical_config",
    "import_astronomical_test_set",
    "import_label_column",
    "import_labels",
    "labels_frame",
    "labels_table",
]

#: Export formats by file suffix.
FORMATS = {
    ".fits": "fits",
    ".fit": "fits",
    ".fts": "fits",
    ".fits.gz": "fits",
    ".xml": "votable",
    ".vot": "votable",
    ".votable": "votable",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".ecsv": "ecsv",
}
#: Columns of an export besides the id, in order (``state`` is current()'s ``kind``).
EXPORT_COLUMNS = [
    "label",
    "state",
    "event_kind",
    "provenance",
    "annotator",
    "time",
    "session_id",
    "round",
    "strategy",
    "model_version",
    "score",
    "confidence",
    "note",
    "selection_id",
    "source",
    "event_id",
    "act_id",
]
UNSURE_CODE = -1  # AstronomicAL's code for "unsure" / "Unknown"


# -- imports ---------------------------------------------------------------------------


def import_label_column(
    store: Any,
    catalogue: Any,
    column: str,
    label_map: Mapping[Any, str] | None = None,
    *,
    annotator: str | None = None,
    session_id: str | None = None,
) -> range:
    """Import the catalogue's own label column as labels of provenance ``"catalogue"``.

    Parameters
    ----------
    column : str
        The label column. Missing values (NaN, masked, empty) carry no label.
    label_map : mapping, optional
        Code -> class name (``{0: "Star", 1: "Galaxy"}``). Codes it lacks (such as -1
        for unknown) carry no label. Without it the column must hold class names.

    Returns
    -------
    range
        The event ids written (empty when the store already holds these labels).
    """
    if column not in catalogue.columns:
        msg = (
            f"label column {column!r} is not in catalogue {catalogue.name!r}; "
            f"its columns are {', '.join(catalogue.columns)}"
        )
        raise ColumnNotFoundError(msg)
    values = pd.Series(catalogue.column(column))
    if label_map is not None:
        names = values.map(dict(label_map))
    elif values.dtype.kind in "OSU":
        names = values.where(values.astype(str).str.len() > 0)
    else:
        msg = (
            f"label column {column!r} of {catalogue.name!r} holds {values.dtype} codes; "
            "pass label_map={code: class name}"
        )
        raise LabelFileError(msg)
    keep = names.notna().to_numpy()
    ids = np.asarray(catalogue.ids)[keep]
    labels = names.to_numpy(dtype=object)[keep]
    return _append_changes(
        store,
        ids,
        np.full(len(ids), "label", dtype=object),
        labels,
        rows=np.flatnonzero(keep),  # ids are in row order
        provenance="catalogue",
        annotator=annotator,
        session_id=session_id,
        source=f"{catalogue.name}:{column}",
    )


def import_astronomical_test_set(
    store: Any,
    catalogue: Any,
    path: str | Path,
    label_map: Mapping[int, str],
    *,
    annotator: str | None = None,
    session_id: str | None = None,
) -> range:
    """Import AstronomicAL's ``test_set.json`` as test-set labels.

    Parameters
    ----------
    path : str or Path
        A JSON object ``{"<id>": int_label}``; -1 marks a row unsure.
    label_map : mapping
        Code -> class name, such as the configuration's ``labels_to_strings``.

    Returns
    -------
    range
        The event ids written: ``test_label`` events, and ``unsure`` for -1.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise LabelFileError(
            f"{path} is not an AstronomicAL test set: expected a JSON "
            f"object of id -> label, found {type(data).__name__}"
        )
    ids, rows = _catalogue_ids(catalogue, list(data), path)
    kinds, labels = _kinds_and_labels(list(data.values()), label_map, path, "test_label")
    return _append_changes(
        store, ids, kinds, labels, rows=rows, annotator=annotator, session_id=session_id,
        source=str(path),
    )  # fmt: skip


def import_astronomical_config(
    store: Any,
    catalogue: Any,
    path: str | Path,
    *,
    label_map: Mapping[int, str] | None = None,
    classifiers: Sequence[str] | None = None,
    annotator: str | None = None,
    session_id: str | None = None,
) -> range:
    """Import the labels of an AstronomicAL configuration's ``classifiers``.

    Each classifier lists the ``id`` and ``y`` (label code, -1 unsure) of the rows it
    was trained on, and its query strategy, kept as the events' ``strategy``. A row
    listed by several classifiers is imported once; listed with different labels, the
    import is refused.

    Parameters
    ----------
    label_map : mapping, optional
        Code -> class name; default the configuration's ``labels_to_strings``.
    classifiers : sequence of str, optional
        Keys of the classifiers to import; default all.

    Returns
    -------
    range
        The event ids written (``label``, and ``unsure`` for -1), as one act.
    """
    path = Path(path)
    config = _read_json(path)
    if not isinstance(config, dict) or not isinstance(config.get("classifiers"), dict):
        raise LabelFileError(
            f"{path} is not an AstronomicAL configuration: it has no 'classifiers' object"
        )
    if label_map is None:
        label_map = {
            int(k): v
            for k, v in config.get("labels_to_strings", {}).items()
            if int(k) != UNSURE_CODE
        }
    table = _classifier_rows(config["classifiers"], classifiers, path)
    ids, rows = _catalogue_ids(catalogue, table["id"].tolist(), path)
    kinds, labels = _kinds_and_labels(table["y"].tolist(), label_map, path, "label")
    strategies = sorted(set(table["strategy"].dropna()))
    return _append_changes(
        store,
        ids,
        kinds,
        labels,
        rows=rows,
        annotator=annotator,
        session_id=session_id,
        source=str(path),
        strategy="; ".join(strategies) or None,
    )


def import_labels(store: Any, catalogue: Any, source: str | Path, **kwargs: Any) -> range:
    """Import from a catalogue column name, an AstronomicAL configuration, or an
    AstronomicAL ``test_set.json``, told apart by what ``source`` is."""
    if isinstance(source, str) and source in catalogue.columns:
        return import_label_column(store, catalogue, source, **kwargs)
    data = _read_json(Path(source))
    if isinstance(data, dict) and "classifiers" in data:
        return import_astronomical_config(store, catalogue, source, **kwargs)
    return import_astronomical_test_set(store, catalogue, source, **kwargs)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LabelFileError(f"no label file at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelFileError(f"cannot read labels from {path}: {exc}") from exc


def _classifier_rows(classifiers: dict, keys: Sequence[str] | None, path: Path) -> pd.DataFrame:
    """(id, y, strategy) of the chosen classifiers, each row once; refuse conflicts."""
    chosen = list(classifiers) if keys is None else [str(k) for k in keys]
    parts = []
    for key in chosen:
        entry = classifiers.get(key)
        if isinstance(entry, dict) and "id" not in entry and "y" not in entry:
            continue  # a classifier tab that was never trained: no labels
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("id"), list)
            or not isinstance(entry.get("y"), list)
            or len(entry["id"]) != len(entry["y"])
        ):
            raise LabelFileError(
                f"{path}: classifier {key!r} needs lists 'id' and 'y' of "
                f"one length (classifiers present: {list(classifiers)})"
            )
        query = entry.get("query") or [None]
        parts.append(
            pd.DataFrame(
                {"id": [str(i) for i in entry["id"]], "y": entry["y"], "strategy": query[0]}
            )
        )
    table = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame({"id": [], "y": [], "strategy": []})
    )
    table = table.drop_duplicates(["id", "y"])
    clash = table[table.duplicated("id", keep=False)]
    if len(clash):
        shown = ", ".join(f"{i!r}: {sorted(g['y'])}" for i, g in clash.groupby("id"))
        raise LabelFileError(
            f"{path}: classifiers give different labels to the same row "
            f"({shown}); pass classifiers=[...] to choose"
        )
    return table.reset_index(drop=True)


def _catalogue_ids(catalogue: Any, keys: list, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """JSON ids as the catalogue's ids, and their rows; refuse any the catalogue lacks."""
    if keys and not isinstance(catalogue.id_at(0), str):
        try:
            keys = [int(k) for k in keys]
        except ValueError as exc:
            raise LabelFileError(
                f"{path}: id {exc} is not an integer, but the ids of "
                f"catalogue {catalogue.name!r} are"
            ) from None
    ids = np.array(keys, dtype=object if keys and isinstance(keys[0], str) else np.int64)
    if not len(ids):
        return ids, np.empty(0, np.int64)
    # UnknownIdError naming the ids; nothing written
    return ids, np.asarray(catalogue.index_of(ids), dtype=np.int64)


def _kinds_and_labels(
    codes: list, label_map: Mapping[int, str], path: Path, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Event kinds and class names of AstronomicAL label codes (-1: unsure)."""
    mapping = {int(k): v for k, v in dict(label_map).items()}
    kinds, labels = [], []
    for code in codes:
        if not isinstance(code, int) or (code != UNSURE_CODE and code not in mapping):
            raise LabelFileError(
                f"{path}: label {code!r} is not -1 (unsure) nor a code of label_map {mapping}"
            )
        kinds.append("unsure" if code == UNSURE_CODE else kind)
        labels.append(None if code == UNSURE_CODE else mapping[code])
    return np.array(kinds, dtype=object), np.array(labels, dtype=object)


def _append_changes(
    store: Any,
    ids: np.ndarray,
    kinds: np.ndarray,
    labels: np.ndarray,
    *,
    rows: np.ndarray,
    provenance: str = "human",
    session_id: str | None,
    **fields: Any,
) -> range:
    """Append, as one act, the rows whose current state the import would change, with
    the catalogue row of each id (``rows``)."""
    state = (
        pd.Series(kinds)
        .map({"label": "label", "test_label": "test", "unsure": "unsure"})
        .to_numpy()
    )
    now = store.current(provenance, columns=["id", "kind", "label"])
    change = np.ones(len(ids), dtype=bool)
    if len(now) and len(ids):
        mine = pd.DataFrame({"id": ids, "kind": state, "label": labels})
        same = mine.merge(
            now.astype({"id": mine["id"].dtype}),
            how="left",
            on=["id", "kind", "label"],
            indicator=True,
        )
        change = (same["_merge"] == "left_only").to_numpy()
    return store.append_many(
        kinds[change],
        ids[change],
        labels[change],
        rows=rows[change],
        provenance=provenance,
        session_id=session_id or f"import-{uuid.uuid4().hex}",
        **fields,
    )


# -- exports ---------------------------------------------------------------------------


def labels_frame(
    store: Any,
    catalogue: Any = None,
    *,
    join: bool = False,
    provenance: str | Sequence[str] = "human",
    states: Sequence[str] = ("label", "test", "unsure", "skip"),
    rows: str = "labelled",
) -> pd.DataFrame:
    """The current labels with their provenance, as a pandas DataFrame.

    Parameters
    ----------
    catalogue : Catalogue, optional
        Names the id column (else ``id``), and gives the columns for ``join``.
    join : bool
        Put the catalogue's columns first, one row per label (a label column that
        shares a catalogue column's name gets the prefix ``armillary_``).
    provenance : str or sequence of str
        ``"human"`` (default), ``"catalogue"``, or both: then a row labelled both ways
        appears twice, told apart by the ``provenance`` column.
    states : sequence of str
        Which states to include: ``label``, ``test`` (the test set), ``unsure``,
        ``skip``.
    rows : {'labelled', 'all'}
        With ``join``: only labelled rows, or every catalogue row (those without a
        label have empty label columns).

    Returns
    -------
    pandas.DataFrame
        The id column, then ``label, state, event_kind, provenance, annotator, time
        (UTC), session_id, round, strategy, model_version, score, confidence, note,
        selection_id, source, event_id, act_id``.
    """
    wanted = [provenance] if isinstance(provenance, str) else list(provenance)
    parts = [store.current(p) for p in wanted]
    labels = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    labels = labels[labels["kind"].isin(list(states))].rename(columns={"kind": "state"})
    id_name = getattr(catalogue, "id_column", None) or "id"
    out = labels[["id", *EXPORT_COLUMNS]].rename(columns={"id": id_name})
    out = out.reset_index(drop=True)
    if not join:
        return out
    if catalogue is None:
        raise ValueError("join=True needs the catalogue")
    return _join(out, catalogue, id_name, rows)


def _join(labels: pd.DataFrame, catalogue: Any, id_name: str, rows: str) -> pd.DataFrame:
    """The catalogue's columns of the labelled rows (or all rows), then the labels."""
    if rows not in ("labelled", "all"):
        raise ValueError(f"rows must be 'labelled' or 'all', not {rows!r}")
    names = [c for c in catalogue.columns if c != id_name]
    renamed = {c: f"armillary_{c}" for c in EXPORT_COLUMNS if c in names}
    labels = labels.rename(columns=renamed)
    if rows == "all":
        table = catalogue.df[names].to_pandas_df()
        table.insert(0, id_name, np.asarray(catalogue.ids))
        return table.merge(labels, on=id_name, how="left")
    positions = catalogue.index_of(labels[id_name].to_numpy())
    table = catalogue.df.take(positions)[names].to_pandas_df()
    return pd.concat([labels[[id_name]], table, labels.drop(columns=id_name)], axis=1)


def labels_table(store: Any, catalogue: Any = None, **kwargs: Any) -> Any:
    """:func:`labels_frame` as an astropy Table, ready for FITS and VOTable.

    Empty texts become masked, nullable integers masked, times ISO-8601 UTC strings;
    ``meta`` records the store's catalogue fingerprint and id column.
    """
    from astropy.table import MaskedColumn, Table

    frame = labels_frame(store, catalogue, **kwargs)
    table = Table()
    for name in frame.columns:
        table[name] = _column(frame[name], MaskedColumn)
    meta = store.meta
    table.meta.update(
        {
            "ARMFPRNT": meta.get("catalogue_fingerprint") or "",
            "ARMIDCOL": meta.get("id_column") or "",
            "ARMSCHEM": meta.get("schema_version") or "",
        }
    )
    return table


def _column(values: pd.Series, masked: type) -> Any:
    """One frame column as an astropy column that FITS and VOTable can write."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        text = values.dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
        return masked(text.fillna("").to_numpy(dtype=str), mask=values.isna().to_numpy())
    if isinstance(values.dtype, pd.Int64Dtype):
        return masked(values.fillna(0).to_numpy(dtype=np.int64), mask=values.isna().to_numpy())
    if values.dtype == object:
        missing = values.isna().to_numpy()
        present = values[~missing]
        if len(present) and all(isinstance(v, int | np.integer) for v in present):
            return masked(values.fillna(0).to_numpy(dtype=np.int64), mask=missing)
        text = values.where(~missing, "").astype(str).to_numpy(dtype=str)
        return masked(text, mask=missing) if missing.any() else text
    return values.to_numpy()


def export_labels(
    store: Any,
    catalogue: Any,
    path: str | Path,
    *,
    format: str | None = None,
    overwrite: bool = False,
    **kwargs: Any,
) -> Path:
    """Write the current labels to a file; the format follows the suffix.

    Parameters
    ----------
    path : str or Path
        ``.fits`` (``.fit``, ``.fts``, ``.fits.gz``), ``.xml``/``.vot``/``.votable``,
        ``.parquet``/``.pq``, ``.csv`` or ``.ecsv``.
    format : str, optional
        ``fits``, ``votable``, ``parquet``, ``csv`` or ``ecsv``, whatever the suffix.
    overwrite : bool
        Replace an existing file; else an existing file is an error.
    **kwargs
        As for :func:`labels_frame` (``join``, ``provenance``, ``states``, ``rows``).

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    kind = format or _format_of(path)
    if kind not in set(FORMATS.values()):
        raise LabelFileError(
            f"unknown export format {kind!r}; use one of {sorted(set(FORMATS.values()))}"
        )
    if path.exists() and not overwrite:
        raise LabelFileError(f"{path} exists; pass overwrite=True to replace it")
    try:
        if kind in ("parquet", "csv"):
            frame = labels_frame(store, catalogue, **kwargs)
            if kind == "parquet":
                frame.to_parquet(path, index=False)
            else:
                frame.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S.%f+00:00")
        else:
            table = labels_table(store, catalogue, **kwargs)
            name = {"ecsv": "ascii.ecsv"}.get(kind, kind)
            table.write(path, format=name, overwrite=overwrite)
    except OSError as exc:
        raise LabelFileError(f"cannot write labels to {path}: {exc}") from exc
    return path


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for suffix, kind in sorted(FORMATS.items(), key=lambda item: -len(item[0])):
        if name.endswith(suffix):
            return kind
    raise LabelFileError(
        f"cannot tell the format of {path} from its suffix; use one of "
        f"{', '.join(FORMATS)} or pass format="
    )
