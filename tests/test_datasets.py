"""Tests of armillary.datasets.make_catalogue and examples/make_catalogue.py."""

from __future__ import annotations

import importlib.util
import itertools
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from armillary.datasets import BANDS, GENERATOR_VERSION, generator_parameters, make_catalogue

N = 4000
THUMBS = 40
OPTICAL = ("u", "g", "r", "i", "z", "y")
INFRARED = ("j", "h", "k", "w1", "w2")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "make_catalogue.py"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    path = make_catalogue(N, seed=3, path=tmp_path_factory.mktemp("cat") / "sky.fits",
                          thumbnails=THUMBS, chunk_rows=1500)
    with fits.open(path) as hdul:
        yield path, hdul[1].data.copy(), hdul[1].header.copy()


@pytest.fixture(scope="module")
def data(made):
    return made[1]


def by_class(data, label):
    return data[data["true_label"] == label]


# -- layout ------------------------------------------------------------------------


def test_columns_dtypes_and_big_endian(made):
    path, data, header = made
    expected = ["ID", "RA", "DEC", *BANDS, *[f"{b}_err" for b in BANDS], "r_psf_model",
                "redshift", "Lx",
                "labels", "true_label", "thumbnail"]
    assert data.dtype.names == tuple(expected)
    assert len(data) == N
    assert header["NAXIS2"] == N
    assert path.stat().st_size % 2880 == 0
    for name in ["RA", "DEC", *BANDS, "Lx", "labels"]:
        assert data.dtype[name].byteorder == ">", name
    assert data.dtype["RA"] == np.dtype(">f8")
    assert data.dtype["g"] == np.dtype(">f4")
    assert data.dtype["labels"].kind == "i"
    assert data.dtype["ID"].kind == "S"


def test_values_are_plausible(data):
    assert np.all((data["RA"] >= 0) & (data["RA"] < 360))
    assert np.all((data["DEC"] > -30) & (data["DEC"] < 75))
    for band in BANDS:
        mag, err = data[band], data[f"{band}_err"]
        if band in OPTICAL:
            assert np.all(np.isfinite(mag)), band
        np.testing.assert_array_equal(np.isnan(mag), np.isnan(err))  # NaN: not detected
        seen = np.isfinite(err)
        assert np.all((err[seen] > 0) & (err[seen] <= 1.0)), band
    assert np.all(data["redshift"] >= 0)
    assert 14 < np.median(data["r"]) < 23


def test_ids_are_unique_survey_names(data):
    ids = [i.decode() if isinstance(i, bytes) else i for i in data["ID"]]
    assert len(set(ids)) == N
    pattern = re.compile(r"^(SDSS J\d{6}\.\d\d[+-]\d{6}\.\d|WISEA J\d{6}\.\d\d[+-]\d{6}\.\d|"
                         r"2MASS J\d{8}[+-]\d{7})_\d{7}$")
    assert all(pattern.match(i) for i in ids), [i for i in ids if not pattern.match(i)][:3]
    assert {i.split()[0] for i in ids} == {"SDSS", "WISEA", "2MASS"}
    assert ids[7].endswith("_0000007")


def test_class_and_label_fractions(data):
    fractions = np.bincount(data["true_label"], minlength=3) / N
    np.testing.assert_allclose(fractions, [0.40, 0.45, 0.15], atol=0.04)
    known = data["labels"] >= 0
    assert set(np.unique(data["labels"])) <= {-1, 0, 1, 2}
    assert 0.01 < known.mean() < 0.035
    np.testing.assert_array_equal(data["labels"][known], data["true_label"][known])


def test_lx_for_a_tenth_mostly_quasars(data):
    detected = np.isfinite(data["Lx"])
    assert 0.07 < detected.mean() < 0.13
    assert (data["true_label"][detected] == 2).mean() > 0.5
    qso_lx = data["Lx"][detected & (data["true_label"] == 2)]
    assert 42 < np.median(qso_lx) < 46  # log10 erg/s


def test_thumbnails_are_png_relative_to_the_fits_folder(made):
    path, data, _ = made
    names = [t.decode() if isinstance(t, bytes) else t for t in data["thumbnail"]]
    assert all(name == "" for name in names[THUMBS:])
    for name in names[:THUMBS]:
        assert not Path(name).is_absolute()
        image_path = path.parent / name
        assert image_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(image_path) as image:
            image.verify()
        with Image.open(image_path) as image:
            assert image.size == (64, 64)
            assert image.mode == "RGB"
            assert np.asarray(image).std() > 1  # not blank
    assert names[0] == "sky_thumbnails/000000.png"


