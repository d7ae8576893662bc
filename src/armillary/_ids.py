"""Row ids: the sorted id index and the hash of string ids.

A catalogue's ids are its id column's values (integers or strings) or its row numbers.
Lookups go through :class:`IdIndex`: the ids' keys (integer ids, or 64-bit FNV-1a hashes of
string ids, see :func:`fnv1a`) sorted, with the row of each. The cache stores the index of
the id column named when it was built, so a reopen need not hash ten million ids again;
the index of another id column is saved beside the cache on first use
(:func:`build_side_index`). Indexes are sorted from a :class:`KeySpool` a group of keys
at a time (:func:`sorted_runs`), so building one needs bounded memory.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import mmap
import os

import numpy as np

from armillary.formats import Strings

__all__ = [
    "IdIndex",
    "KeySpool",
    "as_integers",
    "build_side_index",
    "catalogue_identity",
    "fnv1a",
    "ids_at",
    "remove_side_indexes",
    "saved_side_index",
    "sorted_runs",
    "strings_of",
]

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def fnv1a(strings):
    """64-bit FNV-1a hash of each string of a :class:`~armillary.formats.Strings`."""
    lengths, data = strings.lengths, strings.data
    width = int(lengths.max(initial=0))
    hashes = np.full(lengths.size, _FNV_OFFSET, np.uint64)
    if lengths.size * width <= 4 * data.size + 4096:  # similar lengths: a padded matrix
        matrix = np.zeros((lengths.size, width), np.uint8)
        matrix[np.arange(width) < lengths[:, None]] = data
        for j in range(width):  # one byte column a step, the strings still going on
            step = (hashes ^ matrix[:, j]) * _FNV_PRIME
            hashes = np.where(lengths > j, step, hashes) if j >= lengths.min() else step
        return hashes
    starts = np.cumsum(lengths) - lengths
    for j in range(width):  # a few long strings: only those still going on
        active = np.flatnonzero(lengths > j)
        byte = data[starts[active] + j].astype(np.uint64)
        hashes[active] = (hashes[active] ^ byte) * _FNV_PRIME
    return hashes


_FENCE_STEP = 256  # keys between two entries of an index's fence (2 KiB of keys)
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux 5.14


class IdIndex:
    """Sorted keys (integer ids, or 64-bit hashes of string ids) and their row positions.

    Lookups sort the query keys and walk the index in order: a small in-memory fence
    (every :data:`_FENCE_STEP`-th key) picks each query's block, and a vectorised
    bisection finishes inside it, so a lookup touches only the blocks it needs, in file
    order, whether ``keys`` is in memory or memory-mapped from the cache.

    Parameters
    ----------
    keys : numpy.ndarray
        Keys in row order (``order`` None), or sorted (with ``order``).
    order : numpy.ndarray, optional
        Row of each sorted key.
    unique : bool, optional
        Whether the keys are known to hold no value twice (saved with the cache).
    """

    def __init__(self, keys, order=None, unique=None):
        if order is None:  # keys in row order: sort them
            order = np.argsort(keys, kind="stable")
            keys = keys[order]
        self.keys = keys
        self.order = order
        self.unique = unique
        self._fence = None
        self._populated = False

    def candidates(self, query_keys):
        """Position of the first row whose key equals each query key, -1 where none;
        and the range ``[lo, hi)`` of sorted keys equal to each query key."""
        return self._search(query_keys, bounds=True)

    def rows(self, query_keys):
        """Position of the first row whose key equals each query key, -1 where none
        (the first part of :meth:`candidates`, without the ranges)."""
        return self._search(query_keys, bounds=False)[0]

    def _search(self, query_keys, bounds):
        query_keys = np.asarray(query_keys)
        n = self.keys.size
        if n == 0 or query_keys.size == 0:
            empty = np.zeros(query_keys.shape, np.int64)
            return np.full(query_keys.shape, -1, np.int64), empty, empty
        if query_keys.size >= n >> 9:  # about a query per 4 KiB page of keys, or more
            self._populate()
        sort = np.argsort(query_keys)  # sorted queries walk the index in order
        queries = query_keys[sort]
        keys = np.asarray(self.keys)
        lo = self._first_at_least(keys, queries)
        at = np.minimum(lo, n - 1)
        hit = keys[at] == queries
        found = np.flatnonzero(hit)  # rows of the hits only: most queries of a pool hit
        rows = np.full(query_keys.shape, -1, np.int64)
        rows[sort[found]] = np.asarray(self.order[at[found]])
        if not bounds:
            return rows, None, None
        hi = lo + hit
        if not self.unique:  # a key held twice: find where its run ends
            after = np.minimum(lo + 1, n - 1)
            repeated = np.flatnonzero(hit & (lo + 1 < n) & (keys[after] == queries))
            if repeated.size:
                hi[repeated] = np.searchsorted(keys, queries[repeated], side="right")
        out = [np.empty(query_keys.shape, np.int64) for _ in range(2)]
        for result, value in zip(out, (lo, hi), strict=True):
            result[sort] = value
        return rows, *out

    def _populate(self):
        """Map every page of a memory-mapped index at once (Linux), before a lookup that
        touches most of them: far cheaper than a page fault for each in turn."""
        if self._populated:
            return
        self._populated = True
        for array in (self.keys, self.order):
            mapping = getattr(array, "_mmap", None)  # numpy.memmap's mmap.mmap
            if mapping is not None:
                try:
                    mapping.madvise(_MADV_POPULATE_READ)
                except (OSError, ValueError):  # an older kernel: fault pages in as used
                    return

    def _first_at_least(self, keys, queries):
        """``np.searchsorted(keys, queries)`` for sorted ``queries``, block by block."""
        n = keys.size
        if n <= 4 * _FENCE_STEP:
            return np.searchsorted(keys, queries)
        if self._fence is None:
            self._fence = np.array(keys[::_FENCE_STEP])
        index = np.int32 if n < 2**31 else np.int64
        block = np.searchsorted(self._fence, queries).astype(index) - 1  # fence key < query
        base = np.maximum(block, 0) * index(_FENCE_STEP)  # first key of each block
        size = _FENCE_STEP  # a branchless bisection of every block at once
        while size > 1:
            half = size // 2
            probe = base + index(half)
            base = np.where(keys[np.minimum(probe, n - 1)] < queries, probe, base)
            size -= half
        below = keys[np.minimum(base, n - 1)] < queries
        return np.minimum(base.astype(np.int64) + below, n)

    def duplicate_pairs(self):
        """Row positions (a, b) of neighbouring equal keys."""
        if self.unique:
            empty = np.zeros(0, np.int64)
            return empty, empty
        same = np.flatnonzero(self.keys[1:] == self.keys[:-1])
        return self.order[same], self.order[same + 1]


_SPOOL_ROWS = 1 << 18  # keys read back from a spool at a time (2 MiB)


class KeySpool:
    """Index keys in row order, spooled to a scratch file as they come, so that building
    an index needs memory for a group of keys (:func:`sorted_runs`), not for all.

    Parameters
    ----------
    path : pathlib.Path
        The scratch file (created; removed by :meth:`close`).
    dtype : numpy dtype
        The keys' type (uint64 hashes, or the integer id column's type).
    """

    def __init__(self, path, dtype):
        self.path = path
        self.dtype = np.dtype(dtype)
        self.size = 0
        self.lo = self.hi = None  # smallest and largest key, as ordinals (see _ordinal)
        self._handle = open(path, "w+b", buffering=0)  # noqa: SIM115 - closed in close()

    def append(self, keys):
        """Add the keys of the next rows."""
        keys = np.ascontiguousarray(keys, self.dtype)
        if not keys.size:
            return
        ordinals = _ordinal(keys)
        lo, hi = ordinals.min(), ordinals.max()
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)
        self._handle.write(memoryview(keys).cast("B"))
        self.size += keys.size

    def chunks(self, rows=None):
        """Yield ``(first row, keys)`` over the spooled keys (one buffer, reused)."""
        rows = rows or _SPOOL_ROWS
        buffer = np.empty(min(rows, self.size), self.dtype)
        self._handle.seek(0)
        for first in range(0, self.size, rows):
            part = buffer[: min(rows, self.size - first)]
            view, got = memoryview(part).cast("B"), 0
            while got < view.nbytes:
                n = self._handle.readinto(view[got:])
                if not n:
                    raise OSError(f"the scratch file {self.path} ends early")
                got += n
            yield first, part

    def close(self):
        """Close and remove the scratch file."""
        self._handle.close()
        self.path.unlink(missing_ok=True)


def _ordinal(keys):
    """Keys as uint64 in the same order (a signed key's sign bit flipped)."""
    if keys.dtype.kind == "i":
        return keys.astype(np.int64).view(np.uint64) ^ np.uint64(1 << 63)
    return keys.astype(np.uint64, copy=False)


_GROUP_ROWS = 1 << 23  # keys sorted at a time when an index is built (~270 MB)


def sorted_runs(spool, group_rows=None):
    """Yield ``(first, keys, rows)``: the spooled keys sorted (ties in row order) with
    their rows, as consecutive runs starting at sorted position ``first``.

    Keys are split by value into groups of about ``group_rows`` (a histogram of their
    leading bits, one pass), then each group is gathered (one pass each) and sorted on
    its own: memory is about 32 bytes a key of one group (270 MB), however many keys
    there are.
    A group holding one value very often (repeated ids) can be larger.
    """
    if not spool.size:
        return
    group_rows = _GROUP_ROWS if group_rows is None else group_rows
    lo = spool.lo
    shift = np.uint64(max(0, int(spool.hi - lo).bit_length() - 16))
    counts = np.zeros((int(spool.hi - lo) >> int(shift)) + 1, np.int64)
    if spool.size > group_rows:
        for _, part in spool.chunks():
            buckets = ((_ordinal(part) - lo) >> shift).astype(np.intp)
            counts += np.bincount(buckets, minlength=counts.size)
    starts = np.cumsum(counts) - counts  # sorted position of each bucket's first key
    group = starts // group_rows
    cuts = [0, *(np.flatnonzero(np.diff(group)) + 1).tolist(), counts.size]
    first = 0
    for b0, b1 in itertools.pairwise(cuts):
        size = spool.size if len(cuts) == 2 else int(counts[b0:b1].sum())
        keys, rows, filled = np.empty(size, spool.dtype), np.empty(size, np.int64), 0
        for start, part in spool.chunks():
            if len(cuts) == 2:  # one group: every key
                chosen = np.arange(part.size)
            else:
                bucket = _ordinal(part) - lo
                bucket >>= shift
                chosen = np.flatnonzero((bucket >= b0) & (bucket < b1))
            keys[filled : filled + chosen.size] = part[chosen]
            rows[filled : filled + chosen.size] = chosen + start
            filled += chosen.size
        order = np.argsort(keys, kind="stable")
        rows = rows[order]
        keys = keys[order]
        del order
        yield first, keys, rows
        first += keys.size
        del keys, rows  # before the next group's arrays exist


_SIDE_SUFFIX = ".index.npy"


def side_index_path(cache, id_column, fingerprint):
    """Where the index of another id column than the stored one is saved beside ``cache``:
    ``<cache name>.<8 hex of the column>.<8 hex of the fingerprint>.index.npy``."""
    column = hashlib.blake2b(id_column.encode(), digest_size=4).hexdigest()
    source = hashlib.blake2b(str(fingerprint).encode(), digest_size=4).hexdigest()
    return cache.with_name(f"{cache.name}.{column}.{source}{_SIDE_SUFFIX}")


def saved_side_index(cache, id_column, fingerprint, nrows, strings):
    """The side index of ``id_column``, memory-mapped; None if absent or not a match.

    The file is one ``(2, nrows)`` uint64 array: the sorted keys (hashes, or int64 ids)
    and their rows. Only indexes without a repeated key are saved.
    """
    try:
        array = np.load(side_index_path(cache, id_column, fingerprint), mmap_mode="r")
    except (OSError, ValueError):
        return None
    if array.dtype != np.uint64 or array.shape != (2, nrows):
        return None
    keys = array[0] if strings else array[0].view(np.int64)
    return IdIndex(keys, array[1].view(np.int64), unique=True)


def build_side_index(cache, id_column, fingerprint, key_chunks, nrows, strings):
    """Sort the keys (``key_chunks``, in row order) into an :class:`IdIndex` saved beside
    ``cache`` (see :func:`saved_side_index`); memory stays at one group of keys.

    Written under a temporary name, fsynced and renamed, so that an interrupted build
    leaves nothing that is later used. Where the folder cannot be written the result is
    None (the caller builds the index in memory); where an id repeats, the index is
    returned but not saved.
    """
    from armillary._cache import _fsync, _Writer

    path = side_index_path(cache, id_column, fingerprint)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    spool = None
    try:
        spool = KeySpool(tmp.with_name(f"{tmp.name}.keys"), np.uint64 if strings else np.int64)
        for keys in key_chunks:
            spool.append(keys)
        with open(tmp, "wb") as handle:
            header = {"descr": "<u8", "fortran_order": False, "shape": (2, nrows)}
            np.lib.format.write_array_header_2_0(handle, header)
            unique = _write_side(_Writer(handle), handle.tell(), nrows, spool)
        if not unique:  # repeated ids: an error follows; keep nothing on disk
            array = np.load(tmp)
            keys = array[0] if strings else array[0].view(np.int64)
            return IdIndex(keys, array[1].view(np.int64), unique=False)
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError:
        return None
    finally:
        if spool is not None:
            spool.close()
        tmp.unlink(missing_ok=True)
    return saved_side_index(cache, id_column, fingerprint, nrows, strings)


def _write_side(writer, base, nrows, spool):
    """Write the sorted keys, then their rows, after the header; True if no key repeats."""
    keys_part, rows_part = (base, np.dtype(np.uint64)), (base + 8 * nrows, np.dtype(np.int64))
    unique, last = True, None
    for first, keys, rows in sorted_runs(spool):
        unique &= not (np.any(keys[1:] == keys[:-1]) or (last is not None and last == keys[0]))
        writer.put(keys_part, first, keys.view(np.uint64))
        writer.put(rows_part, first, rows)
        last = keys[-1]
        del keys, rows  # freed before the next group is gathered
    return bool(unique)


def remove_side_indexes(cache):
    """Remove every side index of ``cache`` (its source changed: they are stale)."""
    for path in cache.parent.glob(f"{glob.escape(cache.name)}.*{_SIDE_SUFFIX}"):
        path.unlink(missing_ok=True)


def strings_of(values):
    """Query ids as a pyarrow ``large_string`` array and their :class:`Strings`.

    Bytes are decoded as UTF-8 (bad bytes replaced), anything else but str becomes
    its ``str``.
    """
    import pyarrow as pa

    values = np.asarray(values, dtype=object) if isinstance(values, (list, tuple)) else values
    try:
        if values.dtype.kind not in "OU":  # fixed-width bytes: pyarrow keeps the NULs
            raise TypeError("not str")
        array = pa.array(values, type=pa.large_string())
        if array.null_count:
            raise TypeError("None among the ids")
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        texts = [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in values.tolist()
        ]
        array = pa.array(texts, type=pa.large_string())
    return array, Strings.from_arrow(array)


def as_integers(values):
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


def _plain(value):
    """A numpy scalar as a Python one, for messages."""
    return value.item() if hasattr(value, "item") else value


class IdLookup:
    """Row identity of a :class:`~armillary.Catalogue`: ids, positions and the id checks.

    Needs ``df``, ``id_column``, ``name``, ``source``, ``cache_path``, ``fingerprint``,
    ``_index``, ``_ids`` and ``_id_arrow_cache`` on the object, and ``__len__``.
    """

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
                self._ids = np.asarray(
                    self._id_arrow().to_numpy(zero_copy_only=False), dtype=object
                )
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
        return _plain(np.asarray(self.df.evaluate(self.id_column, pos, pos + 1))[0])

    def ids_at(self, positions):
        """The ids of rows at ``positions`` (a list of int or str, as :meth:`id_at`
        gives them), read at once: one call of :meth:`id_at` evaluates through vaex,
        milliseconds apiece in a new process."""
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size:
            self._check_position(int(positions.min()))
            self._check_position(int(positions.max()))
        if self.id_column is None:
            return positions.tolist()
        if self._ids_are_strings():
            return self._id_arrow().take(positions).to_pylist()
        column = self.df.columns.get(self.id_column)
        if type(column) is np.ndarray and len(column) == len(self):  # plain, not masked
            return [_plain(v) for v in column[positions]]
        return [self.id_at(int(p)) for p in positions]

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
        values, positions, ok = self._lookup(ids)
        if not ok.all():
            self._raise_unknown(values[~ok])
        return positions

    def _lookup(self, ids):
        """The ids as an array, their row positions (int64, -1 where unknown), and
        whether each is in the catalogue."""
        values = (
            np.asarray(ids, dtype=object) if isinstance(ids, (list, tuple)) else np.asarray(ids)
        )
        if values.ndim == 0:
            values = values.reshape(1)
        if self.id_column is None:
            positions, ok = as_integers(values)
            ok &= (positions >= 0) & (positions < len(self))
        elif self._ids_are_strings():
            positions, ok = self._string_positions(values)
        else:
            query, ok = as_integers(values)
            positions = self._id_index().rows(query)
            ok &= positions >= 0
        return values, np.where(ok, positions, -1).astype(np.int64), ok

    def _string_positions(self, values):
        """Positions of string ids: by hash, then the stored strings compared."""
        import pyarrow.compute as pc

        query, strings = strings_of(values)
        index = self._id_index()
        hashes = fnv1a(strings)
        positions = index.rows(hashes)
        found = np.flatnonzero(positions >= 0)
        stored = self._id_arrow().take(positions[found])
        asked = query if found.size == len(query) else query.take(found)
        same = pc.equal(stored, asked.cast(stored.type)).fill_null(False)
        ok = np.zeros(len(query), bool)
        ok[found] = np.asarray(same, dtype=bool)
        unequal = found[~ok[found]]  # equal hashes, unequal ids: try the others
        _, lo, hi = index.candidates(hashes[unequal])
        for k, start, stop in zip(unequal.tolist(), lo.tolist(), hi.tolist(), strict=True):
            text = query[k].as_py()
            for candidate in index.order[start:stop].tolist():
                if self._id_arrow()[candidate].as_py() == text:
                    positions[k], ok[k] = candidate, True
                    break
        return positions, ok

    def _raise_unknown(self, missing):
        from armillary.errors import UnknownIdError

        shown = ", ".join(repr(_plain(v)) for v in missing[:5])
        more = f" and {missing.size - 5} more" if missing.size > 5 else ""
        where = "row numbers" if self.id_column is None else f"column {self.id_column!r}"
        noun = "id" if missing.size == 1 else f"{missing.size} ids"
        raise UnknownIdError(
            f"{noun} {shown}{more} not in catalogue {self.name!r} ({self.source}; ids are {where})"
        )

    def _check_position(self, pos):
        if isinstance(pos, bool) or not isinstance(pos, (int, np.integer)):
            raise TypeError(f"a row position must be an integer, got {pos!r}")
        if not 0 <= pos < len(self):
            raise IndexError(
                f"row {pos} is outside catalogue {self.name!r}, which has "
                f"{len(self):,} rows (positions 0..{len(self) - 1})"
            )
        return int(pos)

    def _ids_are_strings(self):
        dtype = self.df.data_type(self.id_column)
        return dtype.is_string or (dtype.is_encoded and dtype.value_type.is_string)

    def _id_arrow(self):
        """The string id column as one pyarrow array (memory-mapped where vaex allows)."""
        if self._id_arrow_cache is None:
            import pyarrow as pa

            column = self.df.columns.get(self.id_column)
            if not isinstance(column, (pa.Array, pa.ChunkedArray)):
                column = self.df.evaluate(self.id_column, array_type="arrow")
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            if pa.types.is_dictionary(column.type):
                column = column.dictionary_decode()
            self._id_arrow_cache = column
        return self._id_arrow_cache

    def _id_index(self):
        """The id index: stored in the cache for the id column it was built with, else
        saved beside it on first use (see :func:`build_side_index`)."""
        if self._index is None:
            strings = self._ids_are_strings()
            where = (self.cache_path, self.id_column, self.fingerprint)
            self._index = saved_side_index(*where, len(self), strings) or build_side_index(
                *where, self._key_chunks(strings), len(self), strings
            )
            if self._index is None:  # the cache's folder is read-only: in memory
                self._index = IdIndex(np.concatenate(list(self._key_chunks(strings))))
        return self._index

    def _key_chunks(self, strings, step=1 << 20):
        """The id column's keys (hashes of strings, or int64 ids) in row order, by chunk."""
        for start in range(0, len(self), step):
            if strings:
                yield fnv1a(Strings.from_arrow(self._id_arrow().slice(start, step)))
            else:
                stop = min(start + step, len(self))
                values = self.df.evaluate(self.id_column, start, stop)
                yield np.asarray(np.ma.getdata(values)).astype(np.int64)

    def _check_ids(self):
        """Check the id column: present, integers or strings, no value twice."""
        if self.id_column is None:
            return
        if self.id_column not in self.df.get_column_names(virtual=False):
            raise missing_id_column(self.id_column, self.source, self.columns)
        dtype = self.df.data_type(self.id_column)
        if not (self._ids_are_strings() or dtype.is_integer):
            raise id_kind_error(self.id_column, self.source, dtype)
        first, second = self._id_index().duplicate_pairs()
        if first.size and self._ids_are_strings():  # equal hashes, maybe unequal ids
            import pyarrow.compute as pc

            column = self._id_arrow()
            same = np.asarray(pc.equal(column.take(first), column.take(second)))
            first, second = (
                (first[same], second[same])
                if same.any()
                else self._colliding_duplicates(first, second)
            )
        if first.size:
            self._raise_duplicates(first, second)

    def _colliding_duplicates(self, first, second):
        """Repeated ids among rows whose hashes collide (a 64-bit hash: almost never)."""
        rows = np.unique(np.concatenate([first, second]))
        seen, pairs = {}, []
        for row, text in zip(rows.tolist(), self._id_arrow().take(rows).to_pylist(), strict=True):
            if text in seen:
                pairs.append((seen[text], row))
            seen.setdefault(text, row)
        found = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        return found[:, 0], found[:, 1]

    def _raise_duplicates(self, first, second):
        from armillary.errors import DuplicateIdError

        examples = {}  # id -> rows holding it; pairs of one id are neighbours
        for a, b in zip(first[:200].tolist(), second[:200].tolist(), strict=True):
            value = self.id_at(a)
            if value not in examples and len(examples) == 3:
                break
            examples.setdefault(value, {a}).add(b)
        shown = "; ".join(
            f"{_plain(value)!r} (rows {', '.join(map(str, sorted(rows)[:4]))})"
            for value, rows in examples.items()
        )
        raise DuplicateIdError(
            f"id column {self.id_column!r} of {self.source} holds repeated ids ({first.size} "
            f"rows repeat an earlier id), e.g. {shown}. Ids must be unique: pick another "
            "id_column, or id_column=None to use row numbers"
        )


def catalogue_identity(catalogue):
    """A content identity of a catalogue, recorded by a session's label store: id column,
    row count and a hash of the ids of the first and last 1,000 rows.

    Unlike the cache fingerprint it survives a copy or a ``touch`` of the source file.
    """
    n = len(catalogue)
    ends = np.r_[0 : min(n, 1000), max(1000, n - 1000) : n]
    digest = hashlib.sha1("\x1f".join(map(str, ids_at(catalogue, ends))).encode())
    return f"{catalogue.id_column}:{n}:{digest.hexdigest()[:16]}"


def ids_at(catalogue, positions):
    """``catalogue.ids_at(positions)`` where it has one, else ``id_at`` row by row."""
    if hasattr(catalogue, "ids_at"):
        return catalogue.ids_at(positions)
    return [catalogue.id_at(int(p)) for p in positions]


def listing(names, limit=60):
    """Names joined by commas, cut after ``limit``."""
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def missing_id_column(id_column, source, names):
    """The error for an id column that is not in the table."""
    from armillary.errors import ColumnNotFoundError

    return ColumnNotFoundError(
        f"id column {id_column!r} is not in {source}; available "
        f"columns: {listing(list(names))}. Pass id_column=None to use "
        "row numbers as ids"
    )


def id_kind_error(id_column, source, dtype):
    """The error for an id column of floats (or anything but integers and strings)."""
    from armillary.errors import CatalogueError

    return CatalogueError(
        f"id column {id_column!r} of {source} holds {dtype}; ids must be integers or strings"
    )
