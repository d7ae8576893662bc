"""The quickstart in a real JupyterLab: dock the pane, label with the keyboard, check the store."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from pane_helpers import KERNEL_READY, PANE, kernel_eval, run_notebook

from armillary.session import default_annotator

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

pytestmark = pytest.mark.browser

def wait_saved(page, n: int) -> None:
    page.wait_for_function(
        f"() => document.querySelectorAll('{PANE} .arm-log li.arm-saved').length >= {n}",
        timeout=30_000,
    )


def candidate(page) -> str:
    return page.locator(PANE).get_attribute("data-candidate")


def press(page, key: str, saved_before: int) -> None:
    before = candidate(page)
    page.locator(PANE).focus()
    page.keyboard.press(key)
    wait_saved(page, saved_before + 1)
    if key != "z":
        page.wait_for_function(
            f"() => document.querySelector('{PANE}').dataset.candidate !== {json.dumps(before)}",
            timeout=30_000,
        )


def test_quickstart_docks_pane_and_labels_reach_the_store(lab, browser):
    started = dt.datetime.now(dt.UTC)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    run_notebook(page, lab, "quickstart.ipynb")

    # The pane is docked in the right side panel, titled with the catalogue's name.
    dock = page.locator("#jp-right-stack .armillary-dock")
    assert dock.is_visible()
    tab = page.locator(".jp-SideBar.jp-mod-right .lm-TabBar-tab.lm-mod-current")
    assert tab.inner_text().strip() == "catalogue"
    buttons = page.locator(f"{PANE} .arm-button").all_inner_texts()
    assert [b.split("\n")[-1] for b in buttons] == [
        "Star",
        "Galaxy",
        "QSO",
        "Unsure",
        "Skip",
        "Undo",
    ]
    # Where the source sits: one density map of the whole catalogue (the first two
    # features), drawn, with the candidate marked on it.
    the_map = page.locator(f"{PANE} .arm-map")
    assert the_map.count() == 1
    assert the_map.locator(".arm-map-x").inner_text() == "u - g"
    assert the_map.locator(".arm-map-y").inner_text() == "g - r"
    page.wait_for_function(
        "() => ['inside', 'edge'].includes("
        f"document.querySelector('{PANE} .arm-map').dataset.marker)"
    )
    drawn = page.evaluate(
        f"""() => {{
          const c = document.querySelector('{PANE} .arm-map canvas');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let grey = 0, marker = 0;
          for (let i = 0; i < d.length; i += 4) {{
            if (d[i] < 200 && d[i] === d[i + 1] && d[i + 1] === d[i + 2]) grey++;
            if (d[i] < 60 && d[i + 1] < 120 && d[i + 2] > 180) marker++;
          }}
          return {{ grey, marker, total: d.length / 4 }};
        }}"""
    )
    assert drawn["grey"] > 0.02 * drawn["total"]  # the catalogue's density
    assert drawn["marker"] > 20  # the blue ring of the candidate
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "docked-pane.png"))

    # The notebook's plot: BokehJS inlined in a frame draws the catalogue without internet.
    plot = page.frame_locator("iframe.armillary-plot")
    plot.locator("canvas").first.wait_for(timeout=60_000)
    page.locator("iframe.armillary-plot").scroll_into_view_if_needed()
    page.locator("iframe.armillary-plot").screenshot(path=str(ARTIFACTS / "notebook-plot.png"))

    first = candidate(page)
    press(page, "1", 0)
    second = candidate(page)
    press(page, "2", 1)
    third = candidate(page)
    press(page, "u", 2)
    press(page, "z", 3)
    # Undo brings back the source it reversed.
    page.wait_for_function(
        f"() => document.querySelector('{PANE}').dataset.candidate === {json.dumps(third)}"
    )
    # The learner retrains in the background; the pane hears of the new model by itself.
    page.wait_for_function(
        f"() => document.querySelector('{PANE} .arm-status').textContent.startsWith('Model v')",
        timeout=60_000,
    )
    page.locator(PANE).screenshot(path=str(ARTIFACTS / "pane-after-labels.png"))
    assert len({first, second, third}) == 3

    printed = kernel_eval(
        lab,
        "import json; print(json.dumps({'labels': session.labels[['id', 'label', "
        "'annotator', 'time']].astype(str).to_dict('records'), 'store': str(session.store.path)}))",
    )
    result = json.loads(printed)
    labels = result["labels"]
    assert [(r["id"], r["label"]) for r in labels] == [(first, "Star"), (second, "Galaxy")]
    for r in labels:
        assert r["annotator"] == default_annotator()
        when = dt.datetime.fromisoformat(r["time"].replace("Z", "+00:00"))
        assert started <= when <= dt.datetime.now(dt.UTC)

    with sqlite3.connect(result["store"]) as db:
        rows = db.execute(
            "SELECT row_id, kind, label, annotator FROM events "
            "WHERE provenance = 'human' ORDER BY event_id"
        ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (first, "label", "Star"),
        (second, "label", "Galaxy"),
        (third, "unsure", None),
        (third, "undo", None),
    ]
    assert {r[3] for r in rows} == {default_annotator()}


def test_act_stays_pending_until_the_kernel_commits_it(lab, browser):
    """While the kernel is busy, a pressed key shows as pending, then saved."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{lab.url}/lab/tree/quickstart.ipynb?token={lab.token}")
    page.wait_for_selector(f"{PANE}[data-candidate]:not([data-candidate=''])", timeout=120_000)
    page.wait_for_function(KERNEL_READY, timeout=120_000)
    skipped = candidate(page)
    busy = threading.Thread(target=kernel_eval, args=(lab, "import time; time.sleep(6)"))
    busy.start()
    time.sleep(1.0)  # let the kernel start sleeping before the key press
    page.locator(PANE).focus()
    page.keyboard.press("s")
    # The log already lists earlier (saved) acts: wait for this one, pending.
    text = page.wait_for_function(
        f"() => document.querySelector('{PANE} .arm-log li.arm-pending')?.textContent",
        timeout=5_000,
    ).json_value()
    assert skipped in text
    assert "pending" in text.lower()
    busy.join()
    page.wait_for_selector(f"{PANE} .arm-log li.arm-saved:first-child", timeout=30_000)
    assert page.locator(f"{PANE} .arm-log li.arm-pending").count() == 0
    events = json.loads(
        kernel_eval(lab, "print(session.store.events().astype(str).to_json(orient='records'))")
    )
    assert (events[-1]["id"], events[-1]["kind"]) == (skipped, "skip")


def test_undock_and_dock_again(lab, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{lab.url}/lab/tree/quickstart.ipynb?token={lab.token}")
    dock = page.locator("#jp-right-stack .armillary-dock")
    dock.wait_for(timeout=120_000)
    page.wait_for_function(KERNEL_READY, timeout=120_000)
    page.locator(".armillary-dock-close").click()
    dock.wait_for(state="detached", timeout=10_000)
    page.wait_for_function(KERNEL_READY)
    assert kernel_eval(lab, "print(session._dock.docked)").strip() == "False"
    kernel_eval(lab, "session.dock()")
    dock.wait_for(timeout=30_000)
    assert page.locator(f"{PANE}[data-candidate]:not([data-candidate=''])").count() == 1
    assert kernel_eval(lab, "print(session._dock.docked)").strip() == "True"
