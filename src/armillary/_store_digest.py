"""An in-memory digest of the label log, read incrementally, folded with numpy.

The log only grows, and its event ids grow in commit order, so a reader that remembers
the last id it has read only ever needs the events after it. :class:`LogDigest` keeps, for
one provenance, the few columns that decide which events are in force (id, row, kind,
label, target) and the catalogue row recorded with each event, as numpy arrays, and
:meth:`LogDigest.in_force` folds them without a Python loop. This is what keeps the
current labels of 100,000 events, and the masks built on them, well under a tenth of a
second after the first read.

The first read is one aggregate query per chunk of events (see :data:`_READ`): each column
comes back as one string, parsed with numpy, so no Python object is made per event but
the row ids (string ids) and the few distinct class names.

The SQL view in :data:`armillary._store_schema.CURRENT_SQL` says the same thing in SQL;
the tests check that the two agree.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd

from armillary._store_schema import KINDS, LABEL_KINDS, STATE_OF

_SEP = "\x1f"  # ASCII unit separator: ids and labels with it fall back to a plain read
_CHUNK = 500_000  # events per read, which bounds the size of the concatenated text
_WHERE = "FROM events NOT INDEXED WHERE provenance = ? AND event_id > ? AND event_id <= ?"
# A range scan of the table itself: about three times faster than through an index. Each
# column costs per event, so only what folding needs is read, as little text as can be:
# kinds as they are (decoded in numpy), labels and targets without their NULLs (the schema
# ties a label to the label kinds and a target to undo and redo, so the kinds place them),
# and no event ids at all when they run without a gap (MIN to MAX), as they almost always do.
# Catalogue rows come without their NULLs too: placed at once when every event or none
# has one (a log written with rows has them on every event, undos included), else read
# again with -1 for NULL.
_READ = f"""
    SELECT COUNT(*), MIN(event_id), MAX(event_id), group_concat(kind, ','),
           group_concat(row_id, '{_SEP}'), group_concat(label, '{_SEP}'),
           group_concat(target_event, ','), COUNT(catalogue_row),
           group_concat(catalogue_row, ',')
    {_WHERE}
"""
_READ_IDS = f"SELECT group_concat(event_id, ',') {_WHERE}"
_READ_ROWS = f"SELECT group_concat(COALESCE(catalogue_row, -1), ',') {_WHERE}"
_PLAN = f"EXPLAIN QUERY PLAN SELECT COUNT(*) {_WHERE}"
_READ_PLAIN = """
    SELECT event_id, row_id, kind, label, target_event, catalogue_row FROM events
    WHERE provenance = ? AND event_id > ? AND event_id <= ? ORDER BY event_id
