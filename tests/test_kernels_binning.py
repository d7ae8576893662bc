"""Tests of armillary_kernels' 2-D binning against numpy.histogram2d and numpy twins."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from armillary_kernels import counts2d, stat2d
from armillary_kernels._reference_extra import counts2d_ref, stat2d_ref

LIMITS = ((-3.0, 3.0), (-2.0, 2.5))


def points(n, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 0.6 * rng.normal(size=n) + 0.3 * x
    return x.astype(dtype), y.astype(dtype)


def numpy_counts(x, y, limits, shape):
    keep = np.isfinite(x) & np.isfinite(y)
    grid, _, _ = np.histogram2d(x[keep], y[keep], bins=shape, range=limits)
    return grid.astype(np.int64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [1, 7, (64, 32), (3, 200)])
def test_counts_match_numpy(dtype, shape):
    x, y = points(20_000, dtype=dtype)
    grid, skipped = counts2d(x, y, LIMITS, shape)
    assert grid.dtype == np.int64
    assert skipped == 0
    assert_array_equal(grid, numpy_counts(x, y, LIMITS, shape))
    assert_array_equal(grid, counts2d_ref(x, y, LIMITS, shape)[0])


def test_points_on_edges_follow_numpy():
    """Every edge itself, and the floats next to it: the last bin is closed."""
    shape = (10, 7)
    xe = np.linspace(*LIMITS[0], shape[0] + 1)
    ye = np.linspace(*LIMITS[1], shape[1] + 1)
    near_x = np.concatenate([xe, np.nextafter(xe, -np.inf), np.nextafter(xe, np.inf)])
    near_y = np.concatenate([ye, np.nextafter(ye, -np.inf), np.nextafter(ye, np.inf)])
    x, y = (a.ravel() for a in np.meshgrid(near_x, near_y))
    grid, _ = counts2d(x, y, LIMITS, shape)
    assert_array_equal(grid, numpy_counts(x, y, LIMITS, shape))
    assert grid.sum() == ((x >= xe[0]) & (x <= xe[-1]) & (y >= ye[0]) & (y <= ye[-1])).sum()


def test_awkward_limits_and_many_bins():
    rng = np.random.default_rng(4)
    limits = ((0.1, 0.7), (-1e-3, 3e-3))
    x = rng.uniform(0.0, 0.8, 50_000)
    y = rng.uniform(-2e-3, 4e-3, 50_000)
    x[:1000] = np.round(x[:1000], 2)  # many exactly on decimal edges
    for shape in ((60, 600), (1000, 3)):
        assert_array_equal(counts2d(x, y, limits, shape)[0], numpy_counts(x, y, limits, shape))


def test_2048_square_grid():
    x, y = points(30_000, seed=1)
    grid, _ = counts2d(x, y, LIMITS, 2048)
    assert grid.shape == (2048, 2048)
    assert_array_equal(grid, numpy_counts(x, y, LIMITS, 2048))


def test_nan_and_inf_rows_are_skipped_and_counted():
    x, y = points(5000, seed=2)
    x[::50] = np.nan
    y[7::100] = np.inf
    x[9::1000] = -np.inf
    bad = ~(np.isfinite(x) & np.isfinite(y))
    grid, skipped = counts2d(x, y, LIMITS, 16)
    assert skipped == bad.sum()
    assert_array_equal(grid, numpy_counts(x, y, LIMITS, 16))
    assert grid.sum() + skipped <= len(x)


def test_per_class_grids():
    x, y = points(10_000, seed=3)
    rng = np.random.default_rng(3)
    by = rng.integers(-1, 4, size=x.size)  # -1: no class
    grid, skipped = counts2d(x, y, LIMITS, (20, 10), by=by)
    assert grid.shape == (4, 20, 10)
    assert skipped == 0
    for code in range(4):
        mine = by == code
        assert_array_equal(grid[code], numpy_counts(x[mine], y[mine], LIMITS, (20, 10)))
    assert_array_equal(grid, counts2d_ref(x, y, LIMITS, (20, 10), by=by)[0])
    wider, _ = counts2d(x, y, LIMITS, (20, 10), by=by.astype(np.int8), n_classes=6)
    assert wider.shape == (6, 20, 10)
    assert_array_equal(wider[:4], grid)
    assert not wider[4:].any()


@pytest.mark.parametrize("statistic", ["count", "sum", "mean", "min", "max"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_statistics_match_reference(statistic, dtype):
    x, y = points(20_000, seed=5, dtype=dtype)
    z = (np.random.default_rng(5).gamma(2.0, size=x.size)).astype(dtype)
    z[::97] = np.nan
    x[::101] = np.inf
    grid, skipped = stat2d(x, y, z, LIMITS, (30, 20), statistic)
    want, want_skipped = stat2d_ref(x, y, z, LIMITS, (30, 20), statistic)
    assert skipped == want_skipped
    assert_allclose(grid, want, rtol=1e-12, equal_nan=True)
    if statistic == "mean":
        keep = np.isfinite(x) & np.isfinite(z)
        sums, _, _ = np.histogram2d(
            x[keep], y[keep], bins=(30, 20), range=LIMITS, weights=z[keep].astype(np.float64)
        )
        counts = numpy_counts(x[keep], y[keep], LIMITS, (30, 20))
        with np.errstate(invalid="ignore"):
            assert_allclose(grid, sums / counts, rtol=1e-12, equal_nan=True)


def test_statistics_of_empty_bins():
    x = np.array([0.5, 0.6, 2.9])
    y = np.array([0.1, 0.1, 2.4])
    z = np.array([1.0, 3.0, -2.0])
    limits = ((0.0, 3.0), (0.0, 2.5))
    assert_allclose(stat2d(x, y, z, limits, 3, "mean")[0][0, 0], 2.0)
    assert_allclose(stat2d(x, y, z, limits, 3, "min")[0][0, 0], 1.0)
    assert_allclose(stat2d(x, y, z, limits, 3, "max")[0][2, 2], -2.0)
    assert np.isnan(stat2d(x, y, z, limits, 3, "mean")[0][1, 1])
    assert stat2d(x, y, z, limits, 3, "sum")[0][1, 1] == 0.0
    assert stat2d(x, y, z, limits, 3, "count")[0].dtype == np.int64


def test_odd_inputs():
    x, y = points(1000, seed=6)
    want = numpy_counts(x, y, LIMITS, 8)
    assert_array_equal(counts2d(x.astype(">f8"), y.astype(">f8"), LIMITS, 8)[0], want)
    assert_array_equal(counts2d(x[::-1], y[::-1], LIMITS, 8)[0], want)
    assert_array_equal(counts2d(list(x), list(y), [list(LIMITS[0]), LIMITS[1]], [8, 8])[0], want)
    ints = np.arange(10)
    assert counts2d(ints, ints, ((0, 9), (0, 9)), 3)[0].sum() == 10
    empty, skipped = counts2d(np.zeros(0), np.zeros(0), LIMITS, 4)
    assert empty.shape == (4, 4)
    assert skipped == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": np.zeros((3, 2))}, "x must be a 1-D array"),
        ({"y": np.zeros(4)}, "y has 4 rows but x has 3"),
        ({"x": np.array(["a", "b", "c"])}, "x has dtype <U1"),
        ({"limits": ((0, 1),)}, r"limits must be \(\(xmin, xmax\), \(ymin, ymax\)\)"),
        ({"limits": ((1, 0), (0, 1))}, r"limits\[0\] = \(1.0, 0.0\): need finite values"),
        ({"limits": ((0, 1), (0, np.nan))}, r"limits\[1\]"),
        ({"limits": "everything"}, "limits must be"),
        ({"shape": 0}, "shape must be >= 1"),
        ({"shape": (2, 2, 2)}, "shape must be an int or a pair"),
        ({"shape": 2.5}, "shape must be an integer"),
        ({"by": np.array([0.0, 1.0, 1.0])}, "by must hold integer class codes"),
        ({"by": np.array([0, 1])}, "by must be a 1-D array of 3 class codes"),
        ({"by": np.array([0, 5, 1]), "n_classes": 3}, "class code 5 but n_classes is 3"),
        ({"by": np.array([-1, -1, -1])}, "pass n_classes"),
    ],
)
def test_counts2d_rejects_bad_input(kwargs, match):
    arguments = {"x": np.zeros(3), "y": np.zeros(3), "limits": ((0, 1), (0, 1)), "shape": 4}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        counts2d(**arguments)


def test_stat2d_rejects_bad_input():
    x = np.zeros(3)
    with pytest.raises(ValueError, match="unknown statistic 'median'"):
        stat2d(x, x, x, ((0, 1), (0, 1)), 4, "median")
    with pytest.raises(ValueError, match="values has 2 rows but x has 3"):
        stat2d(x, x, x[:2], ((0, 1), (0, 1)), 4)
