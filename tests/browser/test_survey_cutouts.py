"""Survey cutouts in a real JupyterLab: the browser loads each candidate's image from the
survey's URL, filled in with that source's coordinates; a survey that cannot be reached
says so in the pane instead of showing a broken image.

The "survey" is a small HTTP server in this test, on 127.0.0.1, serving one of the example
catalogue's own thumbnails; nothing leaves the machine.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import urllib.parse
from pathlib import Path

import pytest
from pane_helpers import PANE, kernel_eval, run_notebook

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

pytestmark = pytest.mark.browser

CELLS = [
    "import armillary\ncatalogue = armillary.open_catalogue('data/catalogue.fits', id_column='ID')",
    "session = armillary.Session(\n"
    "    catalogue,\n"
    "    features=['u - g', 'g - r', 'r - i', 'r_psf_model'],\n"
    "    extra_columns=['RA', 'DEC', 'r'],\n"
    "    cutouts={{\n"
    "        'Local survey': 'http://127.0.0.1:{port}/cutout.png?ra={{RA:.6f}}&dec={{DEC:.6f}}',\n"
    "        'Offline survey': 'http://127.0.0.1:{dead}/cutout.jpg?ra={{RA}}&dec={{DEC}}',\n"
    "    }},\n"
    "    store='cutouts.labels.sqlite',\n"
    ")\n"
    "session.dock()",
]


class Survey(http.server.ThreadingHTTPServer):
    """Answers every GET of /cutout.png with one PNG, and remembers the queries."""

    def __init__(self, png: bytes) -> None:
        self.png, self.queries = png, []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/cutout.png":
            self.send_error(404)
            return
        self.server.queries.append(dict(urllib.parse.parse_qsl(url.query)))
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.server.png)))
        self.end_headers()
        self.wfile.write(self.server.png)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def survey(lab):
    png = next((lab.root / "data" / "catalogue_thumbnails").rglob("*.png")).read_bytes()
    server = Survey(png)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def write_notebook(path: Path, cells: list[str]) -> None:
    nb = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": c, "outputs": [],
             "execution_count": None}
            for c in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }  # fmt: skip
    path.write_text(json.dumps(nb))


def test_cutouts_load_from_the_survey_for_each_source(lab, browser, survey):
    port = survey.server_address[1]
    write_notebook(
        lab.root / "cutouts.ipynb", [c.format(port=port, dead=closed_port()) for c in CELLS]
    )
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    run_notebook(page, lab, "cutouts.ipynb", workspace="cutouts")

    # This session has no image columns: no empty image frame beside the values.
    assert not page.locator(f"{PANE} .arm-image").is_visible()
    figures = page.locator(f"{PANE} .arm-cutout")
    assert figures.locator("figcaption").all_inner_texts() == ["Local survey", "Offline survey"]
    loaded = f"{PANE} .arm-cutout:first-child img"
    page.wait_for_function(
        f"() => {{ const i = document.querySelector('{loaded}'); "
        "return !!i && i.complete && i.naturalWidth > 0; }",
        timeout=30_000,
    )
    # The unreachable survey is named as not available, not drawn as a broken image.
    page.wait_for_selector(f"{PANE} .arm-cutout:nth-child(2).arm-cutout-none", timeout=30_000)
    assert figures.nth(1).inner_text().startswith("not available")
    assert figures.nth(1).locator("img").count() == 0
    page.locator(PANE).screenshot(path=str(ARTIFACTS / "pane-cutouts.png"))

    # The image the browser asked for is the candidate's own sky position.
    first = page.locator(PANE).get_attribute("data-candidate")
    position = json.loads(
        kernel_eval(
            lab,
            f"import json; p = catalogue.row(catalogue.position({first!r}), ['RA', 'DEC']); "
            "print(json.dumps({k: float(v) for k, v in p.items()}))",
        )
    )
    asked = survey.queries[-1]
    assert (float(asked["ra"]), float(asked["dec"])) == pytest.approx(
        (position["RA"], position["DEC"]), abs=1e-6
    )
    assert (
        page.locator(f"{PANE} .arm-cutout:first-child a")
        .get_attribute("href")
        .startswith(f"http://127.0.0.1:{port}/cutout.png?ra={position['RA']:.6f}")
    )

    # By keyboard: Tab from the pane reaches the cutout's link, with a visible focus ring
    # (the frame clips its content, so the ring is drawn on the frame).
    page.locator(PANE).focus()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.closest('.arm-cutout') !== null")
    ring = page.locator(f"{PANE} .arm-cutout:first-child .arm-cutout-frame").evaluate(
        "el => getComputedStyle(el).boxShadow"
    )
    assert ring != "none"
    page.locator(PANE).screenshot(path=str(ARTIFACTS / "pane-cutout-focus.png"))

    # Labelling moves on to another source, and its cutout is fetched in turn.
    n = len(survey.queries)
    page.locator(PANE).focus()
    page.keyboard.press("1")
    page.wait_for_function(
        f"() => document.querySelector('{PANE}').dataset.candidate !== {json.dumps(first)}",
        timeout=30_000,
    )
    page.wait_for_function(
        f"() => {{ const i = document.querySelector('{loaded}'); "
        "return !!i && i.complete && i.naturalWidth > 0; }",
        timeout=30_000,
    )
    assert len(survey.queries) > n
    assert survey.queries[-1] != survey.queries[n - 1]
