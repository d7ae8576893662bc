"""Survey cutouts: URL templates checked against the catalogue and filled in per source."""

from __future__ import annotations

import urllib.parse

import numpy as np
import pytest

from armillary.cutouts import check_cutouts, legacy_survey, sdss
from armillary.errors import ArmillaryError, ColumnNotFoundError
from armillary.presenter import PanePresenter

LOCAL = "http://127.0.0.1:8/cut.png?ra={RA:.5f}&dec={DEC:.5f}&id={ID}"


def query(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def test_presets_name_the_coordinate_columns():
    ls = legacy_survey("ra_deg", "dec_deg", size=256)
    assert ls.startswith("https://www.legacysurvey.org/viewer/cutout.jpg?")
    (t,) = check_cutouts({"LS": ls}, ["ra_deg", "dec_deg"], "x.fits")
    assert t.columns == ("ra_deg", "dec_deg")
    assert query(t.url({"ra_deg": 150.1, "dec_deg": 2.2})) == {
        "ra": "150.1", "dec": "2.2", "layer": "ls-dr10", "pixscale": "0.262", "size": "256",
    }  # fmt: skip
    (s,) = check_cutouts({"SDSS": sdss()}, ["RA", "DEC"], "x.fits")
    got = query(s.url({"RA": np.float64(10.5), "DEC": np.float64(-1.25)}))
    assert (got["ra"], got["dec"], got["width"], got["height"]) == ("10.5", "-1.25", "160", "160")


def test_values_are_formatted_and_url_encoded():
    (t,) = check_cutouts({"local": LOCAL}, ["ID", "RA", "DEC"], "x.fits")
    url = t.url({"RA": 277.8354123, "DEC": -7.5, "ID": b"SDSS J1+2&x"})
    assert url == "http://127.0.0.1:8/cut.png?ra=277.83541&dec=-7.50000&id=SDSS%20J1%2B2%26x"
    assert query(url)["id"] == "SDSS J1+2&x"
    # A float32 column keeps its own shortest digits.
    (plain,) = check_cutouts({"p": "https://h/c?ra={RA}"}, ["RA"], "x.fits")
    assert plain.url({"RA": np.float32(277.83542)}) == "https://h/c?ra=277.83542"


@pytest.mark.parametrize("missing", [float("nan"), np.float32("nan"), np.inf, None, "", "  "])
def test_a_missing_value_gives_no_url(missing):
    (t,) = check_cutouts({"local": LOCAL}, ["ID", "RA", "DEC"], "x.fits")
    assert t.url({"RA": missing, "DEC": 1.0, "ID": "a"}) is None
    assert t.url({"DEC": 1.0, "ID": "a"}) is None


def test_a_value_its_spec_cannot_format_gives_no_url():
    (t,) = check_cutouts({"local": LOCAL}, ["ID", "RA", "DEC"], "x.fits")
    assert t.url({"RA": "not a number", "DEC": 1.0, "ID": "a"}) is None


@pytest.mark.parametrize(
    ("cutouts", "error", "words"),
    [
        ({"LS": "https://h/c?ra={ra}&dec={DEC}"}, ColumnNotFoundError, "{ra} is not a column"),
        ({"LS": "https://h/c?ra={RA}&dec={DEC"}, ArmillaryError, "brace is written twice"),
        ({"LS": "https://h/c?ra={}"}, ArmillaryError, "{} in 'https://h/c?ra={}' names no column"),
        ({"LS": "https://h/c?ra={0}"}, ArmillaryError, "{0} in"),
        ({"LS": "ftp://h/c?ra={RA}"}, ArmillaryError, "must be an http(s) URL template"),
        ({"LS": 12}, ArmillaryError, "not 12"),
        ({"": "https://h/c?ra={RA}"}, ArmillaryError, "a name must be a non-empty string"),
        (["https://h/c?ra={RA}"], ArmillaryError, "cutouts must map a name to a URL template"),
    ],
)
def test_bad_templates_are_refused_with_what_to_do(cutouts, error, words):
    with pytest.raises(error) as info:
        check_cutouts(cutouts, ["RA", "DEC"], "sky.fits")
    assert words in str(info.value)
    if error is ColumnNotFoundError:
        assert "sky.fits" in str(info.value)
        assert "available columns: RA, DEC" in str(info.value)


def test_session_candidates_and_the_pane_carry_the_urls(make_session, catalogue, store_path):
    session = make_session(cutouts={"local": LOCAL, "by Lx": "https://h/c?lx={Lx:.2f}"})
    lx = catalogue.column("Lx")
    with_lx = int(np.flatnonzero(np.isfinite(lx))[0])
    without = int(np.flatnonzero(np.isnan(lx))[0])
    ra, dec = catalogue.column("RA"), catalogue.column("DEC")

    cand = session.candidate(with_lx)
    got = query(cand.cutouts["local"])
    assert (float(got["ra"]), float(got["dec"])) == pytest.approx(
        (ra[with_lx], dec[with_lx]), abs=1e-5
    )
    assert got["id"] == str(catalogue.id_at(with_lx))
    assert cand.cutouts["by Lx"] == f"https://h/c?lx={lx[with_lx]:.2f}"
    assert session.candidate(without).cutouts["by Lx"] is None

    presenter = PanePresenter(session)
    presenter.show(session.candidate(without))
    assert presenter.pane.candidate["cutouts"] == [
        {"name": "local", "url": session.candidate(without).cutouts["local"]},
        {"name": "by Lx", "url": None},
    ]


def test_the_pane_is_told_whether_the_session_has_images(make_session, tmp_path):
    with_images = PanePresenter(make_session())
    assert with_images.pane.candidate["has_images"] is True
    without = PanePresenter(make_session(image_columns=[], store=tmp_path / "other.sqlite"))
    assert without.pane.candidate["has_images"] is False


def test_a_session_with_a_bad_template_is_not_made_and_writes_nothing(make_session, store_path):
    with pytest.raises(ColumnNotFoundError, match=r"cutouts\['LS'\]: placeholder \{ra\}"):
        make_session(cutouts={"LS": legacy_survey("ra", "dec")})
    assert not store_path.exists()


def test_no_cutouts_by_default(session):
    assert session.cutouts == []
    assert session.next().cutouts == {}
