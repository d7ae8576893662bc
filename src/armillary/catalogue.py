"""Open a table of any common format as a native-endian, memory-mapped vaex DataFrame.

:func:`open_catalogue` reads a table (FITS, VOTable, CSV/ECSV, Parquet, HDF5, Arrow/Feather,
or an astropy ``Table``, pandas ``DataFrame`` or numpy structured array in memory) once, in
chunks, into a cache in vaex's own HDF5 layout (``/table/columns/<name>/data``), with every
number in the machine's byte order and every string as UTF-8 (vaex cannot bin big-endian
columns, which is what FITS holds). Later opens memory-map the cache and read nothing else.
:mod:`armillary.formats` lists the formats and how each is read.

Columns
-------
Numbers, booleans and strings are kept (FITS strings lose trailing blanks). Missing values
are NaN in float columns, masked in integer and boolean columns, ``""`` in strings.
**Multidimensional columns** (a FITS ``3E`` or ``TDIM`` column, a 2-D column of a Table,
an Arrow fixed-size list) with at most :data:`armillary.formats.MAX_ELEMENTS` elements are
**flattened** into scalar columns ``name_0, name_1, …`` (numpy's C order of the element
shape); wider ones, variable-length arrays, bit arrays, complex numbers, times and objects
are **skipped with a warning** that names them.

The cache
---------
Location
    ``cache_dir=`` if given, else the folder in ``$ARMILLARY_CACHE_DIR``, else beside the
    source (``cat.fits`` -> ``cat.fits.armillary.hdf5``), else, when the source's folder
    cannot be written (shared survey data), the user's cache folder
    (``$XDG_CACHE_HOME/armillary``, ``~/.cache/armillary``). Away from the source the
    name carries 8 hex of the source's path: ``cat.fits.1a2b3c4d.armillary.hdf5``.
    ``hdu=`` and ``optimise=True`` give caches of their own (``cat.fits.hdu-2.optimised
    .armillary.hdf5``). Tables from memory are cached in the cache folder under
    ``<name>.<16 hex of their content>.armillary.hdf5``.
Freshness
    The cache's root attributes hold a fingerprint of the source: its resolved path, size,
    mtime (ns), a hash of its first and last 64 KiB (the header, a Parquet or Arrow
    footer), the options and the cache-format version (for a table in memory: a hash of
    its content). A cache whose fingerprint differs, or which cannot be read, is rebuilt;
    it is written under a temporary name and renamed when complete, so an interrupted
    conversion never leaves a cache that is later used.
Contents
    Beside the table, in ``/armillary_index/<id column>``, the sorted id index (64-bit
    FNV-1a hashes of string ids, or the integer ids, and their row order) of the id column
    named when the cache was built, and whether it holds an id twice, so reopening a
    catalogue of a hundred million rows takes milliseconds. The index of another id
    column is built on first use and saved beside the cache
    (``<cache name>.<8 hex>.<8 hex>.index.npy``, memory-mapped when reopened; written
    under a temporary name and renamed, removed when the cache is rebuilt). Either is
    sorted a group of about eight million ids at a time, so building it needs a few
    hundred MB whatever the catalogue's size. A path to a cache itself opens that cache
    directly.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from armillary import derive as _derive
from armillary._cache import (
    CACHE_SUFFIX,
    CACHE_VERSION,
    build_cache,
    cache_attrs,
    cache_folder,
    cache_path,
    content_fingerprint,
    file_fingerprint,
    open_vaex,
    stored_index,
)
from armillary._chunks import CacheColumns, feature_chunks
from armillary._ids import IdLookup, id_kind_error, listing, missing_id_column
from armillary.derive import register_combination
from armillary.errors import (
    AllNaNFeatureWarning,
    CatalogueError,
    CatalogueNotFoundError,
    ColumnNotFoundError,
)
from armillary.formats import STR, reader_for, strip_suffix, user_stacklevel

__all__ = ["CACHE_VERSION", "Catalogue", "open_catalogue", "register_combination"]

FEATURE_CHUNK_ROWS = 1 << 20
"""Rows per chunk of :meth:`Catalogue.iter_chunks` (12 float32 features: 48 MiB)."""


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


def _is_number(dtype):
    """Whether a vaex data type holds numbers or booleans."""
    return not dtype.is_encoded and (dtype.is_numeric or dtype.kind == "b")


class Catalogue(IdLookup):
    """A table opened by :func:`open_catalogue`: a thin object around a vaex DataFrame.

    Parameters
    ----------
    source : pathlib.Path
        The table file (for a table from memory: its cache).
    df : vaex.dataframe.DataFrame
        The memory-mapped cache of ``source``.
    cache_path : pathlib.Path
        Where the cache lives.
    fingerprint : str
        Fingerprint of ``source`` the cache was built from.
    id_column : str or None
        Column holding the row ids; with ``None`` the ids are the row numbers 0..N-1.
    name : str, optional
        Defaults to the file's name without its format suffix (``cat.fits`` -> ``cat``).

    Attributes
    ----------
    format : str or None
        Format the cache was converted from (``"fits"``, ``"parquet"``, ``"pandas"`` …).
    optimisation : dict or None
        For a catalogue opened with ``optimise=True``: ``bytes_before``, ``bytes_after``,
        ``bytes_saved`` and ``changes`` (column -> ``"float64 -> float32"``).
    """

    def __init__(self, source, df, cache_path, fingerprint, id_column, name=None):
        self.source = Path(source)
        self.name = name or _stem(self.source)
        self.df = df
        self.cache_path = Path(cache_path)
        self.fingerprint = fingerprint
        self.id_column = id_column
        self.format = None
        self.optimisation = None
        self._index = None
        self._ids = None
        self._id_arrow_cache = None
        self._stored = None
        self._derived = {}
        self._functions = {}

    def __len__(self):
        return len(self.df)

    def __repr__(self):
        ids = "row numbers" if self.id_column is None else repr(self.id_column)
        saved = (
            ""
            if not self.optimisation
            else f", optimised (saved {_size(self.optimisation['bytes_saved'])})"
        )
        return (
            f"<Catalogue {self.name!r}: {len(self):,} rows, {len(self.columns)} columns, "
            f"ids {ids}, source {str(self.source)!r}{saved}>"
        )

    @property
    def columns(self):
        """Names of the columns, derived (virtual) ones included, as a list of str."""
        return list(self.df.get_column_names())

    @property
    def derived(self):
        """Derived columns as ``{name: expression as given}`` (a copy)."""
        return dict(self._derived)

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
        names = (
            self.columns
            if columns is None
            else [columns]
            if isinstance(columns, str)
            else list(columns)
        )
        for name in names:
            self._check_expression(name)
        values = self.df.evaluate(names, pos, pos + 1)
        return {name: _scalar(value) for name, value in zip(names, values, strict=True)}

    def column(self, name):
        """All values of one column or expression: a numpy array (strings as str objects,
        a :class:`numpy.ma.MaskedArray` where an integer or boolean column has missing
        values)."""
        self._check_expression(name)
        values = self.df.evaluate(name)
        if hasattr(values, "to_numpy"):  # pyarrow strings (or categories)
            return values.to_numpy(zero_copy_only=False).astype(object)
        return values if np.ma.isMaskedArray(values) else np.asarray(values)

    def to_numpy(self, columns, dtype=np.float32):
        """Evaluate columns or expressions (``"g - j"``) into a C-contiguous (N, F) array.

        Read in chunks of :data:`FEATURE_CHUNK_ROWS` rows (see :meth:`iter_chunks`), so
        the result is the only large allocation. A feature with no number at all (every
        value NaN) gives an :class:`~armillary.errors.AllNaNFeatureWarning`.

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
        names = self._feature_names(columns, "to_numpy")
        out = np.empty((len(self), len(names)), dtype=dtype)
        seen = np.zeros(len(names), bool)
        for start, block in self._chunks(names, FEATURE_CHUNK_ROWS, dtype):
            out[start : start + block.shape[0]] = block
            seen |= _has_numbers(block)
        _warn_all_nan(names, seen, self)
        return out

    def iter_chunks(self, features, chunk_rows=FEATURE_CHUNK_ROWS, dtype=np.float32, order="C"):
        """Yield ``(start, block)`` over all rows: ``block`` holds rows ``[start, start +
        len(block))`` of ``features`` as a ``(rows, F)`` array.

        Memory stays at a few chunks however large the catalogue: stored columns are read
        from the cache with plain reads, not through the memory map (see
        :mod:`armillary._chunks`).

        Parameters
        ----------
        features : str or sequence of str
            Columns, derived columns or expressions.
        chunk_rows : int
            Rows per chunk (the last may be shorter).
        dtype : numpy dtype
            Element type of the blocks (masked values become NaN).
        order : {"C", "F"}
            Memory layout of the blocks: C-contiguous (rows), or F-contiguous (each
            feature contiguous: faster, as stored columns are read straight into it).
        """
        names = self._feature_names(features, "iter_chunks")
        if (
            isinstance(chunk_rows, bool)
            or not isinstance(chunk_rows, (int, np.integer))
            or chunk_rows < 1
        ):
            raise ValueError(f"chunk_rows must be an integer >= 1, got {chunk_rows!r}")
        if order not in ("C", "F"):
            raise ValueError(f"order must be 'C' or 'F', got {order!r}")
        return self._chunks(names, int(chunk_rows), dtype, order)

    def _chunks(self, names, chunk_rows, dtype, order="F"):
        if self._stored is None:
            self._stored = CacheColumns(self.cache_path)
        return feature_chunks(
            self.df, self._stored, names, chunk_rows, dtype, self._functions, order
        )

    def describe(self, features=None):
        """NaN and inf census of features, in one chunked pass.

        Parameters
        ----------
        features : sequence of str, optional
            Columns, derived columns or expressions; by default every numeric column and
            derived column.

        Returns
        -------
        pandas.DataFrame
            One row per feature: ``rows``, ``nan``, ``posinf``, ``neginf``, ``finite``
            (counts) and ``min``, ``max``, ``mean``, ``std`` of the finite values.
        """
        if features is None:
            features = [c for c in self.columns if _is_number(self.df.data_type(c))]
        names = self._feature_names(features, "describe")
        table = _derive.describe_chunks(names, self._chunks(names, FEATURE_CHUNK_ROWS, np.float64))
        _warn_all_nan(names, (table["rows"] > table["nan"]).to_numpy(), self)
        return table

    # ----------------------------------------------------------------- derived

    def derive(self, name, expression):
        """Add a derived (virtual) column ``name = expression``; returns ``self``.

        Example: ``cat.derive("g_j", "g - j")`` or ``cat.derive("w32",
        "log10(w3_flux / w2_flux)")``. Dividing by zero gives NaN (see
        :mod:`armillary.derive`). Deriving a name again replaces the earlier expression; a
        column of the file cannot be replaced. Derived columns cost no memory and serve as
        features and as plot axes.
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise CatalogueError(
                f"a derived column needs a Python identifier as its name, got {name!r}"
            )
        self._add_derived(name, expression)
        return self

    def restore_derived(self, name, expression):
        """Add a derived column as another catalogue recorded it (:attr:`derived`), e.g.
        from a run configuration; names as :meth:`combine` makes them (``"u-g"``) are
        accepted. Returns ``self``."""
        if not isinstance(name, str) or not name:
            raise CatalogueError(f"a derived column needs a name, got {name!r}")
        self._add_derived(name, expression)
        return self

    def _add_derived(self, name, expression, functions=None):
        if name in self.df.get_column_names(virtual=False):
            raise CatalogueError(
                f"{name!r} is a column of {self.source}; pick another name for the derived column"
            )
        for function_name, function in (functions or {}).items():
            self._functions[function_name] = function
            self.df.add_function(function_name, function, unique=False)
        self._check_expression(expression)
        safe = _derive.safe_division(expression)
        if safe != expression and _derive.SAFE_DIVIDE not in self._functions:
            self._functions[_derive.SAFE_DIVIDE] = _derive.safe_divide
            self.df.add_function(_derive.SAFE_DIVIDE, _derive.safe_divide, unique=False)
        self.df.add_virtual_column(name, safe, unique=False)
        self._derived[name] = expression

    def combine(self, columns, op="subtract", n=2):
        """Add every ``n``-combination of ``columns`` under ``op``, as AstronomicAL did.

        Parameters
        ----------
        columns : sequence of str
            Numeric columns (or derived columns) to combine, in the order that names them.
        op : str
            ``"subtract"``, ``"add"``, ``"multiply"``, ``"divide"`` (or ``-``, ``+``,
            ``*``, ``/``), or a name given to :func:`register_combination`.
        n : int
            How many columns each combination takes.

        Returns
        -------
        list of str
            The names of the combinations (``["u-g", "u-r", "g-r"]``), in order; ones that
            already exist are kept as they are, as AstronomicAL kept them.
        """
        how = _derive.combination(op)
        names = [columns] if isinstance(columns, str) else list(columns)
        for name in names:
            self._check_numeric(name)
        made = []
        virtual = dict(self.df.virtual_columns)
        functions = {how.name: how.function} if how.function is not None else {}
        for combo in _derive.combinations(names, n):
            name = how.column_name(combo)
            if name not in self.df.get_column_names(hidden=True):
                operands = [_derive.operand(c, virtual) for c in combo]
                self._add_derived(name, how.expression(operands), functions)
            made.append(name)
        return made

    # ----------------------------------------------------------------- checks

    def _feature_names(self, columns, what):
        names = [columns] if isinstance(columns, str) else list(columns)
        if not names:
            raise CatalogueError(f"{what} needs at least one column or expression")
        for name in names:
            self._check_numeric(name)
        return names

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
                f"({self.source}); available columns: {listing(self.columns)}"
            ) from None
        except SyntaxError as exc:
            raise CatalogueError(
                f"{expression!r} is not a valid expression for catalogue {self.name!r}: {exc.msg}"
            ) from None

    def _check_numeric(self, expression):
        self._check_expression(expression)
        dtype = self.df.data_type(expression)
        if not _is_number(dtype):
            raise CatalogueError(
                f"column {expression!r} of {self.source} holds {dtype}, not "
                "numbers; features must be numeric columns or expressions"
            )


def _has_numbers(block):
    """Per column of a block: whether any value is not NaN."""
    return (
        (~np.isnan(block)).any(axis=0) if block.dtype.kind == "f" else np.ones(block.shape[1], bool)
    )


def _warn_all_nan(names, seen, catalogue):
    empty = [name for name, any_number in zip(names, seen, strict=True) if not any_number]
    if empty:
        warnings.warn(
            f"features {', '.join(map(repr, empty))} of catalogue "
            f"{catalogue.name!r} hold no number (every value is NaN); drop them "
            "or check the expression",
            AllNaNFeatureWarning,
            stacklevel=user_stacklevel(),
        )


def _size(nbytes):
    for unit in ("B", "KB", "MB", "GB"):
        if abs(nbytes) < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"  # pragma: no cover


def _stem(path):
    name = path.name
    if name.endswith(CACHE_SUFFIX):
        name = re.sub(r"(\.[0-9a-f]{8,16})?$", "", name[: -len(CACHE_SUFFIX)])
    return strip_suffix(name)


def _resolve_source(path):
    given = Path(path).expanduser()
    if not given.exists():
        raise CatalogueNotFoundError(
            f"catalogue file {given} does not exist (looked for {given.resolve()})"
        )
    if given.is_dir():
        raise CatalogueError(
            f"{given} is a directory, not a catalogue file; pass the path "
            "of a table such as a .fits file"
        )
    if not os.access(given, os.R_OK):
        raise CatalogueError(
            f"cannot read {given}: permission denied. Ask for read "
            "access, or copy the file somewhere you can read it"
        )
    return given.resolve()


def _variant(hdu, optimise):
    """The part of a cache's name that tells options apart (``.hdu-2.optimised``)."""
    parts = [] if hdu is None else ["hdu-" + re.sub(r"[^A-Za-z0-9_-]+", "_", str(hdu))]
    return "".join(f".{part}" for part in [*parts, *(["optimised"] if optimise else [])])