"""
_STATE_KIND = np.array([k in STATE_OF for k in KINDS])
_LABEL_KIND = np.array([k in LABEL_KINDS for k in KINDS])
_UNDO, _REDO = KINDS.index("undo"), KINDS.index("redo")


def _kind_table() -> np.ndarray | None:
    """Kind codes by (first letter, length), or None if two kinds share both."""
    table = np.full(256 * 32, -1, np.int8)
    for code, kind in enumerate(KINDS):
        key = ord(kind[0]) * 32 + min(len(kind), 31)
        if table[key] >= 0 or len(kind) > 31 or not kind.isascii():
            return None
        table[key] = code
    return table


_KIND_OF = _kind_table()


class LogDigest:
    """The deciding columns of one provenance's events, grown by :meth:`update`.

    Attributes
    ----------
    last : int
        The largest event id read (of any provenance; later reads start after it).
    event_id, kind, target : numpy.ndarray
        int64, int8 (index into ``KINDS``) and int64 (0: none), in event order.
    row : numpy.ndarray
        The row ids: int64, or objects (str, or ints beyond int64).
    label : numpy.ndarray
        int32 codes into :attr:`label_names` (-1: none).
    catalogue_row : numpy.ndarray
        int64 catalogue row recorded with each event (-1: none).
    """

    def __init__(self, provenance: str, int_ids: bool) -> None:
        self.provenance = provenance
        self.int_ids = int_ids
        self.last = 0
        self.label_names: list[str] = []
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._arrays: tuple[np.ndarray, ...] = _empty(int_ids)
        self._folded: tuple[int, np.ndarray] | None = None  # (events folded, result)
        self._in_order: bool | None = None

    def update(self, conn: sqlite3.Connection, upto: int) -> bool:
        """Read the events after :attr:`last` up to event id ``upto``; True if any."""
        found = False
        while self.last < upto:
            stop = min(upto, self.last + _CHUNK)
            part = self._read(conn, self.last, stop)
            if part is not None:
                self._parts.append(part)
                found = True
            self.last = stop
        return found

    def _read(
        self, conn: sqlite3.Connection, after: int, stop: int
    ) -> tuple[np.ndarray, ...] | None:
        """One chunk as arrays (event_id, row, kind, label codes, target, catalogue
        row), or None."""
        args = (self.provenance, after, stop)
        n, first, last, kinds, rows, labels, targets, n_at, at = conn.execute(
            _READ, args
        ).fetchone()
        if not n:
            return None
        kind = _kind_codes(kinds)
        if kind is None or len(kind) != n:
            return self._read_plain(conn, after, stop)
        if last - first + 1 == n and self._scans_in_order(conn):
            event_id = np.arange(first, last + 1, dtype=np.int64)
        else:  # gaps (another provenance's events): read the ids themselves
            ids = conn.execute(_READ_IDS, args).fetchone()[0]
            event_id = np.fromstring(ids, dtype=np.int64, sep=",")
            if len(event_id) != n or np.any(np.diff(event_id) <= 0):
                return self._read_plain(conn, after, stop)
        row = self._rows(rows, n)
        has_label = _LABEL_KIND[kind]
        label_codes = self._label_codes(labels or "", has_label.sum())
        flips = (kind == _UNDO) | (kind == _REDO)
        flip_targets = (
            np.fromstring(targets, dtype=np.int64, sep=",")
            if targets is not None
            else np.empty(0, np.int64)
        )
        if row is None or label_codes is None or len(flip_targets) != flips.sum():
            return self._read_plain(conn, after, stop)  # a separator inside a value
        position = _catalogue_rows(conn, args, n, n_at, at)
        if position is None:
            return self._read_plain(conn, after, stop)
        label = np.full(n, -1, dtype=np.int32)
        label[has_label] = label_codes
        target = np.zeros(n, dtype=np.int64)
        target[flips] = flip_targets
        return (event_id, row, kind, label, target, position)

    def _scans_in_order(self, conn: sqlite3.Connection) -> bool:
        """Whether the chunk query walks the table in event-id order (the rowid range
        scan it is written for), so that the k-th value of each column is the k-th event."""
        if self._in_order is None:
            plan = conn.execute(_PLAN, (self.provenance, 0, 0)).fetchall()
            self._in_order = "INTEGER PRIMARY KEY" in " ".join(str(r[-1]) for r in plan)
        return self._in_order

    def _rows(self, text: str, n: int) -> np.ndarray | None:
        """The row ids of a chunk from their concatenated text; None if not n of them."""
        if not self.int_ids:
            texts = text.split(_SEP)
            return np.array(texts, dtype=object) if len(texts) == n else None
        fields = _fields(text, n)
        if fields is None:
            return None
        if fields[2].max(initial=0) <= 18:  # fits int64 for sure
            return np.fromstring(text, dtype=np.int64, sep=_SEP)
        return _python_ints(text.split(_SEP))

    def _read_plain(
        self, conn: sqlite3.Connection, after: int, stop: int
    ) -> tuple[np.ndarray, ...]:
        """The same chunk row by row (slower; for values holding the separator)."""
        rows = conn.execute(_READ_PLAIN, (self.provenance, after, stop)).fetchall()
        event_id, row, kind, label, target, position = zip(*rows, strict=True)
        ids = _python_ints(row) if self.int_ids else np.array(row, dtype=object)
        codes = np.full(len(rows), -1, dtype=np.int32)
        labelled = [k for k, x in enumerate(label) if x is not None]
        codes[labelled] = self._codes([label[k] for k in labelled])
        return (
            np.array(event_id, dtype=np.int64),
            ids,
            np.array([KINDS.index(k) for k in kind], dtype=np.int8),
            codes,
            np.array([t or 0 for t in target], dtype=np.int64),
            np.array([-1 if p is None else p for p in position], dtype=np.int64),
        )

    def _label_codes(self, text: str, n: int) -> np.ndarray | None:
        """Codes of ``n`` labels joined by the separator; None if there are not n.

        Class names are few and mostly short: names of up to 7 bytes are told apart by
        their bytes and length packed in one integer, without a Python string each.
        """
        if not n:
            return np.empty(0, np.int32) if not text else None
        fields = _fields(text, n)
        if fields is None:
            return None
        raw, ends, lengths = fields
        if lengths.max() > 7:
            return self._codes(text.split(_SEP))
        packed = np.zeros((n, 8), dtype=np.uint8)
        packed[np.arange(8) < lengths[:, None]] = np.delete(raw, ends)
        packed[:, 7] = lengths
        codes, keys = pd.factorize(packed.view(np.uint64).ravel())
        names = [k.tobytes()[: k.tobytes()[7]].decode() for k in keys.view(np.uint8).reshape(-1, 8)]
        return self._codes(names)[codes]

    def _codes(self, texts: list[str]) -> np.ndarray:
        """Codes into :attr:`label_names` (growing it) of label names."""
        codes, uniques = pd.factorize(np.array(texts, dtype=object))
        mapping = np.empty(len(uniques), dtype=np.int32)
        for k, name in enumerate(uniques):
            if name not in self.label_names:
                self.label_names.append(name)
            mapping[k] = self.label_names.index(name)
        return mapping[codes] if len(uniques) else codes.astype(np.int32)

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        """(event_id, row, kind, label, target, catalogue_row), concatenated over every
        read."""
        if self._parts:
            parts = [self._arrays, *self._parts]
            self._arrays = tuple(_concat([p[k] for p in parts]) for k in range(6))
            self._parts = []
        return self._arrays

    def in_force(self) -> np.ndarray:
        """Indices (into :attr:`arrays`, in event order) of each row's state now.

        After new plain acts only their rows are folded again; an undo or redo among
        the new events (it may revive any older act) folds the whole log.
        """
        event_id, row, kind, _, target, _ = self.arrays
        n = len(event_id)
        if self._folded is not None:
            done, chosen = self._folded
            new = np.arange(done, n)
            if not np.isin(kind[new], (_UNDO, _REDO)).any():
                acts = new[_STATE_KIND[kind[new]]]
                if len(acts):
                    latest = _newest_per_row(row, acts)
                    keep = ~pd.Index(row[chosen]).isin(row[latest])
                    chosen = np.concatenate([chosen[keep], latest])
                self._folded = (n, chosen)
                return chosen
        flips = np.flatnonzero((kind == _UNDO) | (kind == _REDO))
        # The latest undo or redo aimed at each act decides whether it is undone.
        aimed, latest = np.unique(target[flips][::-1], return_index=True)
        undone = aimed[kind[flips][::-1][latest] == _UNDO]
        acts = np.flatnonzero(_STATE_KIND[kind] & ~np.isin(event_id, undone))
        chosen = _newest_per_row(row, acts)
        self._folded = (n, chosen)
        return chosen


def _newest_per_row(row: np.ndarray, acts: np.ndarray) -> np.ndarray:
    """Of the events ``acts`` (increasing indices), the newest of each row, in order."""
    if not len(acts):
        return acts
    keys, uniques = pd.factorize(row[acts])
    newest = np.full(len(uniques), -1, dtype=np.intp)
    np.maximum.at(newest, keys, np.arange(len(acts)))  # the last act of each row
    kept = np.zeros(len(acts), dtype=bool)
    kept[newest] = True
    return acts[kept]


def _fields(text: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The bytes of ``n`` values joined by the separator, where the separators are, and
    each value's length in bytes; None if the text does not hold ``n`` values."""
    raw = np.frombuffer(text.encode(), dtype=np.uint8)
    ends = np.flatnonzero(raw == ord(_SEP))
    if len(ends) != n - 1:
        return None
    return raw, ends, np.diff(ends, prepend=-1, append=raw.size) - 1


