"""Table readers and the cache writer behind :func:`armillary.catalogue.open_catalogue`.

A reader (:func:`_reader_for`) reads a FITS table, or any file vaex opens, in row chunks as
native-endian numbers and UTF-8 strings (:class:`_Strings`); :func:`_build_cache` writes those
chunks into an HDF5 cache in vaex's layout, with the sorted id index (:class:`_IdIndex`)
beside the table. Where the cache lives, when it is rebuilt and what it holds are described
in the docstring of :mod:`armillary.catalogue`.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from armillary.errors import CatalogueError

CACHE_VERSION = 1
"""Bumped when the cache layout changes; older caches are rebuilt."""
_CACHE_SUFFIX = ".armillary.hdf5"
_CHUNK_ROWS = 262_144
_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
_VAEX_SUFFIXES = (".hdf5", ".h5", ".parquet", ".arrow", ".feather", ".csv")


# --------------------------------------------------------------------------- readers


class _Strings:
    """A chunk of strings as UTF-8 bytes: ``lengths`` (int64) and concatenated ``data``."""

    def __init__(self, lengths, data):
        self.lengths = lengths
        self.data = data

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
        """From a pyarrow (large_)string array (or a sequence of str); nulls become ""."""
        import pyarrow as pa

        if not isinstance(array, (pa.Array, pa.ChunkedArray)):
            array = pa.array(list(array), type=pa.large_string())
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        array = array.cast(pa.large_string()).fill_null("")
        offsets = np.frombuffer(array.buffers()[1], np.int64)
        offsets = offsets[array.offset : array.offset + len(array) + 1]
        data = np.frombuffer(array.buffers()[2] or b"", np.uint8)[offsets[0] : offsets[-1]]
        return cls(np.diff(offsets), data)


def _warn_skipped(path, skipped):
    if skipped:
        warnings.warn(f"{path}: columns {', '.join(skipped)} are not scalar numbers or "
                      "strings and were left out of the catalogue", stacklevel=4)


class _FitsReader:
    """The first table HDU of a FITS file, read in row chunks through astropy's memmap."""

    format = "fits"

    def __init__(self, path):
        from astropy.io import fits

        self.path = path
        try:  # astropy also warns of what it finds odd ("File may have been truncated")
            self._hdul = fits.open(path, memmap=True, mode="readonly")
            hdu_index = next((k for k, hdu in enumerate(self._hdul)
                              if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU))), None)
            if hdu_index is None:
                raise CatalogueError(f"{path} holds no table HDU: a catalogue must be a FITS "
                                     "binary or ASCII table")
            hdu = self._hdul[hdu_index]
            self._data = hdu.data
            self._raw = None if self._data is None else self._data.view(np.ndarray)
            self.nrows = 0 if self._data is None else len(self._data)
            self.meta = {"hdu": hdu_index}
            self.columns, self.units, self.descriptions = self._scan(hdu)
            if self.nrows:
                self.read(self.nrows - 1, self.nrows)  # fails now on a truncated file
        except CatalogueError:
            self.close()
            raise
        except Exception as exc:  # astropy raises OSError, ValueError, TypeError, ...
            self.close()
            raise CatalogueError(f"cannot read {path} as a FITS table ({exc}); is it a "
                                 "complete FITS file?") from exc

    def _scan(self, hdu):
        columns, units, descriptions, skipped = {}, {}, {}, []
        first = self._data[:1] if self._data is not None else None
        for k, col in enumerate(hdu.columns, start=1):
            raw = self._data.dtype[col.name] if self._data is not None else None
            # the dtype after astropy's scaling (TZERO, TSCAL) and 'L' -> bool
            dtype = raw if raw is None or raw.kind == "S" else first.field(col.name).dtype
            kind = getattr(dtype, "kind", None)
            if dtype is None or raw.shape or kind not in "biufS" or "P" in str(col.format) \
                    or "Q" in str(col.format):
                skipped.append(col.name)
                continue
            columns[col.name] = "str" if kind == "S" else np.dtype(dtype).newbyteorder("=")
            if col.unit:
                units[col.name] = str(col.unit)
            comment = hdu.header.comments[f"TTYPE{k}"]
            if comment:
                descriptions[col.name] = comment
        _warn_skipped(self.path, skipped)
        return columns, units, descriptions

    def read(self, start, stop, names=None):
        """Columns ``names`` (default all) of rows [start, stop), native-endian."""
        rows = self._data[start:stop]
        out = {}
        for name in self.columns if names is None else names:
            if self.columns[name] == "str":  # raw bytes: astropy would decode to unicode
                out[name] = _Strings.from_fixed(self._raw[name][start:stop])
            else:  # astropy applies TSCAL/TZERO and turns 'L' into bool
                values = np.asarray(rows.field(name))
                out[name] = values.astype(self.columns[name], copy=False)
        return out

    def close(self):
        hdul = getattr(self, "_hdul", None)
        if hdul is not None:
            hdul.close()