def _check_table(reader, where, id_column):
    if reader.nrows == 0:
        raise CatalogueError(f"{where} has no rows")
    if not reader.columns:
        raise CatalogueError(
            f"{where} has no column Armillary can read (numbers, booleans or strings)"
        )
    if id_column is None:
        return
    if id_column not in reader.columns:
        raise missing_id_column(id_column, where, reader.columns)
    kind = reader.columns[id_column].kind
    if not (kind == STR or kind.kind in "iu"):
        raise id_kind_error(id_column, where, kind)


def _convert(reader, cache, fingerprint, where, options):
    """Build ``cache`` from ``reader`` (closed at the end); print the optimisation report."""
    id_column, optimise, progress = options["id_column"], options["optimise"], options["progress"]
    try:
        _check_table(reader, where, id_column)
        attrs = {
            "armillary_fingerprint": fingerprint,
            "armillary_source": str(where),
            "armillary_cache_version": CACHE_VERSION,
            "armillary_format": reader.format,
            **{f"armillary_{k}": v for k, v in reader.meta.items()},
        }
        try:
            report = build_cache(
                reader, cache, attrs, id_column, optimise, progress, options["label"], where
            )
        except OSError as exc:
            raise CatalogueError(
                f"cannot write the cache of {where} at {cache} ({exc}); "
                "pass cache_dir= a writable folder"
            ) from exc
    finally:
        reader.close()
    if report is not None and progress:
        import sys

        from tqdm.auto import tqdm

        saved = report["bytes_before"] - report["bytes_after"]
        tqdm.write(
            f"{options['label']}: optimise=True stores {_size(report['bytes_after'])} "
            f"instead of {_size(report['bytes_before'])}, saving {_size(saved)}",
            file=sys.stderr,
        )


