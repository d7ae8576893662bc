"""The cache behind :func:`armillary.open_catalogue`: where it lives, when it is fresh, and
how a reader's table is written into it.

:func:`build_cache` makes (at most) two passes over a reader's chunks: a scan of the columns
whose size or type only the data can tell (strings, possible nulls, a stream's row count,
everything when optimising), then the conversion. The cache is an HDF5 file in vaex's
layout whose datasets are allocated up front (contiguous, never filled) and then written
with plain file writes at their offsets, so the conversion runs at disk speed with a few
chunks in memory. The id column's keys are spooled to a scratch file meanwhile and sorted
into the id index a group at a time (:func:`armillary._ids.sorted_runs`). The file is
written under a temporary name, fsynced once and renamed when complete; its writeback to
disk is started as it is written (:class:`_Writer`), so that the fsync has little left
to wait for. The source is read and decoded in a thread of its own, a few chunks ahead
of the writes (:func:`armillary._chunks.prefetched`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from armillary._chunks import prefetched
from armillary._ids import IdIndex, KeySpool, fnv1a, remove_side_indexes, sorted_runs
from armillary.errors import CatalogueError
from armillary.formats import STR, Strings

CACHE_VERSION = 2
"""Bumped when the cache layout changes; older caches are rebuilt."""
CACHE_SUFFIX = ".armillary.hdf5"
ENV_CACHE_DIR = "ARMILLARY_CACHE_DIR"
CHUNK_ROWS = 262_144
_AHEAD = 2  # chunks the reader's thread makes ahead of the writer
_HEAD_BYTES = 1 << 16
_PROGRESS_DELAY = 0.5  # seconds before a progress bar shows
_MAX_CATEGORIES = 1 << 16


# --------------------------------------------------------------------------- where


def user_cache_dir():
    """The user's cache folder for Armillary (XDG on Linux, the platform's elsewhere)."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "armillary"
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
        return Path(base) / "armillary" / "Cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "armillary"


def writable(folder):
    """Whether a file can be created in ``folder`` (tried, so it also holds for root)."""
    try:
        handle, name = tempfile.mkstemp(prefix=".armillary-probe-", dir=folder)
    except OSError:
        return False
    os.close(handle)
    os.unlink(name)
    return True


def cache_folder(cache_dir, beside=None):
    """The folder for a cache and whether it is ``beside`` the source.

    ``cache_dir``, else ``$ARMILLARY_CACHE_DIR``, else ``beside`` (the source's folder) if
    it is writable, else :func:`user_cache_dir`.
    """
    chosen = cache_dir if cache_dir is not None else os.environ.get(ENV_CACHE_DIR) or None
    if chosen is None and beside is not None and writable(beside):
        return Path(beside), True
    folder = Path(chosen).expanduser() if chosen is not None else user_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CatalogueError(
            f"cannot create the cache folder {folder} ({exc}); pass cache_dir= a writable folder"
        ) from exc
    if not writable(folder):
        where = (
            "cache_dir"
            if cache_dir is not None
            else ENV_CACHE_DIR
            if chosen
            else "the user cache folder"
        )
        raise CatalogueError(
            f"cannot write to {folder} ({where}); pass cache_dir= a writable folder"
        )
    return folder, False


def cache_path(source, cache_dir, variant=""):
    """Where the cache of the file ``source`` lives (see :mod:`armillary.catalogue`).

    A cache already beside the source is used without probing the folder for writing.
    """
    here = source.with_name(f"{source.name}{variant}{CACHE_SUFFIX}")
    if cache_dir is None and not os.environ.get(ENV_CACHE_DIR) and here.exists():
        return here
    folder, beside = cache_folder(cache_dir, source.parent)
    if beside:
        return here
    tag = hashlib.sha256(str(source).encode()).hexdigest()[:8]
    return folder / f"{source.name}{variant}.{tag}{CACHE_SUFFIX}"


# --------------------------------------------------------------------------- fresh