def test_header_records_the_parameters(made):
    path, _, _ = made
    assert generator_parameters(path) == {"version": GENERATOR_VERSION, "n": N, "seed": 3,
                                          "thumbnails": THUMBS, "labelled_fraction": 0.02}


def test_generator_parameters_of_other_files(tmp_path):
    assert generator_parameters(tmp_path / "missing.fits") is None
    other = tmp_path / "other.fits"
    fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.zeros(3))]).writeto(other)
    assert generator_parameters(other) is None


# -- physics -----------------------------------------------------------------------


def test_classes_sit_where_real_ones_do(data):
    stars, galaxies, qsos = (by_class(data, k) for k in range(3))

    def median(rows, a, b):
        return np.nanmedian(rows[a] - rows[b])  # of rows detected in both bands

    assert median(qsos, "w1", "w2") > 0.6
    assert median(qsos, "w1", "w2") > median(stars, "w1", "w2") + 0.5
    assert median(qsos, "u", "g") < median(stars, "u", "g") - 0.5
    assert median(galaxies, "g", "j") > median(stars, "g", "j") + 0.5
    assert np.median(galaxies["redshift"]) > 0.1
    assert np.median(qsos["redshift"]) > np.median(galaxies["redshift"])


def test_morphology_separates_point_sources_from_galaxies(data):
    stars, galaxies, qsos = (by_class(data, k) for k in range(3))
    bright = {name: rows[rows["r"] < 20] for name, rows in
              (("star", stars), ("galaxy", galaxies), ("qso", qsos))}  # fmt: skip
    # SDSS's cut: extended above psf - model = 0.145
    assert np.mean(bright["star"]["r_psf_model"] < 0.145) > 0.95
    assert np.mean(bright["qso"]["r_psf_model"] < 0.145) > 0.85
    assert np.mean(bright["galaxy"]["r_psf_model"] > 0.145) > 0.9
    # faint sources blur: the scatter of point sources grows with the photometric error
    faint = stars[stars["r"] > 21]
    spread = {"faint": np.median(np.abs(faint["r_psf_model"])),
              "bright": np.median(np.abs(bright["star"]["r_psf_model"]))}  # fmt: skip
    assert spread["faint"] > 2 * spread["bright"]


def test_stellar_locus_is_one_dimensional(data):
    stars = by_class(data, 0)
    bright = stars[stars["r"] < 19]
    gr, ri = bright["g"] - bright["r"], bright["r"] - bright["i"]
    # M dwarfs: g-r saturates near 1.4 while r-i keeps growing
    assert np.median(gr[ri > 1.0]) == pytest.approx(1.45, abs=0.15)
    # blue stars: r-i grows with g-r
    blue = gr < 1.0
    assert np.corrcoef(gr[blue], ri[blue])[0, 1] > 0.8


def test_errors_grow_with_magnitude(data):
    bright, faint = data["r"] < 18, data["r"] > 21
    assert np.median(data["r_err"][faint]) > 3 * np.median(data["r_err"][bright])
    assert np.nanmedian(data["w2_err"]) > np.median(data["r_err"])


def test_infrared_non_detections_are_missing(data):
    # j h k w1 w2 come from matched surveys: below 3 sigma a source is not in them.
    for band in OPTICAL:
        assert np.isfinite(data[band]).all(), band
    bright, faint = data["r"] < 17, data["r"] > 21.5
    for band in INFRARED:
        missing = np.isnan(data[band])
        assert missing[bright].mean() < 0.02, band
        assert missing[faint].mean() > 0.2, band
        detected = np.isfinite(data[band])
        limit = np.nanmax(data[band][detected])
        assert limit < {"j": 20.2, "h": 19.4, "k": 18.8, "w1": 18.5, "w2": 17.2}[band], band
    assert np.isnan(data["w2"]).mean() > np.isnan(data["j"]).mean()  # W2 is the shallowest
    # An inner-join cross-match (>= 5 sigma in all 11 bands) keeps the bright end, mostly
    # stars, as AstronomicAL's SDSS x UKIDSS x WISE example does.
    errs = np.column_stack([data[f"{b}_err"] for b in BANDS])
    matched = np.all(errs < 0.2177, axis=1)
    assert 0.08 < matched.mean() < 0.3
    assert (data["true_label"][matched] == 0).mean() > 0.6