def _kind_codes(text: str) -> np.ndarray | None:
    """Codes into ``KINDS`` of comma-joined kind names, told apart by first letter and
    length (see :func:`_kind_table`); None for a name that is not a kind."""
    if _KIND_OF is None:
        names = text.split(",")
        if not set(names) <= set(KINDS):
            return None
        return np.array([KINDS.index(k) for k in names], dtype=np.int8)
    raw = np.frombuffer(text.encode(), dtype=np.uint8)
    starts = np.concatenate([[0], np.flatnonzero(raw == ord(",")) + 1])
    lengths = np.diff(starts, append=raw.size + 1) - 1
    first = raw[np.minimum(starts, raw.size - 1)].astype(np.intp)
    codes = _KIND_OF[first * 32 + np.clip(lengths, 0, 31)]
    # The schema admits only KINDS, which first letter and length tell apart.
    return None if np.any(codes < 0) else codes


def _catalogue_rows(
    conn: sqlite3.Connection, args: tuple, n: int, n_at: int, text: str | None
) -> np.ndarray | None:
    """A chunk's catalogue rows (-1: none) from their text without NULLs, of which
    there are ``n_at``; read again with the NULLs as -1 when only some events have one.
    None if the text does not hold them."""
    if not n_at:
        return np.full(n, -1, dtype=np.int64)
    if n_at != n:
        text = conn.execute(_READ_ROWS, args).fetchone()[0]
    rows = np.fromstring(text or "", dtype=np.int64, sep=",")
    return rows if len(rows) == n else None


def _empty(int_ids: bool) -> tuple[np.ndarray, ...]:
    return (
        np.empty(0, np.int64),
        np.empty(0, np.int64 if int_ids else object),
        np.empty(0, np.int8),
        np.empty(0, np.int32),
        np.empty(0, np.int64),
        np.empty(0, np.int64),
    )


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    """Concatenate, falling back to objects when int64 and object id arrays meet."""
    kinds = {a.dtype for a in arrays if len(a)}
    if len(kinds) > 1:
        return np.concatenate([a.astype(object) for a in arrays])
    return np.concatenate(arrays) if kinds else arrays[0]


def _python_ints(texts: list[str] | tuple[str, ...]) -> np.ndarray:
    """Ids as int64 when they fit, else as Python ints in an object array."""
    try:
        return np.fromiter(map(int, texts), dtype=np.int64, count=len(texts))
    except OverflowError:
        return np.array([int(t) for t in texts], dtype=object)
