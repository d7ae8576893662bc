"""Tests of armillary.catalogue: FITS -> native-endian HDF5 cache -> vaex, ids and values."""

from __future__ import annotations

import math
import shutil
import time

import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from armillary.catalogue import CACHE_VERSION, Catalogue, open_catalogue
from armillary.datasets import make_catalogue
from armillary.errors import (
    CatalogueError,
    CatalogueNotFoundError,
    ColumnNotFoundError,
    DuplicateIdError,
    UnknownIdError,
)

N = 2000


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_catalogue(N, seed=5, path=tmp_path_factory.mktemp("sky") / "sky.fits",
                          thumbnails=10)


@pytest.fixture(scope="module")
def fits_data(source):
    return fits.getdata(source, 1)


@pytest.fixture(scope="module")
def cat(source):
    return open_catalogue(source)


@pytest.fixture
def fresh(source):
    """A catalogue of its own, for tests that add derived columns."""
    return open_catalogue(source)


def write_table(path, **columns):
    Table(columns).write(path, format="fits", overwrite=True)
    return path


# -- the cache ---------------------------------------------------------------------


def test_opens_with_metadata(cat, source):
    assert isinstance(cat, Catalogue)
    assert len(cat) == N
    assert cat.source == source
    assert cat.name == "sky"
    assert cat.id_column == "ID"
    assert cat.columns[:4] == ["ID", "RA", "DEC", "u"]
    assert "thumbnail" in cat.columns
    assert "sky" in repr(cat)


def test_cache_is_native_hdf5_beside_the_source(cat, source):
    assert cat.cache_path == source.with_name("sky.fits.armillary.hdf5")
    with h5py.File(cat.cache_path, "r") as h5:
        assert h5.attrs["armillary_fingerprint"] == cat.fingerprint
        assert h5.attrs["armillary_cache_version"] == CACHE_VERSION
        assert h5.attrs["armillary_source"] == str(source)
        assert h5["table/columns/g/data"].dtype.isnative
        assert h5["table/columns/RA/data"].dtype == np.float64
        assert h5["table/columns/g"].attrs["unit"] == "mag"
    for name in ("RA", "g", "labels"):
        assert cat.df.columns[name].dtype.isnative


def test_binning_works_on_native_columns(cat):
    counts = cat.df.count(binby=[cat.df.g, cat.df.r], shape=16, limits=[[5, 40], [5, 40]])
    assert counts.shape == (16, 16)
    assert counts.sum() == N


def test_values_match_the_fits_file(cat, fits_data):
    for name in ("RA", "DEC", "u", "w2_err", "redshift", "labels"):
        np.testing.assert_array_equal(cat.column(name), fits_data[name])
    np.testing.assert_array_equal(np.isnan(cat.column("Lx")), np.isnan(fits_data["Lx"]))
    assert list(cat.column("ID")) == [s.strip() for s in fits_data["ID"]]
    assert cat.column("thumbnail")[9] == "sky_thumbnails/000009.png"
    assert cat.column("thumbnail")[10] == ""


def test_second_open_reuses_the_cache(cat, source):
    before = cat.cache_path.stat().st_mtime_ns
    start = time.perf_counter()
    again = open_catalogue(source)
    assert time.perf_counter() - start < 2.0
    assert again.cache_path.stat().st_mtime_ns == before
    assert again.fingerprint == cat.fingerprint


def test_changed_source_rebuilds_the_cache(tmp_path, source):
    path = tmp_path / "sky.fits"
    shutil.copy(source, path)
    first = open_catalogue(path)
    old_g = first.column("g")
    make_catalogue(N, seed=6, path=path, thumbnails=0)
    second = open_catalogue(path)
    assert second.fingerprint != first.fingerprint
    np.testing.assert_array_equal(second.column("g"), fits.getdata(path, 1)["g"])
    assert not np.array_equal(second.column("g"), old_g)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary left behind


def test_cache_dir(tmp_path, source):
    cat = open_catalogue(source, cache_dir=tmp_path / "caches")
    assert cat.cache_path.parent == tmp_path / "caches"
    assert cat.cache_path.name.startswith("sky.fits.")
    assert cat.cache_path.name.endswith(".armillary.hdf5")
    assert len(cat) == N