def test_classes_are_learnable_but_overlap(data):
    ensemble = pytest.importorskip("sklearn.ensemble")
    colours = np.column_stack([data[a] - data[b] for a, b in itertools.pairwise(BANDS)])
    colours = colours.astype(np.float64)
    medians = np.nanmedian(colours, axis=0)  # infrared non-detections: impute, as learners do
    colours = np.where(np.isnan(colours), medians, colours)
    truth = data["true_label"]
    rng = np.random.default_rng(0)
    train = rng.choice(N, 100, replace=False)
    test = np.setdiff1d(np.arange(N), train)
    forest = ensemble.RandomForestClassifier(100, random_state=0).fit(colours[train],
                                                                      truth[train])
    predicted = forest.predict(colours[test])
    accuracy = (predicted == truth[test]).mean()
    assert 0.75 < accuracy < 0.99
    assert (predicted[truth[test] == 0] == 0).mean() > 0.85


# -- determinism and streaming -----------------------------------------------------


def test_same_seed_same_bytes_and_chunking_does_not_matter(tmp_path, made):
    path, _, _ = made
    again = make_catalogue(N, seed=3, path=tmp_path / "sky.fits", thumbnails=THUMBS,
                           chunk_rows=N * 2)
    assert again.read_bytes() == path.read_bytes()
    odd = make_catalogue(N, seed=3, path=tmp_path / "odd" / "sky.fits", thumbnails=THUMBS,
                         chunk_rows=333)
    assert odd.read_bytes() == path.read_bytes()
    for name in ("000000.png", f"{THUMBS - 1:06d}.png"):
        assert (tmp_path / "sky_thumbnails" / name).read_bytes() == \
            (path.parent / "sky_thumbnails" / name).read_bytes()


def test_other_seed_other_rows(tmp_path, data):
    other = fits.getdata(make_catalogue(N, seed=4, path=tmp_path / "b.fits", thumbnails=0), 1)
    assert not np.array_equal(other["r"], data["r"])


def test_a_small_catalogue_is_the_start_of_a_large_one(tmp_path, data):
    small = fits.getdata(make_catalogue(1500, seed=3, path=tmp_path / "s.fits",
                                        thumbnails=0), 1)
    for name in ("ID", "RA", "g", "w2_err", "labels"):
        np.testing.assert_array_equal(small[name], data[name][:1500])


def test_memory_stays_bounded_while_streaming(tmp_path):
    make_catalogue(10, seed=0, path=tmp_path / "warm.fits", thumbnails=0)  # lazy imports
    tracemalloc.start()
    try:
        make_catalogue(100_000, seed=0, path=tmp_path / "m.fits", thumbnails=0,
                       chunk_rows=5_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8e6  # the whole table is 17 MB; one chunk ~1 MB plus a block's temporaries


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        make_catalogue(0, path=tmp_path / "x.fits")
    with pytest.raises(ValueError, match="chunk_rows"):
        make_catalogue(10, path=tmp_path / "x.fits", chunk_rows=0)
    with pytest.raises(ValueError, match="labelled_fraction"):
        make_catalogue(10, path=tmp_path / "x.fits", labelled_fraction=1.5)
    assert not (tmp_path / "x.fits").exists()


# -- the example script ------------------------------------------------------------


@pytest.fixture
def example():
    spec = importlib.util.spec_from_file_location("make_catalogue_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_writes_then_skips_then_forces(example, tmp_path, capsys):
    out = tmp_path / "data" / "cat.fits"
    args = ["--rows", "300", "--seed", "1", "--thumbnails", "5", "--out", str(out)]
    assert example.main(args) == 0
    assert "wrote 300 rows" in capsys.readouterr().out
    mtime = out.stat().st_mtime_ns
    assert example.main(args) == 0
    assert "up to date" in capsys.readouterr().out
    assert out.stat().st_mtime_ns == mtime
    assert example.main([*args[:2], "--seed", "2", *args[4:]]) == 0
    assert generator_parameters(out)["seed"] == 2
    assert example.main([*args, "--force"]) == 0
    assert "wrote 300 rows" in capsys.readouterr().out
    assert generator_parameters(out)["seed"] == 1


def test_example_reports_bad_arguments(example, tmp_path, capsys):
    assert example.main(["--rows", "0", "--out", str(tmp_path / "c.fits")]) == 2
    assert "n must be an integer" in capsys.readouterr().err
