"""The cache: where it lives, when it is rebuilt, that a failed conversion leaves nothing
behind, the progress bar, optimise=True, memory bounds, and the errors of opening."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import tracemalloc

import h5py
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table

import armillary._cache
import armillary._fits
from armillary.catalogue import open_catalogue
from armillary.datasets import make_catalogue
from armillary.errors import CatalogueError, CatalogueNotFoundError

N = 1500


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_catalogue(N, seed=9, path=tmp_path_factory.mktemp("sky") / "sky.fits",
                          thumbnails=0)


@pytest.fixture
def copy(tmp_path, source):
    """A private copy of the example catalogue in its own folder."""
    folder = tmp_path / "data"
    folder.mkdir()
    return shutil.copy(source, folder / "sky.fits")


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(armillary._cache, "CHUNK_ROWS", 200)


# -- where -------------------------------------------------------------------------


def test_environment_variable_then_cache_dir(copy, tmp_path, monkeypatch):
    monkeypatch.setenv("ARMILLARY_CACHE_DIR", str(tmp_path / "env"))
    cat = open_catalogue(copy, progress=False)
    assert cat.cache_path.parent == tmp_path / "env"
    assert not list(copy.parent.glob("*.hdf5"))
    assert open_catalogue(copy, cache_dir=tmp_path / "arg").cache_path.parent == \
        tmp_path / "arg"


@contextlib.contextmanager
def read_only(folder):
    """Make ``folder`` read-only for this process: chmod, or for root (whom chmod does not
    stop) the immutable attribute where the file system and capabilities allow it."""
    os.chmod(folder, 0o555)
    immutable = False
    try:
        if armillary._cache.writable(folder) and shutil.which("chattr"):
            immutable = subprocess.run(["chattr", "+i", str(folder)],
                                       capture_output=True).returncode == 0
        if armillary._cache.writable(folder):
            pytest.skip("cannot make a folder read-only here (root, and no chattr +i on "
                        "this file system); test_unwritable_folder_simulated covers it")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        os.chmod(folder, 0o755)


def test_read_only_folder_falls_back_to_the_user_cache(copy, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with read_only(copy.parent):
        cat = open_catalogue(copy, progress=False)
        assert sorted(p.name for p in copy.parent.iterdir()) == ["sky.fits"]
    assert cat.cache_path.parent == tmp_path / "xdg" / "armillary"
    assert cat.cache_path.name.startswith("sky.fits.")
    assert len(cat) == N


def test_unwritable_folder_simulated(copy, tmp_path, monkeypatch):
    """As root cannot be kept out by chmod, pretend the write probe fails there."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    probe = armillary._cache.writable
    monkeypatch.setattr(armillary._cache, "writable",
                        lambda folder: folder != copy.parent and probe(folder))
    cat = open_catalogue(copy, progress=False)
    assert cat.cache_path.parent == tmp_path / "xdg" / "armillary"
    assert not list(copy.parent.glob("*.hdf5"))
    assert len(cat) == N


def test_write_probe_creates_a_file(tmp_path):
    assert armillary._cache.writable(tmp_path)
    assert not armillary._cache.writable(tmp_path / "missing")
    assert not list(tmp_path.iterdir())  # the probe cleans up


def test_unwritable_cache_dir_is_an_error(copy, tmp_path, monkeypatch):
    monkeypatch.setattr(armillary._cache, "writable", lambda folder: False)
    with pytest.raises(CatalogueError, match=r"cannot write to .*locked \(cache_dir\); "
                                             "pass cache_dir= a writable folder"):
        open_catalogue(copy, cache_dir=tmp_path / "locked")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CatalogueError, match="cannot create the cache folder"):
        open_catalogue(copy, cache_dir=blocker / "sub")


# -- fresh -------------------------------------------------------------------------


def test_changed_header_with_same_size_and_mtime_rebuilds(copy):
    first = open_catalogue(copy, progress=False)
    stat = copy.stat()
    raw = bytearray(copy.read_bytes())
    at = raw.index(b"ARMSEED =")  # a card of the table's header
    raw[at : at + 30] = b"ARMSEED =                   10"
    copy.write_bytes(bytes(raw))
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert copy.stat().st_size == stat.st_size
    second = open_catalogue(copy, progress=False)
    assert second.fingerprint != first.fingerprint
    with h5py.File(second.cache_path, "r") as h5:
        assert h5.attrs["armillary_fingerprint"] == second.fingerprint