def test_corrupt_cache_is_rebuilt(tmp_path, source):
    path = tmp_path / "sky.fits"
    shutil.copy(source, path)
    cache = open_catalogue(path).cache_path
    cache.write_bytes(b"not an hdf5 file")
    assert len(open_catalogue(path)) == N
    with h5py.File(cache, "r") as h5:
        assert "armillary_fingerprint" in h5.attrs


# -- ids ---------------------------------------------------------------------------


def test_string_ids_round_trip(cat, fits_data):
    ids = cat.ids
    assert ids.shape == (N,)
    assert ids[0] == fits_data["ID"][0].strip()
    assert isinstance(ids[0], str)
    picks = np.random.default_rng(0).choice(N, 50, replace=False)
    np.testing.assert_array_equal(cat.index_of(ids[picks]), picks)
    np.testing.assert_array_equal(cat.index_of(list(ids[picks])), picks)
    assert cat.index_of(ids[picks]).dtype == np.int64
    assert cat.position(ids[123]) == 123
    assert cat.position(ids[123].encode()) == 123
    assert cat.id_at(123) == ids[123]


def test_unknown_id_names_the_id_and_the_catalogue(cat):
    with pytest.raises(UnknownIdError, match=r"'SDSS J000000\.00\+000000\.0_9' .*'sky'"):
        cat.position("SDSS J000000.00+000000.0_9")
    with pytest.raises(UnknownIdError, match="2 ids 'nope', 'nada'"):
        cat.index_of([cat.id_at(0), "nope", "nada"])
    with pytest.raises(KeyError):  # UnknownIdError is a KeyError too
        cat.position(17)


def test_row_numbers_as_ids(source):
    cat = open_catalogue(source, id_column=None)
    assert cat.id_column is None
    np.testing.assert_array_equal(cat.ids, np.arange(N))
    assert cat.position(5) == 5
    assert cat.id_at(7) == 7
    np.testing.assert_array_equal(cat.index_of(np.array([3, 1])), [3, 1])
    with pytest.raises(UnknownIdError, match=f"id {N} not in catalogue 'sky'"):
        cat.position(N)
    with pytest.raises(UnknownIdError, match="-1"):
        cat.index_of([0, -1])


def test_integer_id_column(tmp_path):
    objid = np.array([9_000_000_001, 42, 7, 123_456_789_012], dtype=">i8")
    path = write_table(tmp_path / "ints.fits", OBJID=objid, flux=np.arange(4.0))
    cat = open_catalogue(path, id_column="OBJID")
    np.testing.assert_array_equal(cat.ids, objid)
    np.testing.assert_array_equal(cat.index_of([7, 9_000_000_001]), [2, 0])
    assert cat.position(np.int64(42)) == 1
    assert cat.id_at(3) == 123_456_789_012
    with pytest.raises(UnknownIdError, match="'7'"):
        cat.position("7")


def test_id_at_outside_the_catalogue(cat):
    with pytest.raises(IndexError, match=f"row {N} is outside catalogue 'sky'"):
        cat.id_at(N)


def test_duplicate_ids(tmp_path):
    path = write_table(tmp_path / "dup.fits", NAME=np.array(["a", "b", "a", "c", "b"]),
                       x=np.arange(5.0))
    with pytest.raises(DuplicateIdError, match=r"'NAME'.*'a' \(rows 0, 2\).*'b' \(rows 1, 4\)"):
        open_catalogue(path, id_column="NAME")
    assert len(open_catalogue(path, id_column=None)) == 5


def test_duplicate_integer_ids(tmp_path):
    path = write_table(tmp_path / "dupi.fits", OBJID=np.array([5, 6, 5]), x=np.arange(3.0))
    with pytest.raises(DuplicateIdError, match=r"'OBJID'.*5 \(rows 0, 2\)"):
        open_catalogue(path, id_column="OBJID")


def test_id_index_is_stored_in_the_cache_and_other_id_columns_work(tmp_path):
    path = write_table(tmp_path / "two_ids.fits", NAME=np.array(["c", "a", "b"]),
                       OBJID=np.array([30, 10, 20]))
    by_name = open_catalogue(path, id_column="NAME")
    with h5py.File(by_name.cache_path, "r") as h5:
        assert h5["armillary_index/NAME/order"].shape == (3,)
    assert by_name.position("b") == 2
    by_objid = open_catalogue(path, id_column="OBJID")  # same cache, index made in memory
    assert by_objid.cache_path == by_name.cache_path
    np.testing.assert_array_equal(by_objid.index_of([20, 30, 10]), [2, 0, 1])


