"""File readers for every format but FITS (see :mod:`armillary.formats` for the table).

Each ``open_<format>(path, hdu)`` returns a reader with ``format``, ``nrows`` (``None``
when only a pass over the file can tell), ``columns``, ``meta``, ``chunks(names,
chunk_rows)`` and ``close()``.
"""

from __future__ import annotations

import numpy as np

from armillary._fits import open_fits
from armillary.errors import CatalogueError
from armillary.formats import (
    STR,
    ArrowReader,
    Column,
    NumpyReader,
    Strings,
    arrow_columns,
    numpy_columns,
    table_reader,
    warn_skipped,
)

__all__ = ["READERS"]

_CSV_BLOCK = 1 << 24  # bytes pyarrow parses at a time (and infers types from, first)


def _unreadable(path, kind, exc):
    return CatalogueError(
        f"cannot read {path} as {kind} ({type(exc).__name__}: {exc}); is "
        "it a complete file of that format?"
    )


# --------------------------------------------------------------------------- HDF5


def open_hdf5(path, hdu=None):
    """HDF5 in vaex's layout (``/table/columns``) or astropy's (a compound dataset)."""
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise _unreadable(path, "HDF5", exc) from exc
    try:
        if hdu is None and isinstance(h5.get("table/columns"), h5py.Group):
            return _vaex_hdf5(path, h5)
        return _astropy_hdf5(path, h5, hdu)
    except Exception:
        h5.close()
        raise