def test_interrupted_conversion_leaves_no_cache(copy, monkeypatch, small_chunks):
    calls = []
    write = armillary._cache._write_chunk

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return write(*args)

    monkeypatch.setattr(armillary._cache, "_write_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        open_catalogue(copy, progress=False)
    assert sorted(p.name for p in copy.parent.iterdir()) == ["sky.fits"]
    monkeypatch.setattr(armillary._cache, "_write_chunk", write)
    stale = copy.with_name(".sky.fits.armillary.hdf5.99999.tmp")  # a killed process's
    stale.write_bytes(b"half a cache")
    cat = open_catalogue(copy, progress=False)
    assert len(cat) == N
    assert cat.cache_path.name == "sky.fits.armillary.hdf5"


def test_failure_in_the_reader_leaves_no_cache(copy, monkeypatch, small_chunks):
    """The reader runs ahead in a thread of its own: its errors stop the conversion too."""
    rows = armillary._fits.FitsReader._rows
    calls = []

    def failing(self, *args):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("disk gone")
        return rows(self, *args)

    monkeypatch.setattr(armillary._fits.FitsReader, "_rows", failing)
    with pytest.raises(RuntimeError, match="disk gone"):
        open_catalogue(copy, progress=False)
    assert sorted(p.name for p in copy.parent.iterdir()) == ["sky.fits"]


_KILLED = """
import sys, time
import armillary._cache as cache
from armillary.catalogue import open_catalogue

cache.CHUNK_ROWS = 100
write = cache._write_chunk
def slow(*args):
    write(*args)
    print("writing", flush=True)
    time.sleep(60)
cache._write_chunk = slow
open_catalogue(sys.argv[1], progress=False)
"""


@pytest.mark.skipif(os.name == "nt", reason="kills a process with SIGKILL")
def test_killed_conversion_leaves_no_cache_that_is_used(copy):
    """A process killed while converting (as by a crash or a power cut, which the fsync
    before the rename covers) leaves at most its temporary file, never used as a cache."""
    child = subprocess.Popen([sys.executable, "-c", _KILLED, str(copy)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    tmp = f".sky.fits.armillary.hdf5.{child.pid}.tmp"
    left = sorted(p.name for p in copy.parent.iterdir())
    assert left == [tmp, f"{tmp}.keys", "sky.fits"]  # the half cache, the id keys spooled
    cat = open_catalogue(copy, progress=False)
    assert len(cat) == N
    np.testing.assert_array_equal(cat.column("RA"), fits.getdata(copy, 1)["RA"])


def test_cache_is_fsynced_before_it_is_renamed(copy, monkeypatch, small_chunks):
    """Writeback starts while the conversion runs; the fsync before the rename stays."""
    events = []
    monkeypatch.setattr(armillary._cache, "_WRITEBACK_BYTES", 1)
    monkeypatch.setattr(armillary._cache, "_writeback_starter",
                        lambda: lambda fd: events.append("writeback"))
    fsync = armillary._cache._fsync
    monkeypatch.setattr(armillary._cache, "_fsync", lambda path, directory=False: (
        events.append(("fsync", path.name, directory)), fsync(path, directory))[1])
    replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (
        events.append(("replace", os.path.basename(a))), replace(a, b))[1])
    cat = open_catalogue(copy, progress=False)
    tmp = f".sky.fits.armillary.hdf5.{os.getpid()}.tmp"
    assert events.count("writeback") >= N // 200  # a few per chunk here
    assert [e for e in events if e != "writeback"] == [
        ("fsync", tmp, False), ("replace", tmp), ("fsync", "data", True)]
    assert events.index(("fsync", tmp, False)) > max(
        k for k, e in enumerate(events) if e == "writeback")
    assert len(cat) == N


def test_short_writes_are_completed(copy, monkeypatch):
    """A write may take fewer bytes than given (large writes, signals): the rest follows."""
    if not hasattr(os, "pwrite"):
        pytest.skip("no os.pwrite")
    pwrite = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, at: pwrite(fd, data[:777], at))
    cat = open_catalogue(copy, progress=False)
    data = fits.getdata(copy, 1)
    np.testing.assert_array_equal(cat.column("RA"), data["RA"])
    assert list(cat.column("ID")) == [s.strip() for s in data["ID"]]


def test_reader_running_ahead_never_overwrites_a_chunk_being_written(copy, monkeypatch,
                                                                      small_chunks):
    """The FITS reader reuses its arrays from chunk to chunk, but only those of chunks
    the writer is done with, however far ahead of a slow writer it runs."""
    write = armillary._cache._write_chunk

    def slow(*args):
        time.sleep(0.02)  # the reader fills the queue meanwhile
        return write(*args)

    monkeypatch.setattr(armillary._cache, "_write_chunk", slow)
    cat = open_catalogue(copy, progress=False)
    data = fits.getdata(copy, 1)
    for name in ("RA", "DEC", "u", "w2_err", "Lx", "labels"):
        np.testing.assert_array_equal(cat.column(name), data[name])


def test_strings_and_ids_across_many_chunks(copy, small_chunks):
    cat = open_catalogue(copy, progress=False)
    expected = [s.strip() for s in fits.getdata(copy, 1)["ID"]]
    assert list(cat.column("ID")) == expected
    assert cat.position(expected[1234]) == 1234
    with h5py.File(cat.cache_path, "r") as h5:
        assert bool(h5["armillary_index/ID"].attrs["unique"])


def test_progress_bar(copy, capsys, monkeypatch):
    monkeypatch.setattr(armillary._cache, "_PROGRESS_DELAY", 0)
    open_catalogue(copy, cache_dir=copy.parent / "a")
    assert "Converting sky.fits" in capsys.readouterr().err
    open_catalogue(copy, cache_dir=copy.parent / "b", progress=False)
    assert "Converting" not in capsys.readouterr().err


def test_conversion_memory_is_bounded(tmp_path, monkeypatch):
    """A 24 MB table converts with a few chunks in memory (tracemalloc sees numpy)."""
    monkeypatch.setattr(armillary._cache, "CHUNK_ROWS", 16_384)
    n = 300_000
    columns = [fits.Column(f"c{k}", "D", array=np.full(n, float(k))) for k in range(10)]
    path = tmp_path / "wide.fits"
    fits.BinTableHDU.from_columns(columns).writeto(path)
    small = tmp_path / "small.fits"  # warm up: lazy imports are not the conversion's
    fits.BinTableHDU.from_columns([fits.Column("c", "D", array=np.zeros(3))]).writeto(small)
    open_catalogue(small, id_column=None, progress=False)
    tracemalloc.start()
    try:
        cat = open_catalogue(path, id_column=None, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8e6, f"peak {peak / 1e6:.1f} MB for a {n * 80 / 1e6:.0f} MB table"
    assert cat.column("c9")[-1] == 9.0


# -- optimise ------------------------------------------------------------------------


def test_optimise_shrinks_types_and_reports_bytes_saved(tmp_path, capsys):
    n = 1000
    rng = np.random.default_rng(1)
    table = Table({"objid": np.arange(n, dtype=np.int64),
                   "mag": rng.normal(20, 1, n), "huge": np.full(n, 1e300),
                   "small": rng.integers(-5, 5, n), "big": np.full(n, 2**40),
                   "cls": rng.choice(["STAR", "GALAXY"], n),
                   "name": [f"n{i}" for i in range(n)]})
    path = tmp_path / "opt.fits"
    table.write(path)
    plain = open_catalogue(path, id_column="objid", progress=False)
    cat = open_catalogue(path, id_column="objid", optimise=True)
    assert cat.cache_path != plain.cache_path
    assert cat.cache_path.name == "opt.fits.optimised.armillary.hdf5"
    report = cat.optimisation
    assert report["changes"]["mag"] == "float64 -> float32"
    assert report["changes"]["small"] == "int64 -> int8"
    assert report["changes"]["cls"] == "string -> category"
    assert set(report["changes"]) == {"mag", "small", "cls"}  # huge, big, name, ids stay
    assert report["bytes_saved"] == report["bytes_before"] - report["bytes_after"] > 0
    assert "optimise=True stores" in capsys.readouterr().err
    assert "saved" in repr(cat)
    assert cat.column("mag").dtype == np.float32
    np.testing.assert_allclose(cat.column("mag"), table["mag"], rtol=1e-6)
    assert cat.column("huge")[0] == 1e300
    assert cat.column("small").dtype == np.int8
    np.testing.assert_array_equal(cat.column("small"), table["small"])
    assert list(cat.column("cls")) == list(table["cls"])
    assert cat.row(3, ["cls"])["cls"] == table["cls"][3]
    assert cat.column("objid").dtype == np.int64
    assert cat.position(17) == 17
    again = open_catalogue(path, id_column="objid", optimise=True, progress=False)
    assert again.optimisation == report
    assert plain.optimisation is None


# -- errors ----------------------------------------------------------------------------


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CatalogueNotFoundError, match=r"absent\.parquet does not exist"):
        open_catalogue(tmp_path / "absent.parquet")
    with pytest.raises(CatalogueError, match="is a directory, not a catalogue file"):
        open_catalogue(tmp_path)


def test_unreadable_file(copy, monkeypatch):
    os.chmod(copy, 0)
    try:
        if os.access(copy, os.R_OK):  # root reads anything: pretend instead
            access = os.access
            monkeypatch.setattr(os, "access", lambda p, mode: (
                False if str(p) == str(copy) and mode == os.R_OK else access(p, mode)))
        with pytest.raises(CatalogueError, match=r"cannot read .*sky\.fits: permission "
                                                 "denied"):
            open_catalogue(copy)
    finally:
        os.chmod(copy, 0o644)


@pytest.mark.filterwarnings("ignore::UserWarning")  # astropy's, on the broken files
def test_corrupt_files(tmp_path):
    for name, content in (("bad.parquet", b"PAR1 not really"), ("bad.hdf5", b"nope"),
                          ("bad.arrow", b"ARROW1 no"), ("bad.vot", b"<VOTABLE><oops>"),
                          ("bad.ecsv", b"a b\n1 2\n")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CatalogueError, match=rf"{name}"):
            open_catalogue(tmp_path / name)


@pytest.mark.filterwarnings("ignore::UserWarning")  # astropy's, on the broken header
def test_corrupt_fits_header(copy):
    raw = bytearray(copy.read_bytes())
    at = raw.index(b"NAXIS2  =", 2880)
    raw[at : at + 30] = b"NAXIS2  =        garbage     "
    copy.write_bytes(bytes(raw))
    with pytest.raises(CatalogueError, match=r"sky\.fits.*FITS"):
        open_catalogue(copy)


def test_empty_tables(tmp_path):
    path = tmp_path / "empty.fits"
    fits.BinTableHDU.from_columns([fits.Column("ID", "J", array=np.zeros(0, np.int32))]) \
        .writeto(path)
    with pytest.raises(CatalogueError, match=r"empty\.fits has no rows"):
        open_catalogue(path)
    (tmp_path / "empty.csv").write_text("ID,x\n")
    with pytest.raises(CatalogueError, match=r"empty\.csv has no rows"):
        open_catalogue(tmp_path / "empty.csv")
    frame = pd.DataFrame({"ID": np.zeros(0, np.int64)})
    with pytest.raises(CatalogueError, match=r"DataFrame 'table' has no rows"):
        open_catalogue(frame, cache_dir=tmp_path)
    with pytest.raises(CatalogueError, match="has no column Armillary can read"), \
            pytest.warns(UserWarning, match=r"left out of the catalogue: t \(timestamp"):
        open_catalogue(pd.DataFrame({"t": pd.to_datetime(["2020-01-01"])}),
                       id_column=None, cache_dir=tmp_path)


def test_writer_keeps_what_a_buffered_handle_holds(tmp_path):
    """Writes at offsets (pwrite) come after what a buffered file still holds (a header
    written through it), and the header stays where it was written."""
    path = tmp_path / "x.npy"
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_2_0(
            handle, {"descr": "<u8", "fortran_order": False, "shape": (2, 3)})
        writer = armillary._cache._Writer(handle)
        part = (handle.tell(), np.dtype("<u8"))
        writer.put(part, 3, np.array([7, 8, 9], np.uint64))
        writer.put(part, 0, np.array([1, 2, 3], np.uint64))
    np.testing.assert_array_equal(np.load(path), [[1, 2, 3], [7, 8, 9]])