def test_hash_collisions_are_told_apart(tmp_path, monkeypatch):
    import armillary._cache
    import armillary._ids

    def clash(strings):
        return np.zeros(strings.lengths.size, np.uint64)

    for module in (armillary._cache, armillary._ids):  # the cache writer, the lookups
        monkeypatch.setattr(module, "fnv1a", clash)
    path = write_table(tmp_path / "clash.fits", NAME=np.array(["p", "q", "r", "s"]))
    cat = open_catalogue(path, id_column="NAME")  # every hash equal, yet no duplicates
    np.testing.assert_array_equal(cat.index_of(["s", "p", "r"]), [3, 0, 2])
    with pytest.raises(UnknownIdError, match="'t'"):
        cat.position("t")
    clash = write_table(tmp_path / "clash2.fits", NAME=np.array(["p", "q", "p"]))
    with pytest.raises(DuplicateIdError, match=r"'p' \(rows 0, 2\)"):
        open_catalogue(clash, id_column="NAME")


def test_float_id_column_is_refused(source):
    with pytest.raises(CatalogueError, match=r"'RA'.*integers or strings"):
        open_catalogue(source, id_column="RA")


# -- values ------------------------------------------------------------------------


def test_row_gives_python_scalars(cat, fits_data):
    row = cat.row(0, ["ID", "g", "labels", "Lx", "thumbnail"])
    assert row["ID"] == cat.id_at(0)
    assert type(row["g"]) is float
    assert row["g"] == pytest.approx(float(fits_data["g"][0]))
    assert type(row["labels"]) is int
    assert row["thumbnail"] == "sky_thumbnails/000000.png"
    missing = int(np.flatnonzero(np.isnan(fits_data["Lx"]))[0])
    assert math.isnan(cat.row(missing, ["Lx"])["Lx"])
    assert set(cat.row(1)) == set(cat.columns)
    assert cat.row(2, ["u - g"])["u - g"] == pytest.approx(
        float(fits_data["u"][2] - fits_data["g"][2]), rel=1e-6)


def test_to_numpy_columns_and_expressions(cat, fits_data):
    features = cat.to_numpy(["u - g", "g-j", "w1", "labels"])
    assert features.shape == (N, 4)
    assert features.dtype == np.float32
    assert features.flags.c_contiguous
    np.testing.assert_allclose(features[:, 0], fits_data["u"] - fits_data["g"], rtol=1e-6)
    np.testing.assert_allclose(features[:, 1], fits_data["g"] - fits_data["j"], rtol=1e-6)
    np.testing.assert_array_equal(features[:, 3], fits_data["labels"])
    assert cat.to_numpy("RA", dtype=np.float64)[5, 0] == fits_data["RA"][5]


def test_to_numpy_unknown_column(cat, source):
    with pytest.raises(ColumnNotFoundError, match=rf"'gg'.*{source.name}.*available.*\bw1\b"):
        cat.to_numpy(["u", "gg"])
    with pytest.raises(ColumnNotFoundError, match=r"'nope' \(in expression 'u - nope'\)"):
        cat.to_numpy(["u - nope"])


def test_to_numpy_refuses_strings_and_bad_expressions(cat):
    with pytest.raises(CatalogueError, match=r"'ID'.*not numbers"):
        cat.to_numpy(["g", "ID"])
    with pytest.raises(CatalogueError, match="not a valid expression"):
        cat.to_numpy(["u -"])
    with pytest.raises(CatalogueError, match="at least one"):
        cat.to_numpy([])


def test_derive_adds_a_virtual_column(fresh):
    assert fresh.derive("g_j", "g - j") is fresh
    assert "g_j" in fresh.columns
    np.testing.assert_allclose(fresh.column("g_j"), fresh.column("g") - fresh.column("j"),
                               rtol=1e-6)
    np.testing.assert_allclose(fresh.to_numpy(["g_j"])[:, 0], fresh.column("g_j"))
    fresh.derive("g_j", "g - k")  # replaces
    np.testing.assert_allclose(fresh.column("g_j"), fresh.column("g") - fresh.column("k"),
                               rtol=1e-6)
    with pytest.raises(ColumnNotFoundError, match="'q'"):
        fresh.derive("bad", "q * 2")
    with pytest.raises(CatalogueError, match="'g' is a column"):
        fresh.derive("g", "r")
    with pytest.raises(CatalogueError, match="identifier"):
        fresh.derive("g - r", "g - r")


