"""Row ids: the sorted id index and the hash of string ids.

A catalogue's ids are its id column's values (integers or strings) or its row numbers.
Lookups go through :class:`IdIndex`: the ids' keys (integer ids, or 64-bit FNV-1a hashes of
string ids, see :func:`fnv1a`) sorted, with the row of each. The cache stores the index of
the id column named when it was built, so a reopen need not hash ten million ids again.
"""

from __future__ import annotations

import numpy as np

from armillary.formats import Strings

__all__ = ["IdIndex", "as_integers", "fnv1a", "strings_of"]

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def fnv1a(strings):
    """64-bit FNV-1a hash of each string of a :class:`~armillary.formats.Strings`."""
    lengths, data = strings.lengths, strings.data
    starts = np.cumsum(lengths) - lengths
    hashes = np.full(lengths.size, _FNV_OFFSET, np.uint64)
    for j in range(int(lengths.max(initial=0))):  # one byte column a step
        active = np.flatnonzero(lengths > j)
        byte = data[starts[active] + j].astype(np.uint64)
        hashes[active] = (hashes[active] ^ byte) * _FNV_PRIME
    return hashes


class IdIndex:
    """Sorted keys (integer ids, or 64-bit hashes of string ids) and their row positions.

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

    def candidates(self, query_keys):
        """Position of the first row whose key equals each query key, -1 where none."""
        lo = np.searchsorted(self.keys, query_keys, side="left")
        hi = np.searchsorted(self.keys, query_keys, side="right")
        positions = self.order[np.minimum(lo, self.keys.size - 1)]
        return np.where(hi > lo, positions, -1), lo, hi

    def duplicate_pairs(self):
        """Row positions (a, b) of neighbouring equal keys."""
        if self.unique:
            empty = np.zeros(0, np.int64)
            return empty, empty
        same = np.flatnonzero(self.keys[1:] == self.keys[:-1])
        return self.order[same], self.order[same + 1]


def strings_of(values):
    """Query ids as a list of str (bytes decoded) and their :class:`Strings`."""
    texts = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
    encoded = [t.encode("utf-8") for t in texts]
    lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
    return texts, Strings(lengths, np.frombuffer(b"".join(encoded), np.uint8))


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

    Needs ``df``, ``id_column``, ``name``, ``source``, ``_index``, ``_ids`` and
    ``_id_arrow_cache`` on the object, and ``__len__``.
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
            positions, _, _ = self._id_index().candidates(query)
            ok &= positions >= 0
        if not ok.all():
            self._raise_unknown(values[~ok])
        return positions.astype(np.int64)

    def _string_positions(self, values):
        texts, strings = strings_of(values.tolist())
        positions, lo, hi = self._id_index().candidates(fnv1a(strings))
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
        if self._index is None:
            step = 262_144
            if self._ids_are_strings():
                keys = np.concatenate(
                    [
                        fnv1a(Strings.from_arrow(self._id_arrow().slice(start, step)))
                        for start in range(0, len(self), step)
                    ]
                )
            else:
                keys = np.asarray(self.df.evaluate(self.id_column))
            self._index = IdIndex(keys)
        return self._index

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