def file_fingerprint(path, options=""):
    """Hex digest of the resolved path, size, mtime (ns), first and last 64 KiB of the
    file (its header, and a Parquet or Arrow footer), the cache version and ``options``."""
    try:
        stat = path.stat()
        digest = hashlib.blake2b(digest_size=12)
        digest.update(
            f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{CACHE_VERSION}|{options}".encode()
        )
        with open(path, "rb") as handle:
            digest.update(handle.read(_HEAD_BYTES))
            if stat.st_size > _HEAD_BYTES:
                handle.seek(max(_HEAD_BYTES, stat.st_size - _HEAD_BYTES))
                digest.update(handle.read(_HEAD_BYTES))
    except PermissionError as exc:
        raise CatalogueError(
            f"cannot read {path}: permission denied. Ask for read access, "
            "or copy the file somewhere you can read it"
        ) from exc
    except OSError as exc:
        raise CatalogueError(f"cannot read {path} ({exc})") from exc
    return digest.hexdigest()


def content_fingerprint(reader, options=""):
    """Hex digest of an in-memory table's column names, kinds and every value."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{CACHE_VERSION}|{options}|{reader.format}|".encode())
    for name, column in reader.columns.items():
        digest.update(f"{name}:{column.kind}:{column.unit}|".encode())
    for chunk in reader.chunks(chunk_rows=CHUNK_ROWS):
        for values in chunk.values():
            if isinstance(values, Strings):
                digest.update(values.lengths)
                digest.update(np.ascontiguousarray(values.data))
            else:
                digest.update(np.ascontiguousarray(np.ma.getdata(values)))
                digest.update(np.ascontiguousarray(np.ma.getmaskarray(values)))
    return digest.hexdigest()


def cache_attrs(cache):
    """The root attributes of a cache file, or None if it cannot be read as one."""
    import h5py

    try:
        with h5py.File(cache, "r") as h5:
            return dict(h5.attrs) if "table" in h5 else None
    except OSError:
        return None


def cache_is_current(cache, fingerprint):
    """Whether ``cache`` exists, reads, and was built from the source of ``fingerprint``."""
    attrs = cache_attrs(cache) if cache.exists() else None
    return attrs is not None and attrs.get("armillary_fingerprint") == fingerprint


# --------------------------------------------------------------------------- plan


@dataclass
class _Plan:
    """What the scan found: row count, and per column its stored kind, mask and size."""

    nrows: int
    kinds: dict  # name -> numpy dtype, STR, or a list of category labels
    masked: dict = field(default_factory=dict)
    string_bytes: dict = field(default_factory=dict)
    changes: dict = field(default_factory=dict)  # name -> "float64 -> float32"


@dataclass
class _Stats:
    rows: int = 0
    nbytes: int = 0
    nulls: bool = False
    lo: object = None
    hi: object = None
    narrow_ok: bool = True
    distinct: set | None = field(default_factory=set)


def _needs_scan(reader, name, optimise):
    column = reader.columns[name]
    return column.kind == STR or column.masked is None or optimise


def _scan(reader, names, optimise, bar):
    """One pass over ``names``: rows, string bytes, nulls, ranges, distinct strings."""
    stats = {name: _Stats() for name in names}
    if not names and reader.nrows is None:
        names = [next(iter(reader.columns))]
        stats = {names[0]: _Stats()}
    for chunk in reader.chunks(names, CHUNK_ROWS):
        for name, values in chunk.items():
            _observe(stats[name], values, optimise)
        bar.update(len(next(iter(chunk.values()))))
    return stats


def _observe(stat, values, optimise):
    stat.rows += len(values)
    if isinstance(values, Strings):
        stat.nbytes += int(values.lengths.sum())
        if optimise and stat.distinct is not None:
            import pyarrow.compute as pc

            stat.distinct.update(pc.unique(values.to_arrow()).to_pylist())
            if len(stat.distinct) > _MAX_CATEGORIES:
                stat.distinct = None
        return
    mask = np.ma.getmaskarray(values)
    stat.nulls |= bool(mask.any())
    if not optimise or values.dtype.kind not in "iuf":
        return
    data = np.ma.getdata(values)[~mask] if mask.any() else np.ma.getdata(values)
    if data.dtype.kind == "f":
        finite = np.abs(data[np.isfinite(data)])
        big = finite.max(initial=0.0) > np.finfo(np.float32).max
        tiny = finite[finite > 0].min(initial=1.0) < np.finfo(np.float32).tiny
        stat.narrow_ok &= not (big or tiny)
    elif data.size:
        lo, hi = data.min(), data.max()
        stat.lo = lo if stat.lo is None else min(stat.lo, lo)
        stat.hi = hi if stat.hi is None else max(stat.hi, hi)


def _narrow(kind, stat, nrows, is_id):
    """The kind ``optimise=True`` stores a column as (see :func:`open_catalogue`)."""
    if is_id:
        return kind
    if kind == STR:
        labels = stat.distinct
        if labels is not None and 0 < len(labels) <= max(nrows // 2, 1):
            return sorted(labels)
        return kind
    if kind.kind == "f" and kind.itemsize == 8 and stat.narrow_ok:
        return np.dtype(np.float32)
    if kind.kind in "iu" and stat.lo is not None:
        for small in (np.int8, np.int16, np.int32, np.int64):
            info = np.iinfo(small)
            if info.min <= stat.lo and stat.hi <= info.max:
                return np.dtype(small) if np.dtype(small).itemsize < kind.itemsize else kind
    return kind


def plan(reader, id_column, optimise, bar_factory):
    """Scan what must be scanned and settle how every column is stored."""
    names = [n for n in reader.columns if _needs_scan(reader, n, optimise)]
    stats = {}
    if names or reader.nrows is None:
        with bar_factory("Scanning", reader.nrows) as bar:
            stats = _scan(reader, names, optimise, bar)
    nrows = reader.nrows if reader.nrows is not None else next(iter(stats.values())).rows
    result = _Plan(nrows, {})
    for name, column in reader.columns.items():
        stat = stats.get(name, _Stats())
        kind = _narrow(column.kind, stat, nrows, name == id_column) if optimise else column.kind
        result.kinds[name] = kind
        result.masked[name] = bool(stat.nulls) if column.masked is None else bool(column.masked)
        if column.kind == STR:
            result.string_bytes[name] = stat.nbytes
        if isinstance(kind, list) or kind != column.kind:
            result.changes[name] = f"{_kind_name(column.kind)} -> {_kind_name(kind)}"
    return result


def _kind_name(kind):
    return "category" if isinstance(kind, list) else "string" if kind == STR else str(kind)


def stored_bytes(plan, kinds=None):
    """Bytes the columns take in the cache with ``kinds`` (default: the plan's)."""
    total = 0
    for name, kind in (kinds or plan.kinds).items():
        mask = plan.nrows if plan.masked.get(name) else 0
        if isinstance(kind, list):
            labels = sum(len(label.encode()) for label in kind)
            total += plan.nrows * _code_dtype(kind).itemsize + labels + 8 * (len(kind) + 1)
        elif kind == STR:
            total += plan.string_bytes.get(name, 0) + 8 * (plan.nrows + 1)
        else:
            total += plan.nrows * kind.itemsize + mask
    return total


def _code_dtype(labels):
    return np.dtype(np.uint8 if len(labels) <= 256 else np.uint16)


# --------------------------------------------------------------------------- write


def _dcpl():
    import h5py

    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # offsets known now
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)  # no zeros written first
    return dcpl