def _string(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _vaex_hdf5(path, h5):
    group = h5["table/columns"]
    order = _string(group.attrs.get("column_order", "")).split(",")
    names = [n for n in order if n in group] + sorted(set(group) - set(order))
    columns, nrows, skipped = {}, None, {}
    for name in names:
        col = group[name]
        kind = _string(col.attrs.get("type", ""))
        data = col["indices/data"] if kind == "dictionary_encoded" else col.get("data")
        if data is None or (kind and kind != "dictionary_encoded"):
            skipped[name] = kind or "no data"
            continue
        length = (
            len(col["indices"]) - 1
            if _string(data.attrs.get("dtype", "")) == "str"
            else data.shape[0]
        )
        nrows = length if nrows is None else min(nrows, length)
        unit = _string(col.attrs["unit"]) if "unit" in col.attrs else None
        description = _string(col.attrs["description"]) if "description" in col.attrs else None
        if kind == "dictionary_encoded" or _string(data.attrs.get("dtype", "")) == "str":
            columns[name] = Column(STR, False, unit, description, name)
            continue
        new, why = numpy_columns(name, data.dtype, data.shape[1:], "mask" in col, unit, description)
        columns.update(new)
        if why:
            skipped[name] = why
    warn_skipped(path, skipped)

    def fetch(start, stop, sources):
        return {name: _vaex_column(group[name], start, stop) for name in sources}

    return NumpyReader(fetch, nrows or 0, columns, "hdf5", {"layout": "vaex"}, h5.close)


def _vaex_strings(col, start, stop):
    offsets = col["indices"][start : stop + 1].astype(np.int64)
    data = col["data"][offsets[0] : offsets[-1]] if offsets[-1] > offsets[0] else b""
    return Strings(np.diff(offsets), np.frombuffer(np.asarray(data).tobytes(), np.uint8))


def _vaex_column(col, start, stop):
    """Rows [start, stop) of one vaex-layout column group, as numpy (or Strings)."""
    if _string(col.attrs.get("type", "")) == "dictionary_encoded":
        codes = col["indices/data"][start:stop]
        labels = _vaex_strings(col["dictionary"], 0, len(col["dictionary/indices"]) - 1)
        return Strings.from_arrow(labels.to_arrow().take(codes))
    if _string(col["data"].attrs.get("dtype", "")) == "str":
        return _vaex_strings(col, start, stop)
    data = col["data"][start:stop]
    if "mask" in col:
        return np.ma.MaskedArray(data, mask=col["mask"][start:stop])
    return data


def _compound_datasets(h5):
    import h5py

    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.dtype.names and obj.ndim == 1:
            found.append(name)

    h5.visititems(visit)
    return found


def _astropy_hdf5(path, h5, hdu):
    tables = _compound_datasets(h5)
    if hdu is None and not tables:
        raise CatalogueError(
            f"{path} holds no table: neither vaex's layout (/table/columns) "
            "nor astropy's (a compound dataset)"
        )
    name = tables[0] if hdu is None else str(hdu).strip("/")
    if name not in tables:
        raise CatalogueError(
            f"{path} has no table at {hdu!r}; its tables are: {', '.join(tables) or 'none'}"
        )
    dataset = h5[name]
    units, descriptions = _astropy_meta(h5, name)
    fields = dataset.dtype
    columns, skipped = {}, {}
    for field in fields.names:
        if field.endswith(".mask") and field[:-5] in fields.names:
            continue
        masked = f"{field}.mask" in fields.names
        new, why = numpy_columns(
            field,
            fields[field].base,
            fields[field].shape,
            masked,
            units.get(field),
            descriptions.get(field),
        )
        columns.update(new)
        if why:
            skipped[field] = why
    warn_skipped(path, skipped)

    def fetch(start, stop, sources):
        rows = dataset[start:stop]
        return {
            s: np.ma.MaskedArray(rows[s], mask=rows[f"{s}.mask"])
            if f"{s}.mask" in fields.names
            else rows[s]
            for s in sources
        }

    return NumpyReader(
        fetch, dataset.shape[0], columns, "hdf5", {"layout": "astropy", "hdu": name}, h5.close
    )


def _astropy_meta(h5, name):
    """Units and descriptions from astropy's serialised metadata, if it wrote any."""
    meta = h5.get(f"{name}.__table_column_meta__")
    if meta is None:
        return {}, {}
    from astropy.table import meta as table_meta

    try:
        header = table_meta.get_header_from_yaml(_string(line) for line in meta[()])
    except Exception:  # unreadable metadata loses units, not data
        return {}, {}
    columns = header.get("datatype", [])
    return (
        {c["name"]: str(c["unit"]) for c in columns if c.get("unit")},
        {c["name"]: str(c["description"]) for c in columns if c.get("description")},
    )


# --------------------------------------------------------------------------- Arrow


def open_parquet(path, hdu=None):
    """A Parquet file, read in record batches of the columns asked for."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError
        raise _unreadable(path, "Parquet", exc) from exc
    columns = arrow_columns(parquet.schema_arrow, path)
    metadata = parquet.metadata
    for column in columns.values():
        if column.masked is None:
            column.masked = _parquet_has_nulls(metadata, column.source)

    def batches(sources, chunk_rows):
        yield from parquet.iter_batches(batch_size=chunk_rows, columns=sources)

    return ArrowReader(batches, metadata.num_rows, columns, "parquet", close=parquet.close)


def _parquet_has_nulls(metadata, name):
    """Whether column ``name`` has nulls, from the row groups' statistics; None: unknown."""
    total = 0
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            if chunk.path_in_schema != name:
                continue
            stats = chunk.statistics
            if stats is None or not stats.has_null_count:
                return None
            total += stats.null_count
    return total > 0


def open_arrow(path, hdu=None):
    """An Arrow IPC file (Feather v2) or stream, read one record batch at a time."""
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as source:  # only the footer's pages are touched
            reader = pa.ipc.open_file(source)
            schema, count = reader.schema, reader.num_record_batches
            nrows = sum(reader.get_batch(i).num_rows for i in range(count))
        stream = False
    except pa.ArrowInvalid:
        try:
            with pa.OSFile(str(path)) as source:
                schema, nrows, stream = pa.ipc.open_stream(source).schema, None, True
        except Exception as exc:
            raise _unreadable(path, "an Arrow IPC file or stream (Feather v2)", exc) from exc

    def batches(sources, chunk_rows):
        with pa.OSFile(str(path)) as source:
            if stream:
                for batch in pa.ipc.open_stream(source):
                    yield batch.select(sources)
            else:
                reader = pa.ipc.open_file(source)
                for i in range(reader.num_record_batches):
                    yield reader.get_batch(i).select(sources)

    return ArrowReader(batches, nrows, arrow_columns(schema, path), "arrow")


# --------------------------------------------------------------------------- text


def open_csv(path, hdu=None):
    """A CSV (or tab-separated) file, streamed by pyarrow; column types settled in a pass."""
    delimiter = "\t" if ".tsv" in path.name.lower() else ","
    import pyarrow as pa

    try:
        with _csv_stream(path, delimiter, 0, None, {}) as stream:
            names = stream.schema.names
    except (pa.ArrowInvalid, OSError) as exc:
        raise _unreadable(path, "CSV", exc) from exc
    return _text_reader(path, "csv", delimiter, 1, names, {})


def open_ecsv(path, hdu=None):
    """An ECSV file: types and units from its YAML header, values streamed by pyarrow."""
    from astropy.table import meta as table_meta

    header_lines, skip = [], 0
    with _open_text(path) as text:
        for line in text:
            if not line.startswith("#"):
                break
            header_lines.append(line[2:].rstrip("\n") if line.startswith("# ") else "")
            skip += 1
    if not header_lines or not header_lines[0].startswith("%ECSV"):
        raise CatalogueError(f"{path} does not start with '# %ECSV': not an ECSV file")
    try:
        header = table_meta.get_header_from_yaml(header_lines)
    except Exception as exc:
        raise _unreadable(path, "ECSV", exc) from exc
    import pyarrow as pa

    spec = header["datatype"]
    types = {
        c["name"]: pa.type_for_alias(_ECSV_TYPES[c["datatype"]])
        for c in spec
        if "subtype" not in c and c["datatype"] in _ECSV_TYPES
    }
    reader = _text_reader(
        path, "ecsv", header.get("delimiter", " "), skip + 1, [c["name"] for c in spec], types
    )
    vectors = {
        c["name"]: f"vector ({c['subtype']}) as JSON text"
        for c in spec
        if "subtype" in c and c["name"] in reader.columns
    }
    for name in vectors:
        del reader.columns[name]
    warn_skipped(path, vectors)
    for c in spec:
        if c["name"] in reader.columns:
            reader.columns[c["name"]].unit = str(c["unit"]) if c.get("unit") else None
            reader.columns[c["name"]].description = c.get("description")
    return reader


_ECSV_TYPES = {
    "bool": "bool",
    "string": "string",
    "float16": "float32",
    **{
        t: t
        for t in (
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
            "float32",
            "float64",
        )
    },
    "float128": "float64",
}


def _open_text(path):
    import gzip

    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _text_reader(path, kind, delimiter, skip_rows, names, types):
    """Stream a delimited file; widen column types (int -> float -> string) as needed."""
    import pyarrow as pa

    for _ in range(2 * len(names) + 1):
        try:
            schema, nrows = _text_pass(path, delimiter, skip_rows, names, types)
            break
        except pa.ArrowInvalid as exc:
            types = _widen(exc, types, names)
            if types is None:
                raise _unreadable(path, kind.upper(), exc) from exc
    else:  # pragma: no cover - each retry widens one column for good
        raise CatalogueError(f"{path}: could not settle the types of its columns")
    fixed = {field.name: field.type for field in schema}

    def batches(sources, chunk_rows):
        with _csv_stream(path, delimiter, skip_rows, names, fixed, sources) as stream:
            yield from stream

    columns = arrow_columns(pa.schema([f.with_type(_text_type(f.type)) for f in schema]), path)
    return ArrowReader(_casting(batches, columns), nrows, columns, kind)


def _text_type(type_):
    """Non-numeric, non-boolean types of a text file (times, dates) are kept as strings."""
    import pyarrow as pa

    if (
        pa.types.is_integer(type_)
        or pa.types.is_floating(type_)
        or pa.types.is_boolean(type_)
        or pa.types.is_null(type_)
    ):
        return pa.float64() if pa.types.is_null(type_) else type_
    return pa.large_string()


def _casting(batches, columns):
    def cast(sources, chunk_rows):
        for batch in batches(sources, chunk_rows):
            arrays = [batch.column(s).cast(_text_type(batch.schema.field(s).type)) for s in sources]
            yield type(batch).from_arrays(arrays, names=sources)

    return cast


def _csv_stream(path, delimiter, skip_rows, names, types, include=None):
    import pyarrow.csv as csv

    return csv.open_csv(
        str(path),
        read_options=csv.ReadOptions(
            skip_rows=skip_rows, column_names=names, block_size=_CSV_BLOCK
        ),
        parse_options=csv.ParseOptions(delimiter=delimiter),
        convert_options=csv.ConvertOptions(
            column_types=types, include_columns=include, strings_can_be_null=False
        ),
    )


def _text_pass(path, delimiter, skip_rows, names, types):
    """Read the whole file once: its schema (types as they settle) and its row count."""
    nrows = 0
    with _csv_stream(path, delimiter, skip_rows, names, types) as stream:
        schema = stream.schema
        for batch in stream:
            nrows += batch.num_rows
    return schema, nrows


def _widen(exc, types, names):
    """After a conversion error in column #k, widen its type; None if that is no help."""
    import re

    import pyarrow as pa

    match = re.search(r"In CSV column #(\d+): CSV conversion error to (\w+)", str(exc))
    if not match:
        return None
    k, failed = int(match.group(1)), match.group(2)
    wider = pa.float64() if failed.startswith(("int", "uint")) else pa.large_string()
    if types.get(names[k]) == wider:
        return None
    return {**types, names[k]: wider}


# --------------------------------------------------------------------------- VOTable


def open_votable(path, hdu=None):
    """A VOTable: one TABLE (``hdu=`` its index or ID/name; the first by default), whole."""
    from astropy.io import votable

    try:
        with np.errstate(all="ignore"):
            document = votable.parse(str(path), verify="ignore")
        tables = list(document.iter_tables())
    except Exception as exc:  # astropy raises ValueError, VOTableSpecError, ...
        raise _unreadable(path, "a VOTable", exc) from exc
    if not tables:
        raise CatalogueError(f"{path} holds no TABLE element")
    labels = [t.ID or t.name for t in tables]
    if hdu is None:
        chosen = 0
    elif isinstance(hdu, int) and 0 <= hdu < len(tables):
        chosen = hdu
    elif hdu in labels:
        chosen = labels.index(hdu)
    else:
        raise CatalogueError(
            f"{path} has no table {hdu!r}; its tables are "
            f"{', '.join(f'{k} ({label})' for k, label in enumerate(labels))}"
        )
    table = tables[chosen].to_table(use_names_over_ids=True)
    reader = table_reader(table, "votable", str(path))
    reader.meta = {"hdu": chosen}
    return reader


READERS = {
    "fits": open_fits,
    "hdf5": open_hdf5,
    "parquet": open_parquet,
    "arrow": open_arrow,
    "csv": open_csv,
    "ecsv": open_ecsv,
    "votable": open_votable,
}
"""Format name -> ``open(path, hdu)``."""
