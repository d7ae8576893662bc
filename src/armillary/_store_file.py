"""The SQLite side of the label store: opening, upgrading, transactions and snapshots.

:class:`SQLiteFile` holds one connection to a store file and knows nothing of what the
events mean; :class:`armillary.store.LabelStore` builds the log on it. A PostgreSQL backend
would replace this class (see :mod:`armillary.store`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Self

from armillary import _store_schema as schema
from armillary._store_schema import SCHEMA_VERSION
from armillary._store_values import now
from armillary.errors import CatalogueMismatchError, ReadOnlyStoreError, StoreError

if TYPE_CHECKING:
    from types import TracebackType


class SQLiteFile:
    """One SQLite connection to a label store file, shared by every thread under a lock.

    See :class:`armillary.store.LabelStore` for the parameters.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        catalogue_fingerprint: str | None = None,
        id_column: str | None = None,
        match_by_id: bool = False,
        readonly: bool = False,
    ) -> None:
        memory = os.fspath(path) == ":memory:"
        self.path: Path | str = ":memory:" if memory else Path(path)
        self._lock = threading.RLock()
        self._in_snapshot = False
        self._readonly_reason = "readonly=True" if readonly else _unwritable(self.path)
        self._conn = self._connect()
        try:
            self._open(catalogue_fingerprint, id_column, match_by_id=match_by_id)
        except BaseException as exc:
            self._conn.close()
            if isinstance(exc, sqlite3.Error):
                msg = f"cannot open label store {self.path}: {exc}"
                raise StoreError(msg) from exc
            raise

    # -- opening ---------------------------------------------------------------

    @property
    def readonly(self) -> bool:
        """Whether this store refuses writes."""
        return self._readonly_reason is not None

    def _connect(self) -> sqlite3.Connection:
        """Open the SQLite connection (no reads or writes yet)."""
        target, uri = os.fspath(self.path), False
        if self.readonly:
            if not Path(target).is_file():
                msg = f"no label store at {self.path} to open read-only"
                raise StoreError(msg)
            target, uri = Path(target).resolve().as_uri() + "?mode=ro", True
        try:
            # isolation_level=None: no implicit transactions; we BEGIN/COMMIT ourselves.
            return sqlite3.connect(
                target, uri=uri, check_same_thread=False, isolation_level=None, timeout=30.0
            )
        except sqlite3.Error as exc:
            msg = (
                f"cannot open label store {self.path}: {exc}; check that its folder "
                "exists and is writable"
            )
            raise StoreError(msg) from exc

    def _open(self, fingerprint: str | None, id_column: str | None, *, match_by_id: bool) -> None:
        """Check an existing store, or create a new one; upgrade an old one."""
        tables = self._tables()
        if tables and not {"meta", "events"} <= tables:
            msg = (
                f"{self.path} is not an Armillary label store (it is an SQLite "
                f"database with tables {sorted(tables)}); pass another store path"
            )
            raise StoreError(msg)
        if not tables and self.readonly:
            msg = f"{self.path} is not an Armillary label store (it holds no tables)"
            raise StoreError(msg)
        version, blanks = (
            self._check_meta(fingerprint, id_column, match_by_id)
            if tables
            else (SCHEMA_VERSION, [])
        )
        if self.path != ":memory:" and not self.readonly:
            # WAL: readers do not block the writer, and a commit is one append.
            self._conn.execute("PRAGMA journal_mode=WAL")
        # synchronous=FULL: every commit is fsynced before it returns, so a label that
        # was acknowledged survives a power cut, not only a crash of the process (in
        # WAL mode, NORMAL could lose the last commits on power loss).
        self._conn.execute("PRAGMA synchronous=FULL")
        # A bulk import stages its rows in a temporary table: keep that in memory, and
        # give the page cache room for the id index of a million-row import (64 MiB).
        self._conn.execute("PRAGMA temp_store=MEMORY")
        self._conn.execute("PRAGMA cache_size=-65536")
        if not tables:
            self._create(fingerprint, id_column)
        elif version < SCHEMA_VERSION:
            self._upgrade(version)
        self._conn.execute("PRAGMA foreign_keys=ON")
        if blanks and not self.readonly:  # a store without a catalogue takes this one's
            with self._transaction():
                self._conn.executemany(
                    "INSERT OR REPLACE INTO meta (value, key) VALUES (?, ?)", blanks
                )
        # Catalogue rows given to appends are kept only when they are rows of the
        # catalogue the store belongs to: opened with the fingerprint it records (its
        # own, or given now as its first), not matched by id to another release.
        self._keeps_rows = fingerprint is not None and self.catalogue_fingerprint == fingerprint

    def _tables(self) -> set[str]:
        """Return the names of the tables in the file, refusing non-SQLite files."""
        try:
            rows = self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            msg = (
                f"{self.path} is not an Armillary label store (not an SQLite "
                f"database: {exc}); pass another store path"
            )
            raise StoreError(msg) from exc
        return {name for (name,) in rows} - {"sqlite_sequence"}

    def _create(self, fingerprint: str | None, id_column: str | None) -> None:
        """Create the tables and the meta rows in one transaction."""
        with self._transaction():
            if self._tables():  # another process created it meanwhile
                return
            for statement in schema.SCHEMA:
                self._conn.execute(statement)
            self._conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("created", now()),
                    ("catalogue_fingerprint", fingerprint),
                    ("id_column", id_column),
                ],
            )

    def _upgrade(self, version: int) -> None:
        """Migrate an older schema: in the file, or read-only in a memory copy."""
        if self.readonly:
            copy = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            self._conn.backup(copy)
            self._conn.close()
            self._conn = copy
        self._conn.execute("PRAGMA foreign_keys=OFF")  # SQLite's recipe; not in a txn
        with self._transaction(upgrade=True):
            found = int(self.meta["schema_version"] or 0)  # another process may have
            if found < SCHEMA_VERSION:
                schema.migrate(self._conn, found)
                self._conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    (f"migrated_from_{found}", now()),
                )
                if self._conn.execute("PRAGMA foreign_key_check").fetchone():
                    msg = f"label store {self.path}: the upgrade broke event references"
                    raise StoreError(msg)

    def _check_meta(
        self, fingerprint: str | None, id_column: str | None, match_by_id: bool
    ) -> tuple[int, list[tuple[str, str]]]:
        """Refuse stores from a newer Armillary or another catalogue.

        Returns
        -------
        version : int
            The store's schema version.
        blanks : list of (value, key)
            The given meta values that the store lacks.
        """
        meta = self.meta
        try:
            version = int(meta.get("schema_version") or "")
        except ValueError:
            msg = (
                f"{self.path} is not an Armillary label store (its schema_version "
                f"is {meta.get('schema_version')!r}); pass another store path"
            )
            raise StoreError(msg) from None
        if version > SCHEMA_VERSION:
            msg = (
                f"label store {self.path} has schema version {version}, newer than "
                f"this Armillary reads ({SCHEMA_VERSION}); upgrade Armillary "
                "(pip install -U armillary) to open it"
            )
            raise StoreError(msg)
        given = {"catalogue_fingerprint": fingerprint, "id_column": id_column}
        for key, value in given.items():
            stored = meta.get(key)
            if value is None or stored is None or value == stored:
                continue
            if key == "catalogue_fingerprint" and match_by_id:
                continue
            hint = (
                ", or match_by_id=True to match its labels to this catalogue's rows by id"
                if key == "catalogue_fingerprint"
                else ""
            )
            msg = (
                f"label store {self.path} belongs to a catalogue with {key} "
                f"{stored!r}, not {value!r}; pass another store path for this "
                f"catalogue{hint}"
            )
            raise CatalogueMismatchError(msg)
        return version, [(v, k) for k, v in given.items() if v is not None and meta.get(k) is None]

    # -- plumbing --------------------------------------------------------------

    @contextmanager
    def _transaction(self, *, upgrade: bool = False) -> Iterator[None]:
        """Hold the lock and one write transaction; SQLite failures become StoreError."""
        with self._lock:
            if self.readonly and not upgrade:
                msg = (
                    f"label store {self.path} is open read-only "
                    f"({self._readonly_reason}); nothing was saved"
                )
                raise ReadOnlyStoreError(msg)
            if self._in_snapshot:
                msg = "cannot write to a label store inside its snapshot(); nothing was saved"
                raise StoreError(msg)
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    if self._conn.in_transaction:  # SQLite may have rolled back itself
                        self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                msg = (
                    f"cannot write label store {self.path}: {exc}; nothing was saved. "
                    "Check that the disk has space and the file is writable"
                )
                raise StoreError(msg) from exc

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run a read under the lock and return all rows."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    @contextmanager
    def snapshot(self) -> Iterator[Self]:
        """Read a consistent view: every read inside sees the same log.

        Other processes keep writing meanwhile (WAL); their events appear after the
        block. Writing through this store inside the block raises StoreError.
        """
        with self._lock:
            if self._in_snapshot:
                yield self
                return
            self._conn.execute("BEGIN")
            self._conn.execute("SELECT COUNT(*) FROM meta").fetchone()  # fixes the view
            self._in_snapshot = True
            try:
                yield self
            finally:
                self._in_snapshot = False
                self._conn.execute("COMMIT")

    @property
    def meta(self) -> dict[str, str | None]:
        """The store's metadata: schema_version, created, catalogue_fingerprint,
        id_column, and ``migrated_from_<n>`` after an upgrade."""
        return dict(self._query("SELECT key, value FROM meta"))

    @property
    def catalogue_fingerprint(self) -> str | None:
        """The fingerprint of the catalogue this store belongs to, as recorded (None when
        no opener gave one). The catalogue rows recorded with events are rows of it."""
        return self.meta.get("catalogue_fingerprint")

    @property
    def keeps_rows(self) -> bool:
        """Whether appends record the catalogue rows they are given: only when the store
        was opened with its own catalogue fingerprint (see :attr:`catalogue_fingerprint`),
        not with ``match_by_id=True`` for another catalogue, nor with none."""
        return self._keeps_rows

    @property
    def n_events(self) -> int:
        """Number of events in the log."""
        return self._query("SELECT COUNT(*) FROM events")[0][0]

    @property
    def state_version(self) -> int:
        """A number that changes whenever the log changes (the latest event id)."""
        return self._query("SELECT COALESCE(MAX(event_id), 0) FROM events")[0][0]

    # -- closing ---------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (every event is already committed)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStore({os.fspath(self.path)!r})"


def _unwritable(path: Path | str) -> str | None:
    """Why an existing store file must be opened read-only, or None."""
    if path == ":memory:" or not Path(path).exists():
        return None
    if not os.access(path, os.W_OK):
        return "the file is not writable by this user"
    if not Path(path).stat().st_mode & 0o222:  # root may write anyway: respect chmod a-w
        return "the file has no write permission bits"
    return None