def _dataset(group, name, shape, dtype):
    """An allocated dataset; its (offset, dtype), offset None when it is empty."""
    data = group.create_dataset(name, shape=shape, dtype=dtype, dcpl=_dcpl(), track_times=False)
    return data, (data.id.get_offset(), np.dtype(dtype))


def _layout(h5, reader, the_plan, id_column):
    """Create every dataset of the cache; {name: {part: (offset, dtype)}}."""
    table = h5.require_group("table")
    table.attrs["type"] = "table"
    columns = table.require_group("columns")
    columns.attrs["column_order"] = ",".join(reader.columns)
    n, where = the_plan.nrows, {}
    for name, kind in the_plan.kinds.items():
        group, spec, parts = columns.require_group(name), reader.columns[name], {}
        for key, value in (("unit", spec.unit), ("description", spec.description)):
            if value:
                group.attrs[key] = value
        if isinstance(kind, list):
            group.attrs["type"] = "dictionary_encoded"
            _, parts["codes"] = _dataset(
                group.require_group("indices"), "data", (n,), _code_dtype(kind)
            )
            _write_labels(group.require_group("dictionary"), kind)
        elif kind == STR:
            data, parts["bytes"] = _dataset(group, "data", (the_plan.string_bytes[name],), "S1")
            data.attrs["dtype"] = "str"
            _, parts["offsets"] = _dataset(group, "indices", (n + 1,), np.int64)
        else:
            _, parts["data"] = _dataset(group, "data", (n,), kind)
            if the_plan.masked[name]:
                _, parts["mask"] = _dataset(group, "mask", (n,), bool)
        where[name] = parts
    if id_column is not None:
        group = h5.require_group(f"armillary_index/{id_column}")
        key_dtype = np.uint64 if the_plan.kinds[id_column] == STR else the_plan.kinds[id_column]
        where["__keys__"] = _dataset(group, "keys", (n,), key_dtype)[1]
        where["__order__"] = _dataset(group, "order", (n,), np.int64)[1]
    return where