def test_column_unknown(cat):
    with pytest.raises(ColumnNotFoundError, match="'nope'"):
        cat.column("nope")


# -- odd tables --------------------------------------------------------------------


def test_scaled_unsigned_bool_and_vector_columns(tmp_path):
    path = tmp_path / "odd.fits"
    columns = [
        fits.Column("K", "K", array=np.array([1, 2, 3])),
        fits.Column("U16", "I", bzero=32768, array=np.array([0, 40000, 65535], np.uint16)),
        fits.Column("FLAG", "L", array=np.array([True, False, True])),
        fits.Column("APER", "3E", array=np.arange(9, dtype=np.float32).reshape(3, 3)),
        fits.Column("NAME", "6A", array=np.array(["x ", " y", "zz"])),
        fits.Column("VAR", "PJ()", array=np.array([[1], [2, 3], []], dtype=object)),
    ]
    fits.BinTableHDU.from_columns(columns).writeto(path)
    with pytest.warns(UserWarning, match=r"VAR \(variable-length array\)"):
        cat = open_catalogue(path, id_column="K")
    assert "VAR" not in cat.columns
    assert [c for c in cat.columns if c.startswith("APER")] == ["APER_0", "APER_1", "APER_2"]
    np.testing.assert_array_equal(cat.column("APER_1"), [1, 4, 7])
    np.testing.assert_array_equal(cat.column("U16"), [0, 40000, 65535])
    np.testing.assert_array_equal(cat.column("FLAG"), [True, False, True])
    assert list(cat.column("NAME")) == ["x", " y", "zz"]
    assert cat.position(2) == 1
    np.testing.assert_array_equal(cat.to_numpy(["FLAG", "U16"])[:, 1], [0, 40000, 65535])


def test_first_table_hdu_is_read(tmp_path):
    path = tmp_path / "two.fits"
    hdus = [fits.PrimaryHDU(np.zeros((2, 2))),
            fits.BinTableHDU.from_columns([fits.Column("A", "J", array=np.array([4, 5]))]),
            fits.BinTableHDU.from_columns([fits.Column("B", "J", array=np.array([6]))])]
    fits.HDUList(hdus).writeto(path)
    cat = open_catalogue(path, id_column="A")
    assert cat.columns == ["A"]
    assert cat.position(5) == 1


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_other_formats_through_vaex(tmp_path, suffix):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"name": ["a", "b", "c"], "mag": [20.5, 21.0, np.nan]})
    path = tmp_path / f"t{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    cat = open_catalogue(path, id_column="name")
    assert cat.position("c") == 2
    assert cat.name == "t"
    np.testing.assert_array_equal(cat.to_numpy(["mag"])[:2, 0], [20.5, 21.0])
    assert np.isnan(cat.row(2, ["mag"])["mag"])


# -- errors ------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "absent.fits"
    with pytest.raises(CatalogueNotFoundError, match=r"absent\.fits"):
        open_catalogue(path)
    with pytest.raises(FileNotFoundError):
        open_catalogue(path)


def test_directory(tmp_path):
    with pytest.raises(CatalogueError, match="is a directory"):
        open_catalogue(tmp_path)


def test_missing_id_column(source):
    with pytest.raises(ColumnNotFoundError, match=r"'OBJID'.*available columns: ID, RA, DEC"):
        open_catalogue(source, id_column="OBJID")


def test_not_fits(tmp_path):
    path = tmp_path / "text.fits"
    path.write_text("just some text\n")
    with pytest.raises(CatalogueError, match=r"text\.fits.*FITS"):
        open_catalogue(path)


def test_truncated_fits(tmp_path, source):
    path = tmp_path / "cut.fits"
    path.write_bytes(source.read_bytes()[: 2880 * 4 + 1000])
    with pytest.warns(UserWarning, match="truncated"), \
            pytest.raises(CatalogueError, match=r"cut\.fits.*complete FITS"):
        open_catalogue(path)


def test_fits_without_a_table(tmp_path):
    path = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(path)
    with pytest.raises(CatalogueError, match="no table HDU"):
        open_catalogue(path)


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "table.xyz"
    path.write_text("a,b\n")
    with pytest.raises(CatalogueError, match=r"unsupported.*'\.xyz'.*\.fits"):
        open_catalogue(path)