class _VaexReader:
    """Any file vaex opens by itself (HDF5, Parquet, Arrow, CSV), read in row chunks."""

    format = "vaex"

    def __init__(self, path):
        import vaex

        self.path = path
        try:
            self._df = vaex.open(str(path))
        except Exception as exc:  # vaex raises many kinds for unreadable files
            raise CatalogueError(f"cannot read {path} ({exc}); is it a complete "
                                 f"{path.suffix.lstrip('.')} file?") from exc
        self.nrows = len(self._df)
        self.meta = {}
        self.units = {k: str(v) for k, v in self._df.units.items()}
        self.descriptions = dict(getattr(self._df, "descriptions", {}) or {})
        self.columns, skipped = {}, []
        for name in self._df.get_column_names(virtual=False):
            dtype = self._df.data_type(name)
            if dtype.is_string:
                self.columns[name] = "str"
            elif dtype.is_numeric or dtype.kind == "b":
                numpy_dtype = np.dtype(dtype.numpy).newbyteorder("=")
                if self._df.is_masked(name) and numpy_dtype.kind in "iub":
                    numpy_dtype = np.dtype(np.float64)  # nulls become NaN
                self.columns[name] = numpy_dtype
            else:
                skipped.append(name)
        _warn_skipped(path, skipped)

    def read(self, start, stop, names=None):
        """Columns ``names`` (default all) of rows [start, stop), native-endian."""
        names = list(self.columns if names is None else names)
        values = self._df.evaluate(names, start, stop)
        out = {}
        for name, value in zip(names, values, strict=True):
            if self.columns[name] == "str":
                out[name] = _Strings.from_arrow(value)
            else:
                value = np.ma.filled(value.astype(self.columns[name]), np.nan) \
                    if np.ma.isMaskedArray(value) else np.asarray(value)
                out[name] = value.astype(self.columns[name], copy=False)
        return out

    def close(self):
        self._df.close()


def _reader_for(path):
    lower = path.name.lower()
    if lower.endswith(_FITS_SUFFIXES):
        return _FitsReader(path)
    if lower.endswith(_VAEX_SUFFIXES):
        return _VaexReader(path)
    raise CatalogueError(f"{path}: unsupported catalogue format {path.suffix!r}; Armillary "
                         f"reads {', '.join(_FITS_SUFFIXES + _VAEX_SUFFIXES)}")


# --------------------------------------------------------------------------- cache


def _fingerprint(path):
    """Hex digest of the source's resolved path, size, mtime (ns) and the cache version."""
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{CACHE_VERSION}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def _default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "armillary"


def _cache_path(source, cache_dir):
    """Where the cache of ``source`` lives (see :mod:`armillary.catalogue`)."""
    if cache_dir is None and os.access(source.parent, os.W_OK):
        return source.with_name(source.name + _CACHE_SUFFIX)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha256(str(source).encode()).hexdigest()[:8]
    return folder / f"{source.name}.{tag}{_CACHE_SUFFIX}"


def _cache_is_current(cache, fingerprint):
    import h5py

    try:
        with h5py.File(cache, "r") as h5:
            return h5.attrs.get("armillary_fingerprint") == fingerprint and "table" in h5
    except OSError:
        return False