def _write_labels(group, labels):
    encoded = [label.encode() for label in labels]
    data = group.create_dataset(
        "data", data=np.frombuffer(b"".join(encoded) or b"", "S1"), track_times=False
    )
    data.attrs["dtype"] = "str"
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)
    group.create_dataset("indices", data=offsets, track_times=False)


class _Writer:
    """Plain writes of arrays at (dataset offset + element offset) in an open file.

    The file's blocks are allocated first where the OS can do that cheaply (Linux), so
    that the writes fill allocated space instead of each asking the file system for
    room, and the ``fsync`` before the rename has no allocation left to make. Every
    :data:`_WRITEBACK_BYTES` written, the OS is asked to start writing the file's dirty
    pages to disk without waiting for them (Linux's ``sync_file_range``), so that the
    disk works while the conversion goes on and the ``fsync`` at the end finds little
    left to write; the ``fsync`` still makes the whole file durable.
    """

    def __init__(self, handle):
        self.handle = handle
        _allocate(handle)
        self._writeback = _writeback_starter()
        self._dirty = 0

    def put(self, part, first, array):
        offset, dtype = part
        if offset is None or not array.size:
            return
        array = np.ascontiguousarray(array)
        if dtype.kind == "S":  # string bytes: as they are
            array = array.view(np.uint8)
        elif array.dtype != dtype:
            array = array.astype(dtype)
        data = memoryview(array).cast("B")
        _write_at(self.handle, offset + first * dtype.itemsize, data)
        self._dirty += data.nbytes
        if self._dirty >= _WRITEBACK_BYTES and self._writeback is not None:
            self._writeback(self.handle.fileno())
            self._dirty = 0


_WRITEBACK_BYTES = 1 << 25
"""Bytes written between two requests to start writing the file back to disk."""


def _write_at(handle, position, data):
    """Write all of ``data`` (a byte memoryview) at ``position`` of the file ``handle``
    (a single write may take fewer bytes than given); what a buffered ``handle`` holds
    is written first."""
    handle.flush()
    done = 0
    if hasattr(os, "pwrite"):
        while done < data.nbytes:
            done += os.pwrite(handle.fileno(), data[done:], position + done)
        return
    handle.seek(position)
    while done < data.nbytes:
        done += handle.write(data[done:])


