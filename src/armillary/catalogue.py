"""Open a table as a native-endian, memory-mapped vaex DataFrame.

:func:`open_catalogue` reads a table file once, in chunks, into an HDF5 cache in vaex's own
layout (``/table/columns/<name>/data``), with every number in the machine's byte order and
every string as UTF-8 (vaex cannot bin big-endian columns, which is what FITS holds). Later
opens memory-map the cache and read nothing else.

The cache
---------
Location
    ``<folder>/<file name>.armillary.hdf5`` beside the source (``cat.fits`` ->
    ``cat.fits.armillary.hdf5``). With ``cache_dir``, or when the source's folder is not
    writable, ``<cache_dir>/<file name>.<8 hex of the source path>.armillary.hdf5``;
    the fallback ``cache_dir`` is ``$XDG_CACHE_HOME/armillary`` (``~/.cache/armillary``).
Freshness
    The cache's root attributes hold a fingerprint of the source (resolved path, size,
    mtime in ns, and the cache-format version). A cache whose fingerprint differs, or which
    cannot be read, is rebuilt; it is written under a temporary name and renamed, so a
    reader never sees half a cache.
Contents
    Scalar columns only: numbers, booleans and strings (FITS strings lose trailing blanks).
    Vector and variable-length columns are skipped with a warning. Beside the table, in
    ``/armillary_index/<id column>``, the sorted id index (64-bit FNV-1a hashes of string
    ids, or the integer ids, and their row order) of the id column named when the cache was
    built, so reopening a catalogue of ten million rows takes milliseconds.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from armillary._cache import (
    _CHUNK_ROWS,
    _FITS_SUFFIXES,
    _VAEX_SUFFIXES,
    CACHE_VERSION,
    _build_cache,
    _cache_is_current,
    _cache_path,
    _fingerprint,
    _fnv1a,
    _IdIndex,
    _open_vaex,
    _reader_for,
    _stored_index,
    _Strings,
)
from armillary.errors import (
    CatalogueError,
    CatalogueNotFoundError,
    ColumnNotFoundError,
    DuplicateIdError,
    UnknownIdError,
)

__all__ = ["CACHE_VERSION", "Catalogue", "open_catalogue"]


# --------------------------------------------------------------------------- ids


def _strings_of(values):
    """Query ids as a list of str (bytes decoded) and their :class:`_Strings`."""
    texts = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
    encoded = [t.encode("utf-8") for t in texts]
    lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
    return texts, _Strings(lengths, np.frombuffer(b"".join(encoded), np.uint8))


def _as_integers(values):
    """Query ids as int64, with a mask of those that are integers at all."""
    array = np.asarray(values)
    if array.dtype.kind in "iu":
        return array.astype(np.int64), np.ones(array.shape, bool)
    out = np.zeros(array.shape, np.int64)
    ok = np.zeros(array.shape, bool)
    for k, value in enumerate(array.tolist()):
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            out[k], ok[k] = value, True
        elif isinstance(value, float) and value.is_integer():
            out[k], ok[k] = int(value), True
    return out, ok


# --------------------------------------------------------------------------- catalogue


def _scalar(value):
    """The first element of an evaluated array as a Python scalar (bytes decoded)."""
    if np.ma.isMaskedArray(value) and np.ma.getmaskarray(value)[0]:
        return None
    if hasattr(value, "to_pylist"):
        item = value[0].as_py()
    else:
        item = np.asarray(value)[0]
        item = item.item() if hasattr(item, "item") else item
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else item


class Catalogue:
    """A table opened by :func:`open_catalogue`: a thin object around a vaex DataFrame.

    Parameters
    ----------
    source : pathlib.Path
        The table file.
    df : vaex.dataframe.DataFrame
        The memory-mapped cache of ``source``.
    cache_path : pathlib.Path
        Where the cache lives.
    fingerprint : str
        Fingerprint of ``source`` the cache was built from.
    id_column : str or None
        Column holding the row ids; with ``None`` the ids are the row numbers 0..N-1.

    Attributes
    ----------
    name : str
        The file's name without its format suffix (``cat.fits`` -> ``cat``).
    """

    def __init__(self, source, df, cache_path, fingerprint, id_column):
        self.source = Path(source)
        self.name = _stem(self.source)
        self.df = df
        self.cache_path = Path(cache_path)
        self.fingerprint = fingerprint
        self.id_column = id_column
        self._index = None
        self._ids = None
        self._id_arrow_cache = None

    def __len__(self):
        return len(self.df)

    def __repr__(self):
        ids = "row numbers" if self.id_column is None else repr(self.id_column)
        return (f"<Catalogue {self.name!r}: {len(self):,} rows, {len(self.columns)} columns, "
                f"ids {ids}, source {str(self.source)!r}>")

    @property
    def columns(self):
        """Names of the columns, derived (virtual) ones included, as a list of str."""
        return list(self.df.get_column_names())

    # ----------------------------------------------------------------- ids

    @property
    def ids(self):
        """Ids in row order: int64 row numbers or column values, or str (object array).

        Built on first use and kept; for string ids on a large catalogue this costs about
        as much memory as Python holds for that many strings. Prefer :meth:`id_at` for a
        few ids.
        """
        if self._ids is None:
            if self.id_column is None:
                self._ids = np.arange(len(self), dtype=np.int64)
            elif self._ids_are_strings():
                self._ids = np.asarray(self._id_arrow().to_numpy(zero_copy_only=False),
                                       dtype=object)
            else:
                self._ids = np.asarray(self.df.evaluate(self.id_column))
        return self._ids

    def id_at(self, pos):
        """The id of row ``pos`` (int or str)."""
        pos = self._check_position(pos)
        if self.id_column is None:
            return pos
        if self._ids_are_strings():
            return self._id_arrow()[pos].as_py()
        return _scalar(self.df.evaluate(self.id_column, pos, pos + 1))

    def position(self, id_):
        """Row position (int) of one id; :class:`UnknownIdError` if it is not there."""
        return int(self.index_of([id_])[0])

    def index_of(self, ids):
        """Row positions (int64 array) of ``ids``, a sequence or array of ids.

        Raises
        ------
        UnknownIdError
            If any id is not in the catalogue; the message names a few of them.
        """
        values = np.asarray(ids, dtype=object) if isinstance(ids, (list, tuple)) \
            else np.asarray(ids)
        if values.ndim == 0:
            values = values.reshape(1)
        if self.id_column is None:
            positions, ok = _as_integers(values)
            ok &= (positions >= 0) & (positions < len(self))
        elif self._ids_are_strings():
            positions, ok = self._string_positions(values)
        else:
            query, ok = _as_integers(values)
            positions, _, _ = self._id_index().candidates(query)
            ok &= positions >= 0
        if not ok.all():
            self._raise_unknown(values[~ok])
        return positions.astype(np.int64)

    def _string_positions(self, values):
        texts, strings = _strings_of(values.tolist())
        positions, lo, hi = self._id_index().candidates(_fnv1a(strings))
        found = np.flatnonzero(positions >= 0)
        stored = self._id_arrow().take(positions[found]).to_pylist()
        ok = np.zeros(len(texts), bool)
        for k, text in zip(found.tolist(), stored, strict=True):
            if text == texts[k]:
                ok[k] = True
                continue
            for candidate in self._id_index().order[lo[k] : hi[k]].tolist():  # collisions
                if self._id_arrow()[candidate].as_py() == texts[k]:
                    positions[k], ok[k] = candidate, True
        return positions, ok

    def _raise_unknown(self, missing):
        shown = ", ".join(repr(_plain(v)) for v in missing[:5])
        more = f" and {missing.size - 5} more" if missing.size > 5 else ""
        where = "row numbers" if self.id_column is None else f"column {self.id_column!r}"
        noun = "id" if missing.size == 1 else f"{missing.size} ids"
        raise UnknownIdError(f"{noun} {shown}{more} not in catalogue {self.name!r} "
                             f"({self.source}; ids are {where})")

    def _check_position(self, pos):
        if isinstance(pos, bool) or not isinstance(pos, (int, np.integer)):
            raise TypeError(f"a row position must be an integer, got {pos!r}")
        if not 0 <= pos < len(self):
            raise IndexError(f"row {pos} is outside catalogue {self.name!r}, which has "
                             f"{len(self):,} rows (positions 0..{len(self) - 1})")
        return int(pos)

    def _ids_are_strings(self):
        return self.df.data_type(self.id_column).is_string

    def _id_arrow(self):
        """The string id column as one pyarrow array (memory-mapped where vaex allows)."""
        if self._id_arrow_cache is None:
            import pyarrow as pa

            column = self.df.columns.get(self.id_column)
            if not isinstance(column, (pa.Array, pa.ChunkedArray)):
                column = self.df.evaluate(self.id_column, array_type="arrow")
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            self._id_arrow_cache = column
        return self._id_arrow_cache

    def _id_index(self):
        if self._index is None:
            if self._ids_are_strings():
                keys = np.concatenate([
                    _fnv1a(_Strings.from_arrow(self._id_arrow().slice(start, _CHUNK_ROWS)))
                    for start in range(0, len(self), _CHUNK_ROWS)])
            else:
                keys = np.asarray(self.df.evaluate(self.id_column))
            self._index = _IdIndex(keys)
        return self._index

    def _check_ids(self):
        """Check the id column: present, integers or strings, no value twice."""
        if self.id_column is None:
            return
        if self.id_column not in self.df.get_column_names(virtual=False):
            raise _missing_id_column(self.id_column, self.source, self.columns)
        dtype = self.df.data_type(self.id_column)
        if not (dtype.is_string or dtype.is_integer):
            raise CatalogueError(f"id column {self.id_column!r} of {self.source} holds {dtype}; "
                                 "ids must be integers or strings")
        first, second = self._id_index().duplicate_pairs()
        if first.size and self._ids_are_strings():  # equal hashes, maybe unequal ids
            import pyarrow.compute as pc

            column = self._id_arrow()
            same = np.asarray(pc.equal(column.take(first), column.take(second)))
            first, second = (first[same], second[same]) if same.any() \
                else self._colliding_duplicates(first, second)
        if first.size:
            self._raise_duplicates(first, second)

    def _colliding_duplicates(self, first, second):
        """Repeated ids among rows whose hashes collide (a 64-bit hash: almost never)."""
        rows = np.unique(np.concatenate([first, second]))
        seen, pairs = {}, []
        for row, text in zip(rows.tolist(), self._id_arrow().take(rows).to_pylist(),
                             strict=True):
            if text in seen:
                pairs.append((seen[text], row))
            seen.setdefault(text, row)
        found = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        return found[:, 0], found[:, 1]

    def _raise_duplicates(self, first, second):
        examples = {}  # id -> rows holding it; pairs of one id are neighbours
        for a, b in zip(first[:200].tolist(), second[:200].tolist(), strict=True):
            value = self.id_at(a)
            if value not in examples and len(examples) == 3:
                break
            examples.setdefault(value, {a}).add(b)
        shown = "; ".join(f"{_plain(value)!r} (rows {', '.join(map(str, sorted(rows)[:4]))})"
                          for value, rows in examples.items())
        raise DuplicateIdError(
            f"id column {self.id_column!r} of {self.source} holds repeated ids ({first.size} "
            f"rows repeat an earlier id), e.g. {shown}. Ids must be unique: pick another "
            "id_column, or id_column=None to use row numbers")

    # ----------------------------------------------------------------- values

    def row(self, pos, columns=None):
        """Values of one row as a dict of Python scalars (NaN stays NaN, bytes decoded).

        Parameters
        ----------
        pos : int
            Row position.
        columns : sequence of str, optional
            Columns or expressions to read; all columns by default.
        """
        pos = self._check_position(pos)
        names = self.columns if columns is None else [columns] if isinstance(columns, str) \
            else list(columns)
        for name in names:
            self._check_expression(name)
        values = self.df.evaluate(names, pos, pos + 1)
        return {name: _scalar(value) for name, value in zip(names, values, strict=True)}

    def column(self, name):
        """All values of one column or expression: a numpy array (strings as str objects)."""
        self._check_expression(name)
        values = self.df.evaluate(name)
        if hasattr(values, "to_numpy"):  # pyarrow strings
            return values.to_numpy(zero_copy_only=False).astype(object)
        return np.asarray(values)

    def to_numpy(self, columns, dtype=np.float32):
        """Evaluate columns or expressions (``"g - j"``) into a C-contiguous (N, F) array.

        Parameters
        ----------
        columns : str or sequence of str
            Column names or vaex expressions, one per feature.
        dtype : numpy dtype
            Element type of the result (masked values become NaN).

        Raises
        ------
        ColumnNotFoundError
            An expression names a column that is not in the catalogue.
        CatalogueError
            A column or expression is not numeric, or is not a valid expression.
        """
        names = [columns] if isinstance(columns, str) else list(columns)
        if not names:
            raise CatalogueError("to_numpy needs at least one column or expression")
        for name in names:
            self._check_numeric(name)
        out = np.empty((len(self), len(names)), dtype=dtype)
        for j, name in enumerate(names):
            values = self.df.evaluate(name)
            if np.ma.isMaskedArray(values):
                values = np.ma.filled(values.astype(np.float64), np.nan)
            out[:, j] = values
        return out

    def derive(self, name, expression):
        """Add a derived (virtual) column ``name = expression``; returns ``self``.

        Example: ``cat.derive("g_j", "g - j")``. Deriving a name again replaces the earlier
        expression; a column of the file cannot be replaced.
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise CatalogueError(f"a derived column needs a Python identifier as its name, "
                                 f"got {name!r}")
        if name in self.df.get_column_names(virtual=False):
            raise CatalogueError(f"{name!r} is a column of {self.source}; pick another name "
                                 "for the derived column")
        self._check_expression(expression)
        self.df.add_virtual_column(name, expression, unique=False)
        return self

    def _check_expression(self, expression):
        if not isinstance(expression, str):
            raise TypeError(f"a column or expression must be a str, got {expression!r}")
        if expression in self.df.get_column_names(hidden=True):
            return
        try:
            self.df.validate_expression(expression)
        except NameError as exc:
            match = re.search(r"'([^']+)'", str(exc))
            missing = match.group(1) if match else expression
            inside = "" if missing == expression else f" (in expression {expression!r})"
            raise ColumnNotFoundError(
                f"column {missing!r}{inside} is not in catalogue {self.name!r} "
                f"({self.source}); available columns: {_listing(self.columns)}") from None
        except SyntaxError as exc:
            raise CatalogueError(f"{expression!r} is not a valid expression for catalogue "
                                 f"{self.name!r}: {exc.msg}") from None

    def _check_numeric(self, expression):
        self._check_expression(expression)
        dtype = self.df.data_type(expression)
        if not (dtype.is_numeric or dtype.kind == "b"):
            raise CatalogueError(f"column {expression!r} of {self.source} holds {dtype}, not "
                                 "numbers; features must be numeric columns or expressions")