def _finish(source, cache, fingerprint, attrs, id_column, name=None):
    catalogue = Catalogue(source, open_vaex(cache), cache, fingerprint, id_column, name)
    catalogue.format = attrs.get("armillary_format")
    if "armillary_bytes_before" in attrs:
        before, after = int(attrs["armillary_bytes_before"]), int(attrs["armillary_bytes_after"])
        import ast

        catalogue.optimisation = {
            "bytes_before": before,
            "bytes_after": after,
            "bytes_saved": before - after,
            "changes": ast.literal_eval(attrs["armillary_changes"]),
        }
    if id_column is not None and "/" not in id_column:
        catalogue._index = stored_index(cache, id_column)
    catalogue._check_ids()
    return catalogue


def _current(cache, fingerprint):
    attrs = cache_attrs(cache) if cache.exists() else None
    ok = attrs is not None and attrs.get("armillary_fingerprint") == fingerprint
    return attrs if ok else None


def _open_file(path, cache_dir, hdu, format, options):
    source = _resolve_source(path)
    if source.name.lower().endswith((".hdf5", ".h5")) and hdu is None:
        attrs = cache_attrs(source)  # a cache of ours: open it as it is
        if attrs and attrs.get("armillary_cache_version") == CACHE_VERSION:
            return _finish(
                source, source, str(attrs.get("armillary_fingerprint")), attrs, options["id_column"]
            )
    settings = f"hdu={hdu!r}|format={format!r}|optimise={options['optimise']}"
    fingerprint = file_fingerprint(source, settings)
    cache = cache_path(source, cache_dir, _variant(hdu, options["optimise"]))
    attrs = _current(cache, fingerprint)
    if attrs is None:
        _convert(
            reader_for(source, hdu, format),
            cache,
            fingerprint,
            source,
            {**options, "label": source.name},
        )
        attrs = cache_attrs(cache)
    return _finish(source, cache, fingerprint, attrs, options["id_column"])