@functools.cache
def _writeback_starter():
    """``start(fd)``: have the OS start writing a file's dirty pages to disk, not waiting
    for them (``sync_file_range(SYNC_FILE_RANGE_WRITE)``); None where that is missing."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int

    def start(fd):
        call(fd, 0, 0, 2)  # SYNC_FILE_RANGE_WRITE, the whole file; a failure changes nothing

    return start


def _allocate(handle):
    """Allocate the blocks of the whole file with Linux's ``fallocate`` (a no-op where it
    is missing or unsupported; ``posix_fallocate`` would fall back to writing zeros)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        call = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    call(handle.fileno(), 0, 0, os.fstat(handle.fileno()).st_size)  # failure: writes allocate


def _write_chunk(writer, where, the_plan, chunk, start, cursor):
    """Write one chunk of every column; ``cursor`` holds each string column's byte count."""
    for name, values in chunk.items():
        kind, parts = the_plan.kinds[name], where[name]
        if isinstance(kind, list):
            import pyarrow as pa
            import pyarrow.compute as pc

            codes = pc.index_in(values.to_arrow(), value_set=pa.array(kind, pa.large_string()))
            writer.put(parts["codes"], start, codes.to_numpy(zero_copy_only=False))
        elif kind == STR:
            writer.put(parts["bytes"], cursor[name], values.data)
            ends = cursor[name] + np.cumsum(values.lengths)
            writer.put(parts["offsets"], start + 1, ends)
            cursor[name] += int(values.data.size)
        elif not np.ma.isMaskedArray(values):
            writer.put(parts["data"], start, values)
            if "mask" in parts:
                writer.put(parts["mask"], start, np.zeros(len(values), bool))
        else:
            mask = np.ma.getmaskarray(values)
            writer.put(parts["data"], start, np.where(mask, 0, np.ma.getdata(values)))
            if "mask" in parts:
                writer.put(parts["mask"], start, mask)


def _convert(reader, where, the_plan, id_column, writer, spool, bar):
    """The conversion pass; the id column's keys (if any) go to ``spool``."""
    cursor = {name: 0 for name, kind in the_plan.kinds.items() if kind == STR}
    for name in cursor:
        writer.put(where[name]["offsets"], 0, np.zeros(1, np.int64))
    start = 0
    # the reader may reuse a chunk's arrays once the writer is done with it: it runs at
    # most _AHEAD chunks (queued) + 1 (being made) ahead of the chunk being written
    recycle = {"recycle": _AHEAD + 2} if getattr(reader, "recycles", False) else {}
    chunks = reader.chunks(chunk_rows=CHUNK_ROWS, **recycle)
    for chunk in prefetched(chunks, depth=_AHEAD):
        size = len(next(iter(chunk.values())))
        if start + size > the_plan.nrows:
            raise CatalogueError("the table grew while it was being read")
        if spool is not None:
            values = chunk[id_column]
            spool.append(fnv1a(values) if isinstance(values, Strings) else np.ma.getdata(values))
        _write_chunk(writer, where, the_plan, chunk, start, cursor)
        start += size
        bar.update(size)
    if start != the_plan.nrows:
        raise CatalogueError(
            f"the table has {start:,} rows where {the_plan.nrows:,} were "
            "announced; is the file complete, and unchanged while read?"
        )


def _write_index(writer, where, spool):
    """Sort the spooled keys and write them and their rows; True if no key repeats."""
    unique, last = True, None
    for first, keys, rows in sorted_runs(spool):
        repeats = np.any(keys[1:] == keys[:-1]) or (last is not None and last == keys[0])
        unique &= not repeats
        writer.put(where["__keys__"], first, keys)
        writer.put(where["__order__"], first, rows)
        last = keys[-1]
        del keys, rows  # freed before the next group is gathered
    return bool(unique)


def _bars(label, progress):
    """A factory of tqdm.auto progress bars (shown after :data:`_PROGRESS_DELAY` s)."""
    from tqdm.auto import tqdm

    def make(step, total):
        return tqdm(
            total=total,
            desc=f"{step} {label}",
            unit="rows",
            unit_scale=True,
            delay=_PROGRESS_DELAY,
            disable=not progress,
            leave=step == "Converting",
        )

    return make


