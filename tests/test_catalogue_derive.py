"""Derived features: derive, AstronomicAL's combinations, registered combinations, safe
division, describe's NaN / inf census, and chunked passes (to_numpy, iter_chunks)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from armillary.catalogue import open_catalogue, register_combination
from armillary.derive import combination, safe_divide, safe_division
from armillary.errors import AllNaNFeatureWarning, CatalogueError, ColumnNotFoundError

N = 64


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(3)
    data = Table({"u": rng.normal(21, 1, N), "g": rng.normal(20, 1, N).astype(np.float32),
                  "r": rng.normal(19, 1, N), "z": np.zeros(N), "name": [f"s{i}" for i in
                                                                         range(N)]})
    data["g"][5] = 0.0
    data["odd"] = np.where(np.arange(N) % 2 == 0, np.nan, 1.0)
    data["odd"][1], data["odd"][3] = np.inf, -np.inf
    data["empty"] = np.full(N, np.nan)
    data["n"] = MaskedColumn(np.arange(N, dtype=np.int32), mask=np.arange(N) < 4)
    return data


@pytest.fixture
def cat(table, tmp_path):
    return open_catalogue(table, id_column="name", cache_dir=tmp_path, progress=False)


def col(table, name):
    return np.asarray(table[name], dtype=np.float64)


# -- derive ----------------------------------------------------------------------------


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_derive_divides_by_zero_to_nan(cat, table):
    cat.derive("ratio", "u / g")
    cat.derive("log_ratio", "log10(u / z)")
    values = cat.column("ratio")
    assert np.isnan(values[5])
    u, g = col(table, "u"), col(table, "g")
    np.testing.assert_allclose(np.delete(values, 5), np.delete(u, 5) / np.delete(g, 5),
                               rtol=1e-6)
    assert np.isnan(cat.column("log_ratio")).all()
    assert cat.derived == {"ratio": "u / g", "log_ratio": "log10(u / z)"}
    assert "ratio" in cat.columns


def test_safe_division_rewrites_every_division():
    assert safe_division("g - j") == "g - j"
    assert safe_division("a / b") == "safe_divide(a, b)"
    assert safe_division("log10(a / (b / c)) + a / 2") == \
        "log10(safe_divide(a, safe_divide(b, c))) + a / 2"
    np.testing.assert_array_equal(safe_divide(np.array([1.0, 0.0, 3.0]), np.array([0, 0, 2])),
                                  [np.nan, np.nan, 1.5])
    masked = np.ma.MaskedArray([4, 4], mask=[True, False])
    np.testing.assert_array_equal(safe_divide(masked, 2), [np.nan, 2.0])
    assert safe_division("a /") == "a /"  # vaex reports the syntax error


# -- combine ---------------------------------------------------------------------------


def test_combine_names_as_astronomical(cat, table):
    assert cat.combine(["u", "g", "r"], "subtract", 2) == ["u-g", "u-r", "g-r"]
    assert cat.combine(["u", "g", "r"], "add", n=3) == ["u+g+r"]
    assert cat.combine(["u", "g"], "*") == ["u*g"]
    assert cat.combine(["u", "g", "z"], "divide", 2) == ["u/g", "u/z", "g/z"]
    u, g, r = col(table, "u"), col(table, "g"), col(table, "r")
    np.testing.assert_allclose(cat.column("u-g"), u - g, rtol=1e-6)
    np.testing.assert_allclose(cat.column("g-r"), g - r, rtol=1e-6)
    np.testing.assert_allclose(cat.column("u+g+r"), u + g + r, rtol=1e-6)
    np.testing.assert_allclose(cat.column("u*g"), u * g, rtol=1e-6)
    assert np.isnan(cat.column("u/g")[5])  # g == 0 there
    assert np.isnan(cat.column("u/z")).all()
    features = cat.to_numpy(["u-g", "u/g", "u+g+r"])
    np.testing.assert_allclose(features[:, 0], u - g, rtol=1e-5)
    assert np.isnan(features[5, 1])
    counts = cat.df.count(binby=["u-g", "g-r"], shape=8,  # a plot axis like any column
                          limits=[[-50, 50], [-50, 50]])
    assert counts.sum() == N


def test_combine_keeps_existing_and_combines_derived(cat):
    cat.combine(["u", "g"], "subtract")
    cat.derive("u2", "u * 2")
    assert cat.combine(["u", "g"], "-") == ["u-g"]  # kept, as AstronomicAL kept it
    assert cat.combine(["u-g", "u2"], "add") == ["u-g+u2"]
    np.testing.assert_allclose(cat.column("u-g+u2"), cat.column("u-g") + cat.column("u2"),
                               rtol=1e-6)


def test_combine_errors(cat):
    with pytest.raises(ValueError, match=r"unknown combination 'power'; the known ones are "
                                         "subtract, add, multiply, divide"):
        cat.combine(["u", "g"], "power")
    with pytest.raises(ValueError, match="n=3 is more than the 2 columns"):
        cat.combine(["u", "g"], "add", 3)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        cat.combine(["u", "g"], "add", 0)
    with pytest.raises(CatalogueError, match=r"'name'.*not numbers"):
        cat.combine(["u", "name"])
    with pytest.raises(ColumnNotFoundError, match="'w1' is not in catalogue"):
        cat.combine(["u", "w1"])


def test_registered_combination(cat, table):
    def colour_ratio(a, b):
        return 10 ** (-0.4 * (a - b))

    register_combination("colour_ratio", colour_ratio)
    register_combination("mean", lambda *c: sum(c) / len(c), symbol="~")
    assert cat.combine(["u", "g", "r"], "colour_ratio") == \
        ["colour_ratio(u,g)", "colour_ratio(u,r)", "colour_ratio(g,r)"]
    assert cat.combine(["u", "g", "r"], "mean", n=3) == ["u~g~r"]
    u, g, r = col(table, "u"), col(table, "g"), col(table, "r")
    np.testing.assert_allclose(cat.column("colour_ratio(u,g)"), 10 ** (-0.4 * (u - g)),
                               rtol=1e-5)
    features = cat.to_numpy(["u~g~r", "colour_ratio(g,r)"], dtype=np.float64)
    np.testing.assert_allclose(features[:, 0], (u + g + r) / 3, rtol=1e-6)
    assert cat.describe(["u~g~r"]).loc["u~g~r", "finite"] == N
    assert combination("mean").symbol == "~"


def test_register_combination_errors():
    with pytest.raises(ValueError, match="identifier"):
        register_combination("my op", np.add)
    with pytest.raises(ValueError, match="'add' is a built-in"):
        register_combination("add", np.add)
    with pytest.raises(TypeError, match="callable"):
        register_combination("thing", 3)


# -- describe and NaN ------------------------------------------------------------------


def test_describe_counts_nan_and_inf(cat, table):
    cat.combine(["u", "g"], "divide")
    with pytest.warns(AllNaNFeatureWarning, match=r"'empty' of catalogue 'table' hold no "
                                                  "number"):
        stats = cat.describe(["u", "odd", "empty", "u/g", "n", "u - r"])
    assert list(stats.columns) == ["rows", "nan", "posinf", "neginf", "finite", "min",
                                   "max", "mean", "std"]
    assert stats.loc["odd"][["rows", "nan", "posinf", "neginf", "finite"]].tolist() == \
        [N, N // 2, 1, 1, N // 2 - 2]
    assert stats.loc["empty", "nan"] == N
    assert np.isnan(stats.loc["empty", "mean"])
    assert stats.loc["u/g", "nan"] == 1
    assert stats.loc["n", "nan"] == 4  # masked values count as NaN
    u = col(table, "u")
    assert stats.loc["u", "min"] == pytest.approx(u.min())
    assert stats.loc["u", "mean"] == pytest.approx(u.mean())
    assert stats.loc["u", "std"] == pytest.approx(u.std())
    assert stats.loc["u - r", "mean"] == pytest.approx((u - col(table, "r")).mean())


def test_describe_defaults_to_every_numeric_column(cat):
    with pytest.warns(AllNaNFeatureWarning):
        stats = cat.describe()
    assert list(stats.index) == ["u", "g", "r", "z", "odd", "empty", "n"]


def test_describe_is_exact_over_many_chunks(tmp_path):
    rng = np.random.default_rng(0)
    values = 1e8 + rng.normal(0, 1, 5000)  # a large offset: naive sums lose the spread
    cat = open_catalogue(Table({"x": values}), id_column=None, cache_dir=tmp_path,
                         progress=False)
    stats = cat.describe(["x"])
    assert stats.loc["x", "std"] == pytest.approx(values.std(), rel=1e-6)
    import armillary.catalogue

    chunked = armillary.derive.describe_chunks(["x"], cat.iter_chunks(["x"], 333,
                                                                      np.float64))
    assert chunked.loc["x", "std"] == pytest.approx(values.std(), rel=1e-6)
    assert armillary.catalogue.FEATURE_CHUNK_ROWS >= 1


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # z / z, as written
def test_to_numpy_warns_of_all_nan_features(cat):
    with pytest.warns(AllNaNFeatureWarning, match=r"features 'empty', 'z / z'"):
        out = cat.to_numpy(["u", "empty", "z / z"])
    assert out.shape == (N, 3)


def test_describe_refuses_strings_and_unknown_columns(cat):
    with pytest.raises(CatalogueError, match=r"'name'.*not numbers"):
        cat.describe(["name"])
    with pytest.raises(ColumnNotFoundError, match="'nope'"):
        cat.describe(["u - nope"])
    with pytest.raises(CatalogueError, match="at least one"):
        cat.describe([])


# -- chunked passes --------------------------------------------------------------------


def test_iter_chunks_covers_every_row(cat, table):
    cat.derive("c", "u - r")
    blocks = list(cat.iter_chunks(["u", "c", "n", "u * 2"], chunk_rows=10))
    assert [start for start, _ in blocks] == list(range(0, N, 10))
    stacked = np.concatenate([block for _, block in blocks])
    assert stacked.dtype == np.float32
    assert stacked.flags.c_contiguous
    np.testing.assert_array_equal(stacked, cat.to_numpy(["u", "c", "n", "u * 2"]))
    assert np.isnan(stacked[:4, 2]).all()
    with pytest.raises(ValueError, match="chunk_rows"):
        cat.iter_chunks(["u"], chunk_rows=0)
    columns = ["g", "u", "c", "n"]  # g is stored as float32: read straight into F blocks
    fortran = [block for _, block in cat.iter_chunks(columns, 10, order="F")]
    assert all(block.flags.f_contiguous for block in fortran)
    np.testing.assert_array_equal(np.concatenate(fortran), cat.to_numpy(columns))
    with pytest.raises(ValueError, match="order must be 'C' or 'F'"):
        cat.iter_chunks(["u"], order="K")


def test_full_pass_memory_is_bounded(tmp_path):
    n, k = 1_000_000, 6
    table = Table({f"f{j}": np.full(n, j, np.float32) for j in range(k)})
    cat = open_catalogue(table, id_column=None, cache_dir=tmp_path, progress=False)
    cat.derive("d", "f1 - f2")
    for _ in cat.iter_chunks([*cat.columns], chunk_rows=n):  # warm up: lazy imports
        break
    tracemalloc.start()
    try:
        total = np.zeros(k + 1)
        for _, block in cat.iter_chunks([*cat.columns], chunk_rows=20_000):
            total += block.sum(axis=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(total, [j * n for j in range(k)] + [-n])
    assert peak < 10e6, f"peak {peak / 1e6:.1f} MB for {n * (k + 1) * 4 / 1e6:.0f} MB"