def _build_cache(reader, cache, attrs, id_column):
    """Convert ``reader``'s table into ``cache`` (vaex HDF5 layout), chunk by chunk.

    The sorted id index of ``id_column`` (see :class:`_IdIndex`) is stored beside the table
    in ``/armillary_index/<id_column>``, so that a later open need not hash every id again.
    """
    import h5py

    n = reader.nrows
    keys = None if id_column is None else np.empty(
        n, np.uint64 if reader.columns[id_column] == "str" else reader.columns[id_column])
    strings = [name for name, kind in reader.columns.items() if kind == "str"]
    byte_counts = dict.fromkeys(strings, 0)
    for start in range(0, n, _CHUNK_ROWS) if strings else ():
        for name, chunk in reader.read(start, min(start + _CHUNK_ROWS, n), strings).items():
            byte_counts[name] += int(chunk.lengths.sum())
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as h5:
            h5.attrs.update(attrs)
            table = h5.require_group("table")
            table.attrs["type"] = "table"
            columns = table.require_group("columns")
            columns.attrs["column_order"] = ",".join(reader.columns)
            datasets = _create_datasets(columns, reader, n, byte_counts)
            offsets = dict.fromkeys(strings, 0)
            for start in range(0, n, _CHUNK_ROWS):
                stop = min(start + _CHUNK_ROWS, n)
                for name, chunk in reader.read(start, stop).items():
                    if name == id_column:
                        keys[start:stop] = _fnv1a(chunk) if isinstance(chunk, _Strings) \
                            else chunk
                    if isinstance(chunk, _Strings):
                        _write_strings(*datasets[name], chunk, start, offsets[name])
                        offsets[name] += chunk.data.size
                    else:
                        datasets[name][start:stop] = chunk
            if keys is not None:
                index = _IdIndex(keys)
                group = h5.require_group(f"armillary_index/{id_column}")
                group.create_dataset("keys", data=index.keys, track_times=False)
                group.create_dataset("order", data=index.order, track_times=False)
        os.replace(tmp, cache)
    finally:
        tmp.unlink(missing_ok=True)


def _create_datasets(columns, reader, n, byte_counts):
    datasets = {}
    for name, kind in reader.columns.items():
        group = columns.require_group(name)
        if name in reader.units:
            group.attrs["unit"] = reader.units[name]
        if name in reader.descriptions:
            group.attrs["description"] = reader.descriptions[name]
        if kind == "str":
            data = group.create_dataset("data", shape=(byte_counts[name],), dtype="S1",
                                        track_times=False)
            data.attrs["dtype"] = "str"
            indices = group.create_dataset("indices", shape=(n + 1,), dtype=np.int64,
                                           track_times=False)
            indices[0] = 0
            datasets[name] = (data, indices)
        else:
            datasets[name] = group.create_dataset("data", shape=(n,), dtype=kind,
                                                  track_times=False)
    return datasets


def _write_strings(data, indices, chunk, start, base):
    """Append one chunk of strings whose bytes start at ``base`` in ``data``."""
    indices[start + 1 : start + 1 + chunk.lengths.size] = base + np.cumsum(chunk.lengths)
    if chunk.data.size:
        data[base : base + chunk.data.size] = chunk.data.view("S1")


def _stored_index(cache, id_column):
    """The id index saved in ``cache`` for ``id_column``, memory-mapped; None if absent."""
    import h5py

    with h5py.File(cache, "r") as h5:
        group = h5.get(f"armillary_index/{id_column}")
        if not isinstance(group, h5py.Group) or "keys" not in group or "order" not in group:
            return None
        keys, order = (np.memmap(cache, dtype=ds.dtype, mode="r", shape=ds.shape,
                                 offset=ds.id.get_offset()) for ds in (group["keys"],
                                                                        group["order"]))
    return _IdIndex(keys, order)


def _open_vaex(cache):
    import vaex

    try:
        return vaex.open(str(cache))
    except Exception as exc:  # a cache we cannot open is a bug or a disk problem
        raise CatalogueError(f"cannot open the catalogue cache {cache} ({exc}); delete it "
                             "and open the catalogue again") from exc


# --------------------------------------------------------------------------- ids

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def _fnv1a(strings):
    """64-bit FNV-1a hash of each string of a :class:`_Strings`, one byte column a step."""
    lengths, data = strings.lengths, strings.data
    starts = np.cumsum(lengths) - lengths
    hashes = np.full(lengths.size, _FNV_OFFSET, np.uint64)
    for j in range(int(lengths.max(initial=0))):
        active = np.flatnonzero(lengths > j)
        byte = data[starts[active] + j].astype(np.uint64)
        hashes[active] = (hashes[active] ^ byte) * _FNV_PRIME
    return hashes



class _IdIndex:
    """Sorted keys (integer ids, or 64-bit hashes of string ids) and their row positions."""

    def __init__(self, keys, order=None):
        if order is None:  # keys in row order: sort them
            order = np.argsort(keys, kind="stable")
            keys = keys[order]
        self.keys = keys
        self.order = order

    def candidates(self, query_keys):
        """Position of the first row whose key equals each query key, -1 where none."""
        lo = np.searchsorted(self.keys, query_keys, side="left")
        hi = np.searchsorted(self.keys, query_keys, side="right")
        positions = self.order[np.minimum(lo, self.keys.size - 1)]
        return np.where(hi > lo, positions, -1), lo, hi

    def duplicate_pairs(self):
        """Row positions (a, b) of neighbouring equal keys."""
        same = np.flatnonzero(self.keys[1:] == self.keys[:-1])
        return self.order[same], self.order[same + 1]
