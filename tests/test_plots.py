"""Density maps for the pane: every row binned, the candidate placed on them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from armillary import plots
from armillary.errors import ArmillaryError, CatalogueError
from armillary.presenter import PanePresenter


def test_a_map_counts_every_row_inside_its_limits():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50_000).astype(np.float32)
    y = (x + rng.normal(size=x.size)).astype(np.float32)
    x[:100] = np.nan
    m = plots.density_map(x, y, "a", "b")
    (x0, x1), (y0, y1) = m.limits
    expected, _, _ = np.histogram2d(
        x, y, bins=plots.MAP_BINS, range=[[x0, x1], [y0, y1]]
    )  # numpy leaves NaN out, as the kernel does
    np.testing.assert_array_equal(m.counts, expected)
    inside = np.isfinite(x) & (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    assert m.outside == np.count_nonzero(np.isfinite(x)) - np.count_nonzero(inside)
    assert 0 < m.outside < 0.03 * x.size  # robust limits: a sliver of tails left out
    image = Image.open(io.BytesIO(m.png))
    assert (image.size, image.mode) == ((plots.MAP_BINS, plots.MAP_BINS), "L")
    pixels = np.asarray(image)
    # y up: the top-left pixel is the bin of the smallest x and the largest y.
    np.testing.assert_array_equal(pixels == 255, m.counts.T[::-1] == 0)
    densest = np.unravel_index(np.argmax(m.counts.T[::-1]), pixels.shape)
    assert pixels[densest] == pixels.min()


def test_limits_of_a_constant_or_empty_axis():
    lo, hi = plots.robust_limits(np.full(10, 3.0, dtype=np.float32), "c")
    assert lo < 3.0 < hi
    with pytest.raises(ArmillaryError, match="axis 'd' has no finite value"):
        plots.robust_limits(np.full(10, np.nan, dtype=np.float32), "d")


def test_the_session_axes_default_to_its_first_two_features(make_session, catalogue):
    session = make_session()
    assert session.axes == [(session.features[0], session.features[1])]
    (m,) = plots.SessionMaps(session).maps
    u_g = catalogue.to_numpy([session.features[0]])[:, 0]
    assert m.counts.sum() + m.outside == np.count_nonzero(
        np.isfinite(u_g) & np.isfinite(catalogue.to_numpy([session.features[1]])[:, 0])
    )


def test_axes_may_be_any_numeric_columns_or_expressions(make_session, catalogue):
    session = make_session(axes=[("g - r", "r - i"), ("r", "log10(Lx)")])
    maps = plots.SessionMaps(session).maps
    assert [(m.x, m.y) for m in maps] == [("g - r", "r - i"), ("r", "log10(Lx)")]
    lx = catalogue.column("Lx")
    with_lx = int(np.flatnonzero(np.isfinite(lx))[0])
    without = int(np.flatnonzero(np.isnan(lx))[0])
    row = catalogue.row(with_lx, ["g - r", "r - i", "r"])
    where = plots.SessionMaps(session)
    got = where.position(with_lx)
    assert got[0] == pytest.approx([row["g - r"], row["r - i"]])
    assert got[1] == pytest.approx([row["r"], np.log10(lx[with_lx])])
    assert where.position(without)[1][1] is None
    assert make_session(axes=[]).axes == []


@pytest.mark.parametrize(
    ("axes", "error", "words"),
    [
        (["g - r"], ArmillaryError, "axes takes pairs (x, y)"),
        ([("g - r",)], ArmillaryError, "axes takes pairs (x, y)"),
        ([("g - r", "nosuch")], CatalogueError, "nosuch"),
        ([("g - r", "ID")], ArmillaryError, "'ID' is not numeric"),
    ],
)
def test_bad_axes_are_refused_by_name(make_session, store_path, axes, error, words):
    with pytest.raises(error) as info:
        make_session(axes=axes)
    assert words in str(info.value)
    assert not store_path.exists()


def test_the_pane_gets_the_maps_and_each_candidate_its_place(make_session, catalogue):
    session = make_session(axes=[("g - r", "r - i")])
    presenter = PanePresenter(session)
    (wire,) = presenter.pane.maps
    assert (wire["x"], wire["y"]) == ("g - r", "r - i")
    assert wire["png"][:8] == b"\x89PNG\r\n\x1a\n"
    (m,) = plots.SessionMaps(session).maps
    assert wire["limits"] == [list(m.limits[0]), list(m.limits[1])]
    candidate = session.next()
    row = catalogue.row(candidate.position, ["g - r", "r - i"])
    assert presenter.pane.candidate["map_positions"] == [
        pytest.approx([row["g - r"], row["r - i"]])
    ]


def test_the_pane_gets_the_labelled_sources_on_each_map(make_session, catalogue, truth):
    session = make_session(axes=[("g - r", "r - i"), ("r", "log10(Lx)")])
    presenter = PanePresenter(session)
    assert np.frombuffer(presenter.pane.map_labels["codes"], np.uint8).size == 0
    rows = [int(p) for p in np.flatnonzero(truth == "Galaxy")[:2]] + [
        int(np.flatnonzero(truth == "QSO")[0])
    ]
    for pos in rows:
        session.label(catalogue.id_at(pos), truth[pos])
    presenter.show(session.next())
    labels = presenter.pane.map_labels
    order = np.argsort(rows)
    codes = np.frombuffer(labels["codes"], np.uint8)
    np.testing.assert_array_equal(codes, [session.classes.index(truth[rows[k]]) for k in order])
    first = np.frombuffer(labels["xy"][0], np.float32).reshape(-1, 2)
    second = np.frombuffer(labels["xy"][1], np.float32).reshape(-1, 2)
    for k, pos in enumerate(np.array(rows)[order]):
        row = catalogue.row(int(pos), ["g - r", "r - i", "r", "Lx"])
        assert first[k] == pytest.approx([row["g - r"], row["r - i"]], rel=1e-6)
        assert second[k][0] == pytest.approx(row["r"], rel=1e-6)
        assert np.isnan(second[k][1]) == np.isnan(row["Lx"])
    session.undo()
    presenter.show(session.next())
    assert np.frombuffer(presenter.pane.map_labels["codes"], np.uint8).size == 2


def test_the_notebook_figure_shows_every_row_the_labels_and_the_candidate(
    make_session, catalogue, truth
):
    session = make_session(axes=[("g - r", "r - i")])
    for pos in (int(np.flatnonzero(truth == "Star")[0]), int(np.flatnonzero(truth == "QSO")[0])):
        session.label(catalogue.id_at(pos), truth[pos])
    plot = session.plot()
    fig = plot.figure
    assert (fig.xaxis.axis_label, fig.yaxis.axis_label) == ("g - r", "r - i")
    (image,) = [r for r in fig.renderers if type(r.glyph).__name__ == "Image"]
    level = np.asarray(image.data_source.data["image"][0])
    (m,) = plots.SessionMaps(session).maps  # same limits; the figure has its own bins
    assert level.shape == (60, 60)  # 3,000 rows: the coarsest default
    assert np.nansum(np.expm1(level)) == pytest.approx(m.counts.sum())
    scatter = [r for r in fig.renderers if type(r.glyph).__name__ == "Scatter"]
    labelled, candidate = scatter
    assert sorted(labelled.data_source.data["label"]) == ["QSO", "Star"]
    assert set(labelled.data_source.data["id"]) == set(session.labels["id"].astype(str))
    row = catalogue.row(session.next().position, ["g - r", "r - i"])
    assert candidate.data_source.data["x"][0] == pytest.approx(row["g - r"])
    page = plot.html()
    assert "cdn.bokeh.org" not in page  # BokehJS inlined: works without internet
    assert "Bokeh" in page
    frame = plot._repr_html_()
    assert frame.startswith('<iframe class="armillary-plot" srcdoc="')
    assert 'srcdoc="&lt;!DOCTYPE html&gt;' in frame  # the page, escaped into the frame


def test_a_saved_plot_is_a_standalone_page(make_session, tmp_path):
    saved = make_session().plot().save(tmp_path / "plot.html")
    text = saved.read_text(encoding="utf-8")
    assert text.lstrip().startswith("<!DOCTYPE html>")
    assert "cdn.bokeh.org" not in text
    assert 'data-root-id="' in text


def test_the_notebook_figure_takes_other_axes_and_refuses_none(make_session):
    session = make_session(axes=[])
    fig = session.plot("r", "log10(Lx)").figure
    assert (fig.xaxis.axis_label, fig.yaxis.axis_label) == ("r", "log10(Lx)")
    with pytest.raises(ArmillaryError, match="plot needs x and y"):
        session.plot()