def _plain(value):
    """A numpy scalar as a Python one, for messages."""
    return value.item() if hasattr(value, "item") else value


def _listing(names, limit=60):
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _missing_id_column(id_column, source, names):
    return ColumnNotFoundError(f"id column {id_column!r} is not in {source}; available "
                               f"columns: {_listing(names)}. Pass id_column=None to use row "
                               "numbers as ids")


def _stem(path):
    lower = path.name.lower()
    for suffix in _FITS_SUFFIXES + _VAEX_SUFFIXES:
        if lower.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def _resolve_source(path):
    given = Path(path).expanduser()
    if not given.exists():
        raise CatalogueNotFoundError(f"catalogue file {given} does not exist "
                                     f"(looked for {given.resolve()})")
    if given.is_dir():
        raise CatalogueError(f"{given} is a directory, not a catalogue file; pass the path "
                             "of a table such as a .fits file")
    return given.resolve()


def open_catalogue(path, id_column="ID", cache_dir=None):
    """Open a table file as a :class:`Catalogue`, converting it to a cache on first use.

    Parameters
    ----------
    path : str or os.PathLike
        A FITS table (the first table HDU is read), or an HDF5, Parquet, Arrow or CSV file.
    id_column : str or None
        Column of unique ids (integers or strings); ``None`` uses row numbers 0..N-1.
    cache_dir : str or os.PathLike, optional
        Folder for the cache; by default the cache sits beside ``path`` (see the module
        docstring).

    Returns
    -------
    Catalogue

    Raises
    ------
    CatalogueNotFoundError
        ``path`` does not exist.
    CatalogueError
        ``path`` is a folder, an unsupported format, or not a readable table.
    ColumnNotFoundError
        ``id_column`` is not a column of the table.
    DuplicateIdError
        ``id_column`` holds an id more than once.
    """
    source = _resolve_source(path)
    fingerprint = _fingerprint(source)
    cache = _cache_path(source, cache_dir)
    if not _cache_is_current(cache, fingerprint):
        reader = _reader_for(source)
        try:
            if id_column is not None and id_column not in reader.columns:
                raise _missing_id_column(id_column, source, list(reader.columns))
            if reader.nrows == 0:
                raise CatalogueError(f"{source} has no rows")
            attrs = {"armillary_fingerprint": fingerprint, "armillary_source": str(source),
                     "armillary_cache_version": CACHE_VERSION, "armillary_format": reader.format,
                     **{f"armillary_{k}": v for k, v in reader.meta.items()}}
            try:
                _build_cache(reader, cache, attrs, id_column)
            except OSError as exc:
                raise CatalogueError(f"cannot write the cache of {source} at {cache} ({exc}); "
                                     "pass cache_dir= a writable folder") from exc
        finally:
            reader.close()
    catalogue = Catalogue(source, _open_vaex(cache), cache, fingerprint, id_column)
    if id_column is not None and "/" not in id_column:
        catalogue._index = _stored_index(cache, id_column)
    catalogue._check_ids()
    return catalogue