def _fsync(path, directory=False):
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        handle = os.open(path, flags)
    except OSError:  # some systems cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def build_cache(
    reader, cache, attrs, id_column=None, optimise=False, progress=True, label="", where=""
):
    """Convert ``reader``'s table into the cache file ``cache``.

    Parameters
    ----------
    reader : reader of :mod:`armillary.formats`
    cache : pathlib.Path
    attrs : dict
        Root attributes (fingerprint, source, ...).
    id_column : str or None
        Column whose sorted id index is stored in ``/armillary_index/<id_column>``.
    optimise : bool
        Store columns in smaller types (see :func:`armillary.open_catalogue`).
    progress : bool
        Show tqdm.auto progress bars (and the optimisation report).
    label : str
        Name of the table in the bars.
    where : str or pathlib.Path
        The table's source, for messages.

    Returns
    -------
    dict or None
        With ``optimise``: ``bytes_before``, ``bytes_after`` and ``changes``.
    """
    import h5py

    bars = _bars(label or cache.name, progress)
    the_plan = plan(reader, id_column, optimise, bars)
    if the_plan.nrows == 0:
        raise CatalogueError(f"{where or label} has no rows")
    report = (
        None
        if not optimise
        else {
            "bytes_before": stored_bytes(the_plan, {n: c.kind for n, c in reader.columns.items()}),
            "bytes_after": stored_bytes(the_plan),
            "changes": the_plan.changes,
        }
    )
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    spool = None
    try:
        with h5py.File(tmp, "w") as h5:
            h5.attrs.update(attrs)
            where = _layout(h5, reader, the_plan, id_column)
        with open(tmp, "r+b", buffering=0) as handle, bars("Converting", the_plan.nrows) as bar:
            writer = _Writer(handle)
            if id_column is not None:
                spool = KeySpool(tmp.with_name(f"{tmp.name}.keys"), where["__keys__"][1])
            try:
                _convert(reader, where, the_plan, id_column, writer, spool, bar)
                unique = None if spool is None else _write_index(writer, where, spool)
            finally:
                if spool is not None:
                    spool.close()
        if unique is not None or report is not None:
            with h5py.File(tmp, "r+") as h5:
                if unique is not None:
                    h5[f"armillary_index/{id_column}"].attrs["unique"] = unique
                if report is not None:
                    h5.attrs["armillary_bytes_before"] = report["bytes_before"]
                    h5.attrs["armillary_bytes_after"] = report["bytes_after"]
                    h5.attrs["armillary_changes"] = repr(report["changes"])
        _fsync(tmp)
        os.replace(tmp, cache)
        _fsync(cache.parent, directory=True)
        remove_side_indexes(cache)
    finally:
        tmp.unlink(missing_ok=True)
    return report


def stored_index(cache, id_column):
    """The id index saved in ``cache`` for ``id_column``, memory-mapped; None if absent."""
    import h5py

    with h5py.File(cache, "r") as h5:
        group = h5.get(f"armillary_index/{id_column}")
        if not isinstance(group, h5py.Group) or "keys" not in group or "order" not in group:
            return None
        unique = group.attrs.get("unique")
        arrays = []
        for ds in (group["keys"], group["order"]):
            offset = ds.id.get_offset()
            arrays.append(
                np.zeros(0, ds.dtype)
                if offset is None
                else np.memmap(cache, dtype=ds.dtype, mode="r", shape=ds.shape, offset=offset)
            )
    return IdIndex(*arrays, unique=None if unique is None else bool(unique))


def open_vaex(cache):
    """The cache as a memory-mapped vaex DataFrame."""
    import vaex

    try:
        return vaex.open(str(cache))
    except Exception as exc:  # a cache we cannot open is a bug or a disk problem
        raise CatalogueError(
            f"cannot open the catalogue cache {cache} ({exc}); delete it "
            "and open the catalogue again"
        ) from exc
