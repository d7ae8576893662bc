"""Readers of every table format Armillary opens, chunk by chunk, in memory-bounded steps.

:func:`reader_for` picks a reader for a file (by its suffix, or ``format=``) or for a table
already in memory. Every reader describes its columns (:class:`Column`) and yields them in
row chunks as native-endian numpy arrays (numbers, booleans; a
:class:`numpy.ma.MaskedArray` where values are missing) or :class:`Strings` (UTF-8 bytes),
which :mod:`armillary._cache` writes into the cache.

==============  ===============================================  ==========================
format          files                                            read
==============  ===============================================  ==========================
``fits``        ``.fits .fit .fts`` (+ ``.gz``)                   in row chunks (see
                                                                 :mod:`armillary._fits`)
``hdf5``        ``.hdf5 .h5 .hdf``: vaex's layout                in row chunks (h5py)
                (``/table/columns``) or astropy's (a compound
                dataset; ``hdu=`` its path)
``parquet``     ``.parquet .pq``                                 in record batches
``arrow``       ``.arrow .feather .ipc .arrows`` (IPC file or    one record batch at a time
                stream; Feather v2)
``csv``         ``.csv .tsv`` (+ ``.gz .bz2``)                   streamed by pyarrow: a pass
                                                                 settles the types, one
                                                                 sizes strings, one writes
``ecsv``        ``.ecsv`` (+ ``.gz``)                            the same, types and units
                                                                 from the YAML header
``votable``     ``.vot .votable .xml`` (``hdu=``: which TABLE)   whole (astropy)
in memory       astropy ``Table``/``QTable``, pandas             in row slices
                ``DataFrame``, numpy structured arrays
==============  ===============================================  ==========================

Rules every reader keeps
------------------------
- Missing values become NaN in float columns, a mask in integer and boolean columns, and
  ``""`` in string columns.
- Vector (multidimensional) columns with up to :data:`MAX_ELEMENTS` elements are flattened
  into scalar columns ``name_0, name_1, …`` in numpy's C order (a FITS ``TDIM = '(3,2)'``
  column ``A`` becomes ``A_0 … A_5``); wider ones, variable-length arrays, times, objects
  and nested types are left out with a warning.
- A pandas index with a name becomes a column; an unnamed one is dropped.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from armillary.errors import CatalogueError

__all__ = ["FORMATS", "MAX_ELEMENTS", "Column", "Strings", "reader_for"]

STR = "str"
"""The kind of a string column."""
MAX_ELEMENTS = 100
"""Vector columns with more elements than this are left out rather than flattened."""

FORMATS = {
    ".fits": "fits",
    ".fit": "fits",
    ".fts": "fits",
    ".fits.gz": "fits",
    ".fit.gz": "fits",
    ".hdf5": "hdf5",
    ".h5": "hdf5",
    ".hdf": "hdf5",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".arrows": "arrow",
    ".csv": "csv",
    ".tsv": "csv",
    ".csv.gz": "csv",
    ".csv.bz2": "csv",
    ".tsv.gz": "csv",
    ".ecsv": "ecsv",
    ".ecsv.gz": "ecsv",
    ".vot": "votable",
    ".votable": "votable",
    ".xml": "votable",
}
"""File-name suffix -> format name."""


@dataclass
class Column:
    """What a reader knows of one output column.

    Attributes
    ----------
    kind : numpy.dtype or "str"
        Native-endian dtype of the values, or :data:`STR`.
    masked : bool or None
        Whether the column has missing values that need a mask (integers, booleans);
        ``None`` when only a scan of the data can tell.
    unit, description : str or None
        Metadata kept in the cache.
    source : str
        Name of the column in the source's chunks.
    element : int or None
        Index into the flattened source column, for a vector column.
    """

    kind: object
    masked: bool | None = False
    unit: str | None = None
    description: str | None = None
    source: str = ""
    element: int | None = None


class Strings:
    """A chunk of strings as UTF-8 bytes: ``lengths`` (int64) and concatenated ``data``."""

    def __init__(self, lengths, data):
        self.lengths = lengths
        self.data = data

    def __len__(self):
        return self.lengths.size

    @classmethod
    def from_fixed(cls, array):
        """From a fixed-width bytes array, dropping trailing blanks and NULs (FITS rule)."""
        array = np.ascontiguousarray(np.strings.rstrip(np.asarray(array, dtype="S"), b" \0"))
        width = array.dtype.itemsize
        lengths = np.strings.str_len(array).astype(np.int64)
        if width == 0:
            return cls(lengths, np.zeros(0, np.uint8))
        matrix = array.view(np.uint8).reshape(array.size, width)
        return cls(lengths, matrix[np.arange(width) < lengths[:, None]])

    @classmethod
    def from_arrow(cls, array):
        """From a pyarrow string-like array (or a sequence of str); nulls become ""."""
        import pyarrow as pa

        if not isinstance(array, (pa.Array, pa.ChunkedArray)):
            array = pa.array(list(array), type=pa.large_string())
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks() if array.num_chunks else pa.array([], pa.large_string())
        array = array.cast(pa.large_string()).fill_null("")
        offsets = np.frombuffer(array.buffers()[1], np.int64)
        offsets = offsets[array.offset : array.offset + len(array) + 1]
        data = np.frombuffer(array.buffers()[2] or b"", np.uint8)[offsets[0] : offsets[-1]]
        return cls(np.diff(offsets), data)

    def to_arrow(self):
        """The strings as a pyarrow ``large_string`` array (no copy of the bytes)."""
        import pyarrow as pa

        offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        return pa.LargeStringArray.from_buffers(
            len(self), pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(self.data))
        )


def user_stacklevel():
    """The ``stacklevel`` of the caller's first frame outside the armillary package."""
    import os
    import sys

    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def warn_skipped(where, skipped):
    """Warn that columns ``skipped`` ({name: why}) are left out of the catalogue."""
    if skipped:
        listing = ", ".join(f"{name} ({why})" for name, why in skipped.items())
        warnings.warn(
            f"{where}: columns left out of the catalogue: {listing}",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def flat_names(name, shape):
    """Output names of a column with element shape ``shape``: ``[name]`` or ``name_k``."""
    size = int(np.prod(shape)) if shape else 1
    return [name] if not shape else [f"{name}_{k}" for k in range(size)]


def _take(values, element):
    """Element ``element`` of each row of a vector column chunk (any trailing shape)."""
    if element is None:
        return values
    flat = values.reshape(values.shape[0], -1)
    return flat[:, element]


# --------------------------------------------------------------------------- numpy


def numpy_kind(dtype):
    """Our kind for a numpy dtype: a native dtype, :data:`STR`, or None if unsupported."""
    if dtype.kind in "biuf":
        if dtype.kind == "f" and dtype.itemsize > 8:
            return np.dtype(np.float64)  # longdouble: vaex and HDF5 readers lack it
        if dtype.kind == "f" and dtype.itemsize < 4:
            return np.dtype(np.float32)
        return dtype.newbyteorder("=")
    if dtype.kind in "SUO":
        return STR
    return None


def numpy_values(values, column):
    """Convert one numpy chunk of a source column into the values of ``column``."""
    if isinstance(values, Strings):
        return values
    values = _take(values, column.element)
    mask = np.ma.getmask(values)
    data = np.ma.getdata(values)
    if column.kind == STR:
        return _strings_of_numpy(data, mask)
    data = data.astype(column.kind, copy=False)
    if mask is np.ma.nomask or not mask.any():
        return data
    if column.kind.kind == "f":
        return np.where(mask, np.nan, data).astype(column.kind, copy=False)
    return np.ma.MaskedArray(data, mask=mask)


def _strings_of_numpy(data, mask):
    import pyarrow as pa

    if data.dtype.kind == "S":
        strings = Strings.from_fixed(data)
        if mask is np.ma.nomask or not mask.any():
            return strings
        data = np.array([s.decode("utf-8", "replace") for s in data.tolist()], dtype=object)
    if data.dtype.kind == "O":
        data = np.array(
            [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in data.tolist()],
            dtype=object,
        )
    try:
        array = pa.array(
            data,
            type=pa.large_string(),
            from_pandas=True,
            mask=None if mask is np.ma.nomask else np.asarray(mask),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise CatalogueError(f"a column holds values that are not strings ({exc})") from exc
    return Strings.from_arrow(array)


def numpy_columns(name, dtype, shape, masked=False, unit=None, description=None):
    """Output :class:`Column` s of a source column (flattened if it is a vector).

    Returns ``({name: Column}, why)``, ``why`` saying why it is left out if it is.
    """
    kind = numpy_kind(dtype)
    size = int(np.prod(shape)) if shape else 1
    if kind is None:
        return {}, f"type {dtype}"
    if size > MAX_ELEMENTS:
        return {}, f"vector of {size} elements"
    if kind != STR and kind.kind == "f":
        masked = False  # missing floats become NaN
    out = {}
    for k, out_name in enumerate(flat_names(name, shape)):
        out[out_name] = Column(
            kind,
            bool(masked) if kind != STR else False,
            unit,
            description,
            name,
            k if shape else None,
        )
    return out, None


class NumpyReader:
    """A table of numpy columns in memory or readable by row slices.

    Parameters
    ----------
    fetch : callable
        ``fetch(start, stop, sources)`` -> ``{source name: numpy array}`` of those rows.
    nrows : int
    columns : dict of str to Column
    format : str
    meta : dict, optional
    close : callable, optional
        Called by :meth:`close` (to close a file).
    """

    def __init__(self, fetch, nrows, columns, format, meta=None, close=None):
        self._fetch = fetch
        self.nrows = nrows
        self.columns = columns
        self.format = format
        self.meta = meta or {}
        self._close = close

    def chunks(self, names=None, chunk_rows=262_144):
        """Yield ``{name: values}`` for consecutive row chunks."""
        names = list(self.columns if names is None else names)
        sources = sorted({self.columns[n].source for n in names})
        for start in range(0, self.nrows, chunk_rows):
            stop = min(start + chunk_rows, self.nrows)
            raw = self._fetch(start, stop, sources)
            yield {n: numpy_values(raw[self.columns[n].source], self.columns[n]) for n in names}

    def close(self):
        """Release the source, if it holds a file."""
        if self._close is not None:
            self._close()


def _table_columns(table):
    """Columns of an astropy Table, and ``{name: why}`` of those left out."""
    from astropy.table import Column as TableColumn
    from astropy.units import Quantity

    columns, skipped = {}, {}
    for name in table.colnames:
        col = table[name]
        if not isinstance(col, (TableColumn, Quantity, np.ndarray)) or col.dtype.names:
            skipped[name] = type(col).__name__
            continue
        unit = str(col.unit) if getattr(col, "unit", None) else None
        masked = bool(np.ma.getmaskarray(col).any()) if hasattr(col, "mask") else False
        new, why = numpy_columns(
            name,
            col.dtype,
            col.shape[1:],
            masked,
            unit,
            getattr(getattr(col, "info", None), "description", None),
        )
        columns.update(new)
        if why:
            skipped[name] = why
    return columns, skipped


def table_reader(table, format="astropy", where="astropy Table"):
    """A reader of an in-memory astropy ``Table`` (``QTable``, ``MaskedColumn`` too)."""
    columns, skipped = _table_columns(table)
    warn_skipped(where, skipped)

    def fetch(start, stop, sources):
        out = {}
        for name in sources:
            col = table[name][start:stop]
            value = (
                getattr(col, "value", None)
                if hasattr(col, "unit") and not hasattr(col, "mask")
                else None
            )
            out[name] = (
                value
                if isinstance(value, np.ndarray)
                else (
                    np.ma.MaskedArray(col.data, col.mask)
                    if hasattr(col, "mask")
                    else np.asarray(col)
                )
            )
        return out

    return NumpyReader(fetch, len(table), columns, format)


def structured_reader(array, where="numpy structured array"):
    """A reader of a numpy structured array (a record array, or a FITS_rec's raw view)."""
    columns, skipped = {}, {}
    for name in array.dtype.names:
        field = array.dtype[name]
        new, why = numpy_columns(
            name,
            field.base,
            field.shape,
            np.ma.isMaskedArray(array) and bool(np.ma.getmaskarray(array[name]).any()),
        )
        columns.update(new)
        if why:
            skipped[name] = why
    warn_skipped(where, skipped)

    def fetch(start, stop, sources):
        return {name: array[name][start:stop] for name in sources}

    return NumpyReader(fetch, len(array), columns, "numpy")


# --------------------------------------------------------------------------- arrow


def arrow_columns(schema, where, nullable_unknown=True):
    """Output columns of an Arrow schema, warning of those left out."""
    columns, skipped = {}, {}
    for field in schema:
        kind, shape = _arrow_kind(field.type)
        if field.name.startswith("__index_level_"):
            continue  # pandas' unnamed index, as pyarrow stores it
        if kind is None:
            skipped[field.name] = str(field.type)
            continue
        if shape and shape[0] > MAX_ELEMENTS:
            skipped[field.name] = f"vector of {shape[0]} elements"
            continue
        masked = (
            None
            if (field.nullable and nullable_unknown and kind != STR and kind.kind in "biu")
            else False
        )
        unit = (field.metadata or {}).get(b"unit")
        for k, name in enumerate(flat_names(field.name, shape)):
            columns[name] = Column(
                kind,
                masked,
                unit.decode() if unit else None,
                None,
                field.name,
                k if shape else None,
            )
    warn_skipped(where, skipped)
    return columns


def _arrow_kind(type_):
    """(kind, shape) for an Arrow type; kind None if Armillary cannot hold it."""
    import pyarrow.types as pt

    if pt.is_dictionary(type_):
        return _arrow_kind(type_.value_type)
    if pt.is_string(type_) or pt.is_large_string(type_):
        return STR, ()
    if pt.is_boolean(type_):
        return np.dtype(bool), ()
    if pt.is_integer(type_) or pt.is_floating(type_):
        return numpy_kind(np.dtype(type_.to_pandas_dtype())), ()
    if pt.is_decimal(type_):
        return np.dtype(np.float64), ()
    if pt.is_fixed_size_list(type_):
        inner, inner_shape = _arrow_kind(type_.value_type)
        if inner is None or inner == STR or inner_shape:
            return None, ()
        return inner, (type_.list_size,)
    return None, ()


def arrow_values(array, column):
    """Convert one Arrow chunk of a source column into the values of ``column``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if column.kind == STR:
        return Strings.from_arrow(array)
    if pa.types.is_fixed_size_list(array.type):
        width = array.type.list_size
        flat = arrow_values(array.flatten(), replace(column, element=None))
        return _take(np.asarray(flat).reshape(-1, width), column.element)
    if pa.types.is_decimal(array.type):
        array = array.cast(pa.float64())
    if column.kind.kind == "f":
        return array.to_numpy(zero_copy_only=False).astype(column.kind, copy=False)
    if array.null_count:
        data = pc.fill_null(
            array, pa.scalar(0, array.type) if column.kind.kind != "b" else False
        ).to_numpy(zero_copy_only=False)
        mask = array.is_null().to_numpy(zero_copy_only=False)
        return np.ma.MaskedArray(data.astype(column.kind, copy=False), mask=mask)
    return array.to_numpy(zero_copy_only=False).astype(column.kind, copy=False)


class ArrowReader:
    """A table read as Arrow record batches.

    Parameters
    ----------
    batches : callable
        ``batches(sources, chunk_rows)`` -> iterator of ``pyarrow.RecordBatch`` (or Table)
        holding the source columns ``sources``, in order, covering every row.
    nrows : int or None
        ``None`` if only a pass over the data can tell.
    columns : dict of str to Column
    format : str
    """

    def __init__(self, batches, nrows, columns, format, meta=None, close=None):
        self._batches = batches
        self.nrows = nrows
        self.columns = columns
        self.format = format
        self.meta = meta or {}
        self._close = close

    def chunks(self, names=None, chunk_rows=262_144):
        """Yield ``{name: values}`` for consecutive row chunks (at most ``chunk_rows``)."""
        names = list(self.columns if names is None else names)
        sources = list(dict.fromkeys(self.columns[n].source for n in names))
        for batch in self._batches(sources, chunk_rows):
            for start in range(0, batch.num_rows, chunk_rows):
                part = batch.slice(start, chunk_rows)
                yield {
                    n: arrow_values(part.column(self.columns[n].source), self.columns[n])
                    for n in names
                }

    def close(self):
        """Release the file."""
        if self._close is not None:
            self._close()


def pandas_reader(frame):
    """A reader of a pandas DataFrame, converted to Arrow one slice at a time."""
    import pyarrow as pa

    if frame.index.name is not None or any(frame.index.names[1:]):
        frame = frame.reset_index()
    if not all(isinstance(c, str) for c in frame.columns):
        frame = frame.rename(columns=str)
    if frame.columns.duplicated().any():
        dup = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise CatalogueError(f"the DataFrame has repeated column names: {', '.join(dup)}")
    try:
        schema = pa.Schema.from_pandas(frame.iloc[:1000], preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise CatalogueError(f"cannot read the DataFrame's columns ({exc})") from exc
    for name in frame.columns:  # numpy ints and bools hold no nulls (nullable Int64 can)
        dtype = frame[name].dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "iub":
            schema = schema.set(
                schema.get_field_index(name), schema.field(name).with_nullable(False)
            )
    columns = arrow_columns(schema, "pandas DataFrame")

    def batches(sources, chunk_rows):
        for start in range(0, len(frame), chunk_rows):
            part = frame.iloc[start : start + chunk_rows][sources]
            yield pa.RecordBatch.from_pandas(
                part, schema=pa.schema([schema.field(s) for s in sources]), preserve_index=False
            )

    return ArrowReader(batches, len(frame), columns, "pandas")


# --------------------------------------------------------------------------- dispatch


def format_of(path, format=None):
    """The format name of ``path`` (from ``format`` if given, else from its suffix)."""
    if format is not None:
        if format not in set(FORMATS.values()):
            raise CatalogueError(
                f"unknown format {format!r}; Armillary reads "
                f"{', '.join(sorted(set(FORMATS.values())))}"
            )
        return format
    lower = path.name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if lower.endswith(suffix):
            return FORMATS[suffix]
    raise CatalogueError(
        f"{path}: unsupported catalogue format {path.suffix!r}; Armillary "
        f"reads {', '.join(FORMATS)} files (or pass format=)"
    )


def reader_for(source, hdu=None, format=None):
    """A reader for a file path or an in-memory table (see the module docstring)."""
    if not isinstance(source, Path):
        return _object_reader(source, hdu)
    kind = format_of(source, format)
    if hdu is not None and kind not in ("fits", "hdf5", "votable"):
        raise CatalogueError(
            f"hdu={hdu!r} was given for {source}, a {kind} file; hdu= "
            "picks a table in FITS, HDF5 and VOTable files only"
        )
    from armillary import _sources

    return _sources.READERS[kind](source, hdu)


def _object_reader(table, hdu):
    if hdu is not None:
        raise CatalogueError("hdu= picks a table in a file; an in-memory table has one")
    from astropy.table import Table

    if isinstance(table, Table):
        return table_reader(table)
    if isinstance(table, np.ndarray) and table.dtype.names:
        return structured_reader(table)
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(table, pd.DataFrame):
        return pandas_reader(table)
    raise TypeError(
        f"open_catalogue takes a path, an astropy Table, a pandas DataFrame or a "
        f"numpy structured array, not {type(table).__name__}"
    )


def strip_suffix(name):
    """A file name without its format suffix (``cat.fits.gz`` -> ``cat``)."""
    lower = name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem
