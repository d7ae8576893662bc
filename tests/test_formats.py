"""Every format open_catalogue reads, each from a real file written by astropy, pandas,
pyarrow or vaex in tmp_path, compared value by value with what the writer was given."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import MaskedColumn, QTable, Table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import armillary._cache
import armillary._fits
from armillary.catalogue import open_catalogue
from armillary.errors import CatalogueError
from armillary.formats import MAX_ELEMENTS

N = 40


def reference(n=N, vector=True):
    """A table with what catalogues hold: string and big-integer ids, floats with units
    and a NaN, booleans, integers with missing values, a vector column."""
    rng = np.random.default_rng(0)
    table = Table()
    table["name"] = [f"src{i:03d}" for i in range(n)]
    table["objid"] = np.arange(n, dtype=np.int64) * 1_000_000_007 + 2**40
    table["mag"] = rng.normal(20.0, 1.0, n)
    table["mag"].unit = u.mag
    flux = rng.random(n).astype(np.float32)
    flux[3] = np.nan
    table["flux"] = flux
    table["flag"] = rng.random(n) > 0.5
    table["count"] = MaskedColumn(rng.integers(0, 100, n).astype(np.int32),
                                  mask=np.arange(n) % 7 == 1)
    if vector:
        table["aper"] = rng.random((n, 3)).astype(np.float32)
    return table


def check_values(cat, table, masked=True, vector=True):
    """``cat`` holds ``table``'s values (masked ints stay masked where asked)."""
    assert len(cat) == len(table)
    assert list(cat.column("name")) == list(table["name"])
    np.testing.assert_array_equal(cat.column("objid"), table["objid"])
    np.testing.assert_allclose(cat.column("mag"), table["mag"], rtol=1e-12)
    np.testing.assert_allclose(cat.column("flux"), table["flux"], rtol=1e-6)  # text: repr
    np.testing.assert_array_equal(np.asarray(cat.column("flag"), bool), table["flag"])
    count = cat.column("count")
    good = ~table["count"].mask
    np.testing.assert_array_equal(np.asarray(count)[good], table["count"][good])
    if masked:
        np.testing.assert_array_equal(np.ma.getmaskarray(count), table["count"].mask)
        assert cat.row(1, ["count"])["count"] is None
    features = cat.to_numpy(["mag", "count"], dtype=np.float64)
    assert np.isnan(features[1, 1])  # missing: NaN as a feature, masked or NaN stored
    if vector:
        for k in range(3):
            np.testing.assert_array_equal(cat.column(f"aper_{k}"), table["aper"][:, k])
    assert cat.position("src007") == 7


@pytest.fixture(scope="module")
def table():
    return reference()


@pytest.fixture
def open_(tmp_path):
    def opener(source, **kwargs):
        kwargs.setdefault("id_column", "name")
        return open_catalogue(source, cache_dir=tmp_path / "cache", progress=False, **kwargs)

    return opener


# -- files -------------------------------------------------------------------------


def test_fits_written_by_astropy(tmp_path, table, open_):
    path = tmp_path / "t.fits"
    table.write(path)  # masked ints get TNULL, the vector column a repeat count
    assert fits.getheader(path, 1)["TNULL6"] is not None
    cat = open_(path)
    check_values(cat, table)
    assert cat.format == "fits"
    assert cat.df.units["mag"] == u.mag
    assert cat.df.columns["mag"].dtype.isnative


def test_votable(tmp_path, table, open_):
    path = tmp_path / "t.vot"
    table.write(path, format="votable")
    check_values(open_(path), table)


def test_csv_written_by_pandas(tmp_path, table, open_):
    frame = reference(vector=False).to_pandas()  # masked ints: pandas' nullable Int32
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    cat = open_(path)
    check_values(cat, reference(vector=False), vector=False)
    assert cat.format == "csv"


def test_duplicate_ids_in_a_csv(tmp_path, open_):
    from armillary.errors import DuplicateIdError

    path = tmp_path / "dup.csv"
    path.write_text("name,x\na,1\nb,2\na,3\n")
    with pytest.raises(DuplicateIdError, match=r"'name' of .*dup\.csv .*'a' \(rows 0, 2\)"):
        open_(path)
    assert open_(path, id_column=None).ids.tolist() == [0, 1, 2]  # stable row numbers


def test_tsv_and_compressed_csv(tmp_path, open_):
    frame = pd.DataFrame({"name": ["a", "b"], "x": [1.5, 2.5]})
    frame.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    frame.to_csv(tmp_path / "t.csv.gz", index=False)
    for path in (tmp_path / "t.tsv", tmp_path / "t.csv.gz"):
        cat = open_(path)
        np.testing.assert_array_equal(cat.column("x"), [1.5, 2.5])
        assert cat.position("b") == 1


def test_csv_types_settle_over_the_whole_file(tmp_path, open_, monkeypatch):
    import armillary._sources

    monkeypatch.setattr(armillary._sources, "_CSV_BLOCK", 1 << 10)  # many small blocks
    n = 3000
    frame = pd.DataFrame({"i": np.arange(n), "later_float": np.arange(n).astype(object),
                          "later_text": np.arange(n).astype(object)})
    frame.loc[n - 1, "later_float"] = 0.5
    frame.loc[n - 2, "later_text"] = "faint"
    frame.to_csv(tmp_path / "drift.csv", index=False)
    cat = open_(tmp_path / "drift.csv", id_column="i")
    assert cat.column("later_float").dtype == np.float64
    assert cat.column("later_float")[-1] == 0.5
    assert cat.column("later_text")[-2] == "faint"
    assert cat.column("later_text")[5] == "5"
    assert cat.position(2999) == 2999


def test_ecsv(tmp_path, table, open_):
    path = tmp_path / "t.ecsv"
    table.write(path)
    with pytest.warns(UserWarning, match=r"aper \(vector"):
        cat = open_(path)
    check_values(cat, table, vector=False)
    assert cat.df.units["mag"] == u.mag
    assert cat.column("objid").dtype == np.int64


def test_parquet_written_by_pandas_and_pyarrow(tmp_path, open_):
    frame = reference(vector=False).to_pandas()
    frame.to_parquet(tmp_path / "pandas.parquet")
    check_values(open_(tmp_path / "pandas.parquet"), reference(vector=False), vector=False)
    arrow = pa.table({"name": ["a", "b", "c"], "n": pa.array([1, None, 3], pa.int64()),
                      "v": pa.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
                                    pa.list_(pa.float64(), 2)),
                      "cls": pa.array(["x", "y", "x"]).dictionary_encode()})
    pq.write_table(arrow, tmp_path / "arrow.parquet", row_group_size=2)
    cat = open_(tmp_path / "arrow.parquet")
    assert np.ma.getmaskarray(cat.column("n")).tolist() == [False, True, False]
    np.testing.assert_array_equal(cat.column("v_1"), [2.0, 4.0, 6.0])
    assert list(cat.column("cls")) == ["x", "y", "x"]


def test_arrow_file_feather_and_stream(tmp_path, open_):
    frame = reference(vector=False).to_pandas()
    feather.write_feather(frame, tmp_path / "t.feather", chunksize=16)
    check_values(open_(tmp_path / "t.feather"), reference(vector=False), vector=False)
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    with pa.OSFile(str(tmp_path / "t.arrows"), "wb") as sink, \
            pa.ipc.new_stream(sink, arrow.schema) as writer:
        writer.write_table(arrow, max_chunksize=16)
    cat = open_(tmp_path / "t.arrows")
    check_values(cat, reference(vector=False), vector=False)
    assert cat.format == "arrow"


def test_hdf5_in_astropy_layout(tmp_path, table, open_):
    path = tmp_path / "astropy.hdf5"
    table.write(path, path="survey/cat", serialize_meta=True)
    cat = open_(path)
    check_values(cat, table)
    assert cat.df.units["mag"] == u.mag
    assert open_(path, hdu="survey/cat").cache_path != cat.cache_path
    with pytest.raises(CatalogueError, match=r"no table at 'nope'.*survey/cat"):
        open_(path, hdu="nope")


def test_hdf5_in_vaex_layout(tmp_path, open_):
    import vaex

    frame = reference(vector=False).to_pandas()
    frame["count"] = frame["count"].astype("float64")  # vaex.from_pandas: no nullable ints
    path = tmp_path / "vaex.hdf5"
    vaex.from_pandas(frame).export_hdf5(str(path))
    cat = open_(path)
    check_values(cat, reference(vector=False), masked=False, vector=False)
    assert cat.format == "hdf5"


def test_an_armillary_cache_opens_as_it_is(tmp_path, table, open_):
    path = tmp_path / "t.fits"
    table.write(path)
    first = open_(path)
    again = open_catalogue(first.cache_path, id_column="name")
    assert again.cache_path == first.cache_path
    assert again.name == "t"
    check_values(again, table)


# -- tables in memory ----------------------------------------------------------------


def test_astropy_table_and_qtable(table, open_):
    cat = open_(table, name="mine")
    check_values(cat, table)
    assert cat.name == "mine"
    assert cat.format == "astropy"
    assert cat.cache_path.name.startswith("mine.")
    assert open_(table, name="mine").cache_path == cat.cache_path  # same content, same cache
    qtable = QTable(reference())
    assert open_(qtable).df.units["mag"] == u.mag


def test_pandas_dataframe(open_):
    frame = reference(vector=False).to_pandas()
    frame["cls"] = pd.Categorical(["star", "qso"] * (N // 2))
    frame = frame.set_index("name")  # a named index becomes a column
    cat = open_(frame)
    check_values(cat, reference(vector=False), vector=False)
    assert list(cat.column("cls")[:3]) == ["star", "qso", "star"]
    assert cat.format == "pandas"


def test_numpy_structured_array(open_):
    array = np.zeros(4, dtype=[("name", "S5"), ("x", ">f8"), ("v", "<i2", (2,))])
    array["name"] = [b"a", b"b", b"c", b"d"]
    array["x"] = [1.0, 2.0, 3.0, 4.0]
    array["v"] = [[1, 2], [3, 4], [5, 6], [7, 8]]
    cat = open_(array)
    np.testing.assert_array_equal(cat.column("x"), array["x"])
    assert cat.df.columns["x"].dtype.isnative
    np.testing.assert_array_equal(cat.column("v_1"), [2, 4, 6, 8])
    assert cat.position("c") == 2


def test_other_objects_are_refused(open_):
    with pytest.raises(TypeError, match=r"a path, an astropy Table.*not list"):
        open_([1, 2, 3])
    with pytest.raises(TypeError, match="not ndarray"):
        open_(np.arange(3))


# -- FITS specifics --------------------------------------------------------------------


def test_fits_nulls_scaling_strings_bools_and_vectors(tmp_path, open_):
    path = tmp_path / "odd.fits"
    columns = [
        fits.Column("K", "K", array=np.array([1, 2, 3])),
        fits.Column("NULLED", "J", null=-99, array=np.array([5, -99, 7])),
        fits.Column("U16", "I", bzero=32768, array=np.array([0, 40000, 65535], np.uint16)),
        fits.Column("U64", "K", bzero=2**63, array=np.array([0, 2**63 + 5, 2**64 - 1],
                                                             np.uint64)),
        fits.Column("SCALED", "I", null=-1, array=np.array([0, -1, 2], np.int16)),
        fits.Column("FLAG", "L", array=np.array([True, False, True])),
        fits.Column("NAME", "6A", array=np.array(["x ", " y", "zz"])),
        fits.Column("IMG", "6E", dim="(3,2)", array=np.arange(18, dtype=np.float32)
                    .reshape(3, 2, 3)),
    ]
    fits.BinTableHDU.from_columns(columns).writeto(path)
    fits.setval(path, "TSCAL5", value=0.5, ext=1)  # stored values stay as they are
    fits.setval(path, "TZERO5", value=10.0, ext=1)
    reference = Table.read(path)
    cat = open_(path, id_column="K")
    assert np.ma.getmaskarray(cat.column("NULLED")).tolist() == [False, True, False]
    assert cat.row(1, ["NULLED"])["NULLED"] is None
    for name in ("U16", "U64", "FLAG"):
        np.testing.assert_array_equal(cat.column(name), reference[name])
        assert cat.column(name).dtype == reference[name].dtype
    # TNULL applies to stored values (FITS 4.0, 7.3.2), so the null of a scaled column is
    # NaN (astropy's Table.read gives it as 9.5)
    np.testing.assert_allclose(cat.column("SCALED"), [10.0, np.nan, 11.0])
    assert list(cat.column("NAME")) == ["x", " y", "zz"]
    flat = np.asarray(reference["IMG"]).reshape(3, -1)
    assert [c for c in cat.columns if c.startswith("IMG")] == [f"IMG_{k}" for k in range(6)]
    for k in range(6):
        np.testing.assert_array_equal(cat.column(f"IMG_{k}"), flat[:, k])


def _mixed_fits(path, n, plain_only=False):
    """A FITS table whose plain columns lie at odd offsets (after a byte), side by side
    in runs of one type (E E E and a 3E vector) between other types; unless
    ``plain_only``, also a string column, and scaled, TNULL and boolean ones inside the
    run of E columns."""
    rng = np.random.default_rng(3)
    floats = rng.normal(0, 1e3, (n, 6)).astype(np.float32)
    floats[::17, 1] = np.nan
    floats[5, 2] = -np.inf
    columns = [
        fits.Column("B", "B", array=rng.integers(0, 256, n).astype(np.uint8)),
        fits.Column("S", "3A", array=np.array([f"s{i % 50}" for i in range(n)])),
        fits.Column("E0", "E", array=floats[:, 0]),
        fits.Column("E1", "E", array=floats[:, 1]),
        fits.Column("E2", "E", array=floats[:, 2]),
        fits.Column("V", "3E", array=floats[:, 3:6]),
        fits.Column("J", "J", array=rng.integers(-2**31, 2**31 - 1, n).astype(np.int32)),
        fits.Column("D", "D", array=rng.normal(0, 1, n)),
        fits.Column("K", "K", array=rng.integers(-2**62, 2**62, n)),
        fits.Column("I", "I", array=rng.integers(-2**15, 2**15 - 1, n).astype(np.int16)),
    ]
    if not plain_only:
        columns[4:4] = [
            fits.Column("NULLED", "J", null=-7, array=np.where(np.arange(n) % 5 == 0, -7,
                                                                np.arange(n))),
            fits.Column("U16", "I", bzero=32768, array=np.arange(n, dtype=np.uint16) * 13),
            fits.Column("FLAG", "L", array=np.arange(n) % 3 == 0),
        ]
    else:
        columns = [c for c in columns if c.name != "S"]
    fits.BinTableHDU.from_columns(columns).writeto(path)
    if not plain_only:
        fits.setval(path, "TSCAL1", value=0.5, ext=1)  # B: scaled to float64
        fits.setval(path, "TZERO1", value=-3.0, ext=1)
    return Table.read(path, mask_invalid=False)


@pytest.mark.parametrize("plain_only", [False, True])
def test_fits_columns_convert_exactly_across_chunks_and_blocks(tmp_path, open_, monkeypatch,
                                                               plain_only):
    """Big-endian values become native ones bit for bit, with chunks and the blocks of
    records decoded at a time ending anywhere (also inside a vector)."""
    monkeypatch.setattr(armillary._cache, "CHUNK_ROWS", 37)
    monkeypatch.setattr(armillary._fits, "_BLOCK_BYTES", 300)
    path = tmp_path / "mixed.fits"
    n = 401
    reference = _mixed_fits(path, n, plain_only)
    cat = open_(path, id_column=None)
    names = list(cat.columns)
    expected = {}
    for name in reference.colnames:
        values = reference[name]
        if values.ndim > 1:
            expected.update({f"{name}_{k}": values[:, k] for k in range(values.shape[1])})
        else:
            expected[name] = values
    assert names == list(expected)
    for name, values in expected.items():
        got = cat.column(name)
        if name == "S":
            assert list(got) == [str(v) for v in values]
            continue
        data = np.ma.getdata(values)
        if name == "NULLED":
            np.testing.assert_array_equal(np.ma.getmaskarray(got), data == -7)
            np.testing.assert_array_equal(np.ma.getdata(got)[data != -7], data[data != -7])
            continue
        assert got.dtype == data.dtype.newbyteorder("="), name
        np.testing.assert_array_equal(np.asarray(got), data, err_msg=name)  # NaN == NaN
        assert np.asarray(got).view(np.uint8).tobytes() == (
            data.astype(data.dtype.newbyteorder("=")).view(np.uint8).tobytes())


def test_fits_reader_recycles_its_arrays_only_when_asked(tmp_path):
    path = tmp_path / "mixed.fits"
    reference = _mixed_fits(path, 100, plain_only=True)
    reader = armillary._fits.open_fits(path)
    try:
        fresh = list(reader.chunks(chunk_rows=9))
        recycled = [{k: v.copy() for k, v in c.items()} for c in
                    reader.chunks(chunk_rows=9, recycle=3)]
        views = list(reader.chunks(chunk_rows=9, recycle=3))
    finally:
        reader.close()
    assert len(fresh) == len(recycled) == 12
    for one, other in zip(fresh, recycled, strict=True):
        assert list(one) == list(other)
        for name in one:
            np.testing.assert_array_equal(one[name], other[name])
    np.testing.assert_array_equal(np.concatenate([c["E1"] for c in fresh]),
                                  reference["E1"])
    # chunk i's arrays are reused by chunk i + 3, and by no chunk in between
    assert np.shares_memory(views[0]["E0"], views[3]["E0"])
    assert not any(np.shares_memory(views[0]["E0"], views[k]["E0"]) for k in (1, 2))
    assert not any(np.shares_memory(fresh[0]["E0"], c["E0"]) for c in fresh[1:])


def test_fits_plain_columns_side_by_side_are_decoded_together(tmp_path):
    path = tmp_path / "mixed.fits"
    _mixed_fits(path, 10, plain_only=True)
    reader = armillary._fits.open_fits(path)
    try:
        runs = armillary._fits._runs(reader._dtype, reader._decode, list(reader.columns))
    finally:
        reader.close()
    assert [run.names for run in runs] == [
        ["B"], ["E0", "E1", "E2", "V_0", "V_1", "V_2"], ["J"], ["D"], ["K"], ["I"]]
    assert [run.offset for run in runs] == [0, 1, 25, 29, 37, 45]


def test_wide_vectors_and_variable_arrays_are_skipped_with_a_warning(tmp_path, open_):
    path = tmp_path / "wide.fits"
    wide = MAX_ELEMENTS + 1
    columns = [fits.Column("A", "J", array=np.array([1, 2])),
               fits.Column("SPEC", f"{wide}E", array=np.zeros((2, wide), np.float32)),
               fits.Column("VAR", "PJ()", array=np.array([[1], [2, 3]], dtype=object)),
               fits.Column("C", "C", array=np.array([1j, 2j], np.complex64))]
    fits.BinTableHDU.from_columns(columns).writeto(path)
    with pytest.warns(UserWarning, match=rf"SPEC \(vector of {wide}.*VAR \(variable.*C \("):
        cat = open_(path, id_column="A")
    assert cat.columns == ["A"]


def test_fits_hdu_by_index_and_name(tmp_path, open_):
    path = tmp_path / "two.fits"
    first = fits.BinTableHDU.from_columns([fits.Column("A", "J", array=np.array([4, 5]))],
                                          name="FIRST")
    second = fits.BinTableHDU.from_columns([fits.Column("B", "J", array=np.array([6]))],
                                           name="SECOND")
    fits.HDUList([fits.PrimaryHDU(np.zeros((2, 2))), first, second]).writeto(path)
    assert open_(path, id_column="A").columns == ["A"]
    by_index = open_(path, id_column="B", hdu=2)
    by_name = open_(path, id_column="B", hdu="second")
    assert by_index.columns == by_name.columns == ["B"]
    assert by_index.cache_path.name.startswith("two.fits.hdu-2.")
    with pytest.raises(CatalogueError, match=r"HDU 0 of .*two\.fits is an image, not a "
                                             r"table; its table HDUs are: 1 \(FIRST\), "
                                             r"2 \(SECOND\)"):
        open_(path, hdu=0, id_column=None)
    with pytest.raises(CatalogueError, match=r"no HDU 'THIRD'; its HDUs are 0 \(PRIMARY\)"):
        open_(path, hdu="THIRD", id_column=None)
    with pytest.raises(CatalogueError, match="no HDU 7"):
        open_(path, hdu=7, id_column=None)


def test_hdu_is_refused_for_single_table_formats(tmp_path, open_):
    path = tmp_path / "t.csv"
    path.write_text("name,x\na,1\n")
    with pytest.raises(CatalogueError, match=r"hdu=1 was given for .*t\.csv, a csv file"):
        open_(path, hdu=1)


def test_format_overrides_the_suffix(tmp_path, open_):
    path = tmp_path / "table.dat"
    path.write_text("name,x\na,1\nb,2\n")
    assert open_(path, format="csv").position("b") == 1
    with pytest.raises(CatalogueError, match="unknown format 'excel'"):
        open_(path, format="excel")


def test_gzipped_fits(tmp_path, table, open_):
    path = tmp_path / "t.fits.gz"
    table.write(path)
    cat = open_(path)
    assert cat.name == "t"
    check_values(cat, table)


_FORMS = {"B": np.uint8, "I": np.int16, "J": np.int32, "K": np.int64}
_OFFSETS = {"B": -128, "I": 2**15, "J": 2**31, "K": 2**63}


def _integer_fits(path, form, scale, zero, null, seed):
    """A one-column FITS table of raw integers with the given TSCAL, TZERO and TNULL."""
    dtype = np.dtype(_FORMS[form])
    info = np.iinfo(dtype)
    raw = np.random.default_rng(seed).integers(info.min, info.max, 30, dtype=dtype,
                                               endpoint=True)
    raw[4] = raw[9] if null else raw[4]
    column = fits.Column("X", form, array=raw, null=int(raw[4]) if null else None)
    fits.BinTableHDU.from_columns([column]).writeto(path)
    for key, value in (("TSCAL1", scale), ("TZERO1", zero)):
        if value is not None:  # set afterwards: astropy would rescale the array given
            fits.setval(path, key, value=value, ext=1)
    return raw


def _physical(raw, form, scale, zero):
    """Values by the FITS standard: TZERO + TSCAL * stored (integers for the unsigned
    offsets, as astropy gives them)."""
    if scale is None and zero == _OFFSETS[form]:
        unsigned = {"B": np.int8, "I": np.uint16, "J": np.uint32, "K": np.uint64}[form]
        return np.array([int(v) + zero for v in raw.tolist()], dtype=unsigned)
    if (scale or 1.0) != 1.0 or (zero or 0.0) != 0.0:
        return raw.astype(np.float64) * (scale or 1.0) + (zero or 0.0)
    return raw


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=st.sampled_from(list(_FORMS)), scale=st.sampled_from([None, 1.0, 0.25, -3.0]),
       zero=st.sampled_from([None, 0.0, 100.5, "unsigned"]), null=st.booleans(),
       seed=st.integers(0, 2**16))
def test_fits_integer_decoding_follows_the_standard(tmp_path_factory, form, scale, zero,
                                                    null, seed):
    """Any integer column, scaled or not, with TNULL or not, reads as the FITS standard
    says (TNULL marks stored values, also in scaled columns), and as astropy reads it
    where astropy can (it fails on some of these: TNULL with unsigned offsets, 64-bit
    columns with a fractional TZERO)."""
    if zero == "unsigned":
        zero, scale = _OFFSETS[form], None
    path = tmp_path_factory.mktemp("fuzz") / "x.fits"
    raw = _integer_fits(path, form, scale, zero, null, seed)
    expected = _physical(raw, form, scale, zero)
    got = open_catalogue(path, id_column=None, progress=False,
                         cache_dir=path.parent).column("X")
    nulls = raw == raw[4] if null else np.zeros(raw.size, bool)
    assert got.dtype == expected.dtype
    if got.dtype.kind == "f":
        assert np.isnan(got[nulls]).all()
        np.testing.assert_allclose(got[~nulls], expected[~nulls])
    else:
        np.testing.assert_array_equal(np.ma.getmaskarray(got), nulls)
        np.testing.assert_array_equal(np.ma.getdata(got)[~nulls], expected[~nulls])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            astropy = np.ma.getdata(Table.read(path)["X"])
    except (TypeError, UnboundLocalError, ValueError, OverflowError):
        return
    np.testing.assert_allclose(np.ma.getdata(got)[~nulls].astype(float),
                               astropy[~nulls].astype(float))
