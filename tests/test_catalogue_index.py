"""The id index: lookups against numpy, the index built in groups with bounded memory,
and the side index of another id column saved beside the cache (reused, invalidated with
the cache, never used half written)."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest
from astropy.table import Table

import armillary._cache
import armillary._ids
from armillary.catalogue import open_catalogue
from armillary.errors import DuplicateIdError, UnknownIdError

N = 3000


def _names(rows):
    return np.char.add("J", rows.astype(str))


@pytest.fixture
def table(tmp_path):
    """A FITS table with a string id column NAME and an integer id column OBJID, both in
    shuffled order."""
    rng = np.random.default_rng(0)
    rows = rng.permutation(N)
    path = tmp_path / "data" / "two.fits"
    path.parent.mkdir()
    Table({"NAME": _names(rows), "OBJID": rows * 11 - 5000, "x": rng.normal(size=N)}).write(
        path, format="fits"
    )
    return path


def _side_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".index.npy"))


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


@pytest.mark.parametrize("unique", [True, None])
def test_candidates_agree_with_searchsorted(unique):
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 500, 5000)  # repeats: runs of equal keys
    if unique:
        keys = rng.permutation(10_000)[:5000] * 3
    index = armillary._ids.IdIndex(keys.copy(), unique=unique)
    sorted_keys = np.sort(keys, kind="stable")
    queries = rng.integers(-10, keys.max() + 10, 4000)
    positions, lo, hi = index.candidates(queries)
    np.testing.assert_array_equal(lo, np.searchsorted(sorted_keys, queries, "left"))
    np.testing.assert_array_equal(hi, np.searchsorted(sorted_keys, queries, "right"))
    first = np.argsort(keys, kind="stable")[np.minimum(lo, keys.size - 1)]
    np.testing.assert_array_equal(positions, np.where(hi > lo, first, -1))


@pytest.mark.parametrize("column", ["NAME", "OBJID"])
def test_index_built_in_groups(table, monkeypatch, column):
    """A tiny group size: the stored index is sorted in many groups, and still right."""
    monkeypatch.setattr(armillary._ids, "_GROUP_ROWS", 100)
    cat = open_catalogue(table, id_column=column, progress=False)
    ids = cat.ids
    order = np.random.default_rng(2).permutation(N)
    np.testing.assert_array_equal(cat.index_of(ids[order]), order)
    with pytest.raises(UnknownIdError, match=r"'J-1'|-4999"):
        cat.index_of([ids[0], "J-1" if column == "NAME" else -4999])


def test_index_memory_is_bounded(tmp_path, monkeypatch):
    """Sorting 400,000 string ids needs one group of keys in memory, not all of them."""
    n = 400_000
    monkeypatch.setattr(armillary._ids, "_GROUP_ROWS", 20_000)
    monkeypatch.setattr(armillary._ids, "_SPOOL_ROWS", 8192)
    path = tmp_path / "ids.fits"
    Table({"NAME": _names(np.arange(n)[::-1])}).write(path, format="fits")
    write_index, peaks = armillary._cache._write_index, []

    def traced(*args):
        tracemalloc.start()
        try:
            return write_index(*args)
        finally:
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()

    monkeypatch.setattr(armillary._cache, "_write_index", traced)
    cat = open_catalogue(path, id_column="NAME", progress=False)
    whole = n * 16  # keys and rows of every id at once, before any sorting
    assert peaks[0] < whole / 2, f"peak {peaks[0] / 1e6:.1f} MB, all keys {whole / 1e6:.1f} MB"
    assert cat.position("J7") == n - 8


def test_interrupted_index_leaves_no_cache(table, monkeypatch):
    def broken(spool, group_rows=None):
        raise KeyboardInterrupt
        yield  # a generator, as sorted_runs is

    monkeypatch.setattr(armillary._cache, "sorted_runs", broken)
    with pytest.raises(KeyboardInterrupt):
        open_catalogue(table, id_column="NAME", progress=False)
    assert sorted(p.name for p in table.parent.iterdir()) == ["two.fits"]  # nor scratch


def test_side_index_is_saved_and_reused(table, monkeypatch):
    by_name = open_catalogue(table, id_column="NAME", progress=False)
    assert _side_files(table.parent) == []  # NAME's index is in the cache itself
    by_objid = open_catalogue(table, id_column="OBJID", progress=False)
    assert by_objid.cache_path == by_name.cache_path
    assert len(_side_files(table.parent)) == 1
    objids = by_objid.ids
    monkeypatch.setattr(
        armillary._ids, "build_side_index", lambda *a: pytest.fail("index built again")
    )
    again = open_catalogue(table, id_column="OBJID", progress=False)
    assert isinstance(again._index.keys, np.memmap)
    np.testing.assert_array_equal(again.index_of(objids[::-1]), np.arange(N)[::-1])
    assert _leftovers(table.parent) == []


def test_side_index_goes_with_the_cache(table):
    open_catalogue(table, id_column="NAME", progress=False)
    open_catalogue(table, id_column="OBJID", progress=False)
    [old] = _side_files(table.parent)
    stat = table.stat()
    os.utime(table, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # source "changed"
    open_catalogue(table, id_column="NAME", progress=False)  # rebuilt: the old one goes
    assert _side_files(table.parent) == []
    cat = open_catalogue(table, id_column="OBJID", progress=False)
    [new] = _side_files(table.parent)
    assert new != old
    assert cat.position(int(cat.ids[7])) == 7


def test_interrupted_side_index_is_not_used(table, monkeypatch):
    open_catalogue(table, id_column="NAME", progress=False)
    runs = armillary._ids.sorted_runs

    def interrupted(spool, group_rows=None):
        for k, run in enumerate(runs(spool, 500)):
            if k == 2:
                raise KeyboardInterrupt
            yield run

    monkeypatch.setattr(armillary._ids, "sorted_runs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        open_catalogue(table, id_column="OBJID", progress=False)
    assert _side_files(table.parent) == []
    assert _leftovers(table.parent) == []
    monkeypatch.setattr(armillary._ids, "sorted_runs", runs)
    cat = open_catalogue(table, id_column="OBJID", progress=False)
    assert cat.position(int(cat.ids[5])) == 5


def test_unreadable_side_index_is_built_again(table):
    open_catalogue(table, id_column="NAME", progress=False)
    cat = open_catalogue(table, id_column="OBJID", progress=False)
    [name] = _side_files(table.parent)
    (table.parent / name).write_bytes(b"not an index")
    again = open_catalogue(table, id_column="OBJID", progress=False)
    assert again.position(int(cat.ids[9])) == 9
    assert np.load(table.parent / name).shape == (2, N)


def test_side_index_in_memory_where_the_folder_is_read_only(table, monkeypatch):
    open_catalogue(table, id_column="NAME", progress=False)

    def refuse(*args):
        raise PermissionError("read-only")

    monkeypatch.setattr(armillary._ids, "KeySpool", refuse)
    cat = open_catalogue(table, id_column="OBJID", progress=False)
    assert cat.position(int(cat.ids[3])) == 3
    assert _side_files(table.parent) == []


def test_repeated_ids_of_another_column_save_nothing(tmp_path):
    path = tmp_path / "dup.fits"
    Table({"NAME": ["a", "b", "c", "d"] * 300, "K": np.arange(1200)}).write(path)
    open_catalogue(path, id_column="K", progress=False)
    with pytest.raises(DuplicateIdError, match=r"'NAME'.*repeated ids"):
        open_catalogue(path, id_column="NAME", progress=False)
    assert _side_files(tmp_path) == []
    assert _leftovers(tmp_path) == []


def test_rows_agree_with_candidates_and_populate_is_harmless(tmp_path):
    """``rows`` is the first part of ``candidates``; a lookup of many keys maps a
    memory-mapped index's pages first, with the same answers."""
    rng = np.random.default_rng(4)
    keys = np.sort(rng.choice(1 << 40, 50_000, replace=False)).astype(np.int64)
    order = rng.permutation(keys.size).astype(np.int64)
    path = tmp_path / "keys.npy"
    np.save(path, np.stack([keys, order]))
    mapped = np.load(path, mmap_mode="r")
    index = armillary._ids.IdIndex(mapped[0], mapped[1], unique=True)
    hits = keys[rng.integers(0, keys.size, 2000)]
    queries = np.concatenate([hits, rng.integers(0, 1 << 40, 500)])
    positions, _, _ = index.candidates(queries)
    np.testing.assert_array_equal(index.rows(queries), positions)
    at = np.searchsorted(keys, queries).clip(max=keys.size - 1)
    expected = np.where(np.isin(queries, keys), order[at], -1)
    np.testing.assert_array_equal(positions, expected)
