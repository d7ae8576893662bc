"""Bad input to the label store: a clear error, and nothing written.

Unknown classes and ids, files that are not stores, stores of a newer schema or another
catalogue, read-only files, and a full disk (a real tiny tmpfs where this machine lets us
mount one, and always a file-size limit on a child process).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from armillary import datasets, open_catalogue
from armillary.errors import (
    CatalogueMismatchError,
    LabelFileError,
    ReadOnlyStoreError,
    StoreError,
    UnknownClassError,
    UnknownIdError,
)
from armillary.labels_io import import_astronomical_test_set, import_label_column
from armillary.pool import Pool
from armillary.store import SCHEMA_VERSION, LabelStore

ADA = {"annotator": "ada", "session_id": "s1"}
CLASSES = ["Star", "Galaxy", "QSO"]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-input")
    return open_catalogue(datasets.make_catalogue(n=2000, path=folder / "sky.fits",
                                                  thumbnails=0))


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_unknown_class_writes_nothing(tmp_path, catalogue):
    with LabelStore(tmp_path / "l.sqlite", classes=CLASSES) as store:
        store.append("label", "a", "Star", **ADA)
        with pytest.raises(UnknownClassError, match=r"'Planet'.*Star, Galaxy, QSO"):
            store.append("label", "b", "Planet", **ADA)
        with pytest.raises(UnknownClassError, match="'Quasar'"):
            store.append_many("bulk_label", ["b", "c"], ["QSO", "Quasar"],
                              selection_id="x", **ADA)
        with pytest.raises(UnknownClassError, match="'Planet'"):
            import_label_column(store, catalogue, "labels", {0: "Star", 1: "Planet"})
        assert store.n_events == 1


def test_ids_not_in_the_catalogue_write_nothing(tmp_path, catalogue):
    test_set = tmp_path / "test_set.json"
    good = catalogue.id_at(3)
    test_set.write_text(json.dumps({good: 1, "SDSS J000000.00+000000.0_9999999": 0}))
    with LabelStore(tmp_path / "l.sqlite") as store:
        with pytest.raises(UnknownIdError, match=r"'SDSS J000000\.00\+000000\.0_9999999'"
                                                 r".*not in catalogue 'sky'"):
            import_astronomical_test_set(store, catalogue, test_set, {0: "Star", 1: "QSO"})
        assert store.n_events == 0


def test_ids_the_catalogue_lacks_are_reported_by_the_pool(tmp_path, catalogue):
    """A store matched by id to another catalogue may hold ids this one lacks."""
    with LabelStore(tmp_path / "l.sqlite", catalogue_fingerprint="old",
                    id_column="ID") as store:
        store.append("label", catalogue.id_at(0), "Star", **ADA)
        store.append("label", "gone-in-this-release", "QSO", **ADA)
    with LabelStore(tmp_path / "l.sqlite", catalogue_fingerprint="new", id_column="ID",
                    match_by_id=True) as store:
        pool = Pool(store, catalogue, CLASSES)
        assert pool.missing_ids.tolist() == ["gone-in-this-release"]
        assert pool.counts()["labelled"] == 1


@pytest.mark.parametrize("content", [
    b"this is not a database at all\x00\x01" * 100,
    b"SQLite format 3\x00" + b"\xff" * 200,
])
def test_a_file_that_is_not_a_store_is_left_alone(tmp_path, content):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(content)
    for readonly in (False, True):
        with pytest.raises(StoreError, match=r"notes\.sqlite is not an Armillary label"):
            LabelStore(path, readonly=readonly)
    assert path.read_bytes() == content
    assert not (tmp_path / "notes.sqlite-wal").exists()


def test_a_folder_is_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="cannot open label store"):
        LabelStore(tmp_path)


def test_a_newer_schema_is_refused_read_only_too(tmp_path):
    path = tmp_path / "l.sqlite"
    with LabelStore(path) as store:
        store.append("label", 1, "Star", **ADA)
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    raw.close()
    before = digest(path)
    for readonly in (False, True):
        with pytest.raises(StoreError, match=r"schema version 99, newer than this Armillary"
                                             rf" reads \({SCHEMA_VERSION}\).*pip install -U"):
            LabelStore(path, readonly=readonly)
    assert digest(path) == before


def test_another_catalogue_is_refused_unless_matched_by_id(tmp_path):
    path = tmp_path / "l.sqlite"
    LabelStore(path, catalogue_fingerprint="ID:2000:aaa", id_column="ID").close()
    with pytest.raises(CatalogueMismatchError,
                       match=r"'ID:2000:aaa', not 'ID:2500:bbb'.*match_by_id=True"):
        LabelStore(path, catalogue_fingerprint="ID:2500:bbb", id_column="ID")
    with pytest.raises(CatalogueMismatchError, match="id_column 'ID', not 'objid'"):
        LabelStore(path, catalogue_fingerprint="ID:2500:bbb", id_column="objid",
                   match_by_id=True)
    with LabelStore(path, catalogue_fingerprint="ID:2500:bbb", id_column="ID",
                    match_by_id=True) as store:
        store.append("label", "x", "Star", **ADA)
        assert store.meta["catalogue_fingerprint"] == "ID:2000:aaa"  # kept


@pytest.mark.parametrize("how", ["chmod", "readonly=True"])
def test_a_read_only_store_reads_but_never_writes(tmp_path, how):
    path = tmp_path / "l.sqlite"
    with LabelStore(path) as store:
        store.append("label", 1, "Star", **ADA)
        store.append("test_label", 2, "QSO", **ADA)
    before = digest(path)
    if how == "chmod":
        path.chmod(0o444)  # as root this alone would not stop SQLite writing
    try:
        with LabelStore(path, readonly=how != "chmod") as store:
            assert store.readonly
            assert store.labels()["id"].tolist() == [1]
            assert store.test_set()["id"].tolist() == [2]
            assert store.history(1)["kind"].tolist() == ["label"]
            reason = "no write permission bits" if how == "chmod" else "readonly=True"
            for write in (lambda: store.append("label", 3, "Star", **ADA),
                          lambda: store.append_many("label", [3], "Star", **ADA),
                          lambda: store.undo(**ADA), lambda: store.redo(**ADA)):
                with pytest.raises(ReadOnlyStoreError, match=f"read-only.*{reason}"):
                    write()
            assert store.n_events == 2
    finally:
        path.chmod(0o644)
    assert digest(path) == before


def test_a_read_only_reader_sees_a_writers_new_labels(tmp_path):
    path = tmp_path / "l.sqlite"
    with LabelStore(path) as writer, LabelStore(path, readonly=True) as reader:
        writer.append("label", 1, "Star", **ADA)
        assert reader.labels()["id"].tolist() == [1]
        writer.append("label", 2, "Star", **ADA)
        assert reader.labels()["id"].tolist() == [1, 2]


def test_read_only_needs_an_existing_store(tmp_path):
    with pytest.raises(StoreError, match=r"no label store at .* to open read-only"):
        LabelStore(tmp_path / "missing.sqlite", readonly=True)
    assert not (tmp_path / "missing.sqlite").exists()


def test_a_bad_label_file_is_a_clear_error(tmp_path, catalogue):
    bad = tmp_path / "test_set.json"
    bad.write_text("{not json")
    with LabelStore(":memory:") as store:
        with pytest.raises(LabelFileError, match=r"cannot read labels from .*test_set\.json"):
            import_astronomical_test_set(store, catalogue, bad, {0: "Star"})
        bad.write_text(json.dumps({catalogue.id_at(0): 7}))
        with pytest.raises(LabelFileError, match="label 7 is not -1"):
            import_astronomical_test_set(store, catalogue, bad, {0: "Star"})
        with pytest.raises(LabelFileError, match="no label file at"):
            import_astronomical_test_set(store, catalogue, tmp_path / "nope.json", {})
        assert store.n_events == 0


# -- a full disk ----------------------------------------------------------------------


def fill_until_full(store, start=0):
    """Append until the disk is full; return the acknowledged row ids and the error."""
    acked = []
    for i in range(start, start + 100_000):
        try:
            store.append("label", i, "Star", note="x" * 500, **ADA)
        except StoreError as exc:
            return acked, exc
        acked.append(i)
    raise AssertionError("the disk never filled")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 512 KiB tmpfs, where this machine lets us mount one (root, CAP_SYS_ADMIN)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command; the file-size-limit test covers a full disk")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the "
                    "file-size-limit test covers a full disk")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_loses_no_acknowledged_label(tiny_disk):
    path = tiny_disk / "labels.sqlite"
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * 96 * 1024)
    with LabelStore(path) as store:
        acked, error = fill_until_full(store)
        assert acked, "the store should take some labels before the disk fills"
        assert "disk is full" in str(error)
        assert "nothing was saved" in str(error)
        assert store.labels()["id"].tolist() == acked  # reads still work
        filler.unlink()  # free some space: labelling goes on
        store.append("label", 10**6, "QSO", **ADA)
    with LabelStore(path) as again:
        assert again.labels()["id"].tolist() == [*acked, 10**6]
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()


_FSIZE_CHILD = textwrap.dedent("""
    import json, resource, signal, sys
    from armillary.errors import StoreError
    from armillary.store import LabelStore
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG, not a killed process
    store = LabelStore(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, resource.RLIM_INFINITY))
    acked = []
    for i in range(100_000):
        try:
            store.append("label", i, "Star", note="x" * 500, annotator="ada",
                         session_id="s1")
        except StoreError as exc:
            print(json.dumps({"acked": acked, "error": str(exc)}))
            break
        acked.append(i)
""")


def test_a_file_size_limit_loses_no_acknowledged_label(tmp_path):
    """The unprivileged stand-in for a full disk: RLIMIT_FSIZE on a child process."""
    path = tmp_path / "labels.sqlite"
    done = subprocess.run([sys.executable, "-c", _FSIZE_CHILD, str(path)],
                          capture_output=True, text=True, check=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["acked"], "the store should take some labels before the limit"
    assert "nothing was saved" in report["error"]
    with LabelStore(path) as store:
        assert store.labels()["id"].tolist() == report["acked"]
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