def _open_table(table, cache_dir, hdu, name, options):
    if name is not None and not re.fullmatch(r"[\w][\w.-]*", str(name)):
        raise ValueError(f"name must be a plain file-name-like str, got {name!r}")
    reader = reader_for(table, hdu)
    label = name or "table"
    where = f"{type(table).__name__} {label!r}"
    fingerprint = content_fingerprint(reader, f"optimise={options['optimise']}")
    folder, _ = cache_folder(cache_dir)
    cache = (
        folder / f"{label}{_variant(None, options['optimise'])}.{fingerprint[:16]}{CACHE_SUFFIX}"
    )
    attrs = _current(cache, fingerprint)
    if attrs is None:
        _convert(reader, cache, fingerprint, where, {**options, "label": label})
        attrs = cache_attrs(cache)
    else:
        reader.close()
    return _finish(cache, cache, fingerprint, attrs, options["id_column"], label)


def open_catalogue(
    path,
    id_column="ID",
    cache_dir=None,
    *,
    hdu=None,
    format=None,
    optimise=False,
    progress=True,
    name=None,
):
    """Open a table as a :class:`Catalogue`, converting it to a cache on first use.

    Parameters
    ----------
    path : str, os.PathLike, astropy.table.Table, pandas.DataFrame or numpy.ndarray
        A table file (FITS, VOTable, CSV/ECSV, Parquet, HDF5, Arrow/Feather; see
        :mod:`armillary.formats`), or a table in memory (a numpy array must be
        structured).
    id_column : str or None
        Column of unique ids (integers or strings); ``None`` uses row numbers 0..N-1,
        stable as long as the source is unchanged.
    cache_dir : str or os.PathLike, optional
        Folder for the cache; else ``$ARMILLARY_CACHE_DIR``, else beside ``path``, else
        the user's cache folder (see the module docstring).
    hdu : int or str, optional
        Which table of a file holding several: a FITS HDU (index or EXTNAME; default the
        first table), the path of a table in an HDF5 file in astropy's layout, or a
        VOTable TABLE (index or ID).
    format : str, optional
        The file's format when its suffix does not tell (``"fits"``, ``"votable"``,
        ``"csv"``, ``"ecsv"``, ``"parquet"``, ``"hdf5"``, ``"arrow"``).
    optimise : bool
        Store columns in smaller types, as AstronomicAL's option did: float64 -> float32
        (unless a value needs float64's range), integers in the smallest signed type
        holding their range, strings with at most 65,536 distinct values (and fewer than
        half the rows) as categories; never the id column. The bytes saved are printed
        (with ``progress``) and kept in :attr:`Catalogue.optimisation`. Arithmetic in
        derived expressions keeps the stored types, so a sum of small integers can wrap:
        use ``astype(x, 'float32')`` there.
    progress : bool
        Show a progress bar (tqdm.auto) while converting, if it takes over half a second.
    name : str, optional
        For a table in memory: its name (default ``"table"``), which names the cache.

    Returns
    -------
    Catalogue

    Raises
    ------
    CatalogueNotFoundError
        ``path`` does not exist.
    CatalogueError
        ``path`` is a folder, unreadable, an unsupported format, not a readable table
        (truncated, corrupt), has no rows; ``hdu`` is not a table; the cache cannot be
        written.
    ColumnNotFoundError
        ``id_column`` is not a column of the table.
    DuplicateIdError
        ``id_column`` holds an id more than once.
    """
    options = {"id_column": id_column, "optimise": bool(optimise), "progress": progress}
    if isinstance(path, (str, os.PathLike)):
        if name is not None:
            raise ValueError("name= names a table in memory; a file is named by its path")
        return _open_file(path, cache_dir, hdu, format, options)
    if format is not None:
        raise ValueError("format= applies to files; a table in memory has none")
    return _open_table(path, cache_dir, hdu, name, options)
