"""The pane's own cost: making it, and an act until the next source is on show.

A script, not a test. On the example catalogue (or ``--rows`` of a fresh one), it makes
the pane of a session three ways, in one run: without density maps (``axes=[]``, the
baseline), with the default map, and with two maps; then it sends 60 label acts as the
browser would (the presenter's message handler: commit, acknowledge, show the next
source with its map positions and the labelled dots) and prints the median and p95 of
that time, and each against the baseline.

    python tests/benchmarks/bench_pane.py                 # examples/data/catalogue.fits
    python tests/benchmarks/bench_pane.py --rows 1000000  # a 1M-row catalogue in /tmp
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import armillary
from armillary.datasets import EXAMPLE_FEATURES, GENERATOR_VERSION, make_catalogue
from armillary.presenter import PanePresenter

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "catalogue.fits"
WAYS = [("no maps (baseline)", []), ("default map", None),
        ("two maps", [("g - r", "r - i"), ("r", "log10(Lx)")])]  # fmt: skip


def catalogue(rows: int | None):
    if rows is None and EXAMPLE.exists():
        return armillary.open_catalogue(EXAMPLE, id_column="ID")
    rows = rows or 100_000
    path = (
        Path(tempfile.gettempdir()) / "armillary-bench" / f"pane_{rows}_v{GENERATOR_VERSION}.fits"
    )
    if not path.exists():
        make_catalogue(n=rows, seed=0, path=path, thumbnails=0)
    return armillary.open_catalogue(path, id_column="ID")


def run(cat, axes, acts: int) -> tuple[float, np.ndarray]:
    truth = np.array(["Star", "Galaxy", "QSO"])[cat.column("true_label")]
    with tempfile.TemporaryDirectory() as folder:
        session = armillary.Session(
            cat, features=list(EXAMPLE_FEATURES), store=f"{folder}/labels.sqlite", axes=axes
        )
        try:
            start = time.perf_counter()
            presenter = PanePresenter(session)
            made = time.perf_counter() - start
            times = []
            for seq in range(1, acts + 1):
                shown = session.next()
                message = {"type": "act", "client": "bench", "seq": seq, "action": "label",
                           "id": shown.id, "label": truth[shown.position]}  # fmt: skip
                start = time.perf_counter()
                presenter._on_msg(None, message, [])
                times.append(time.perf_counter() - start)
        finally:
            session.close()
    return made, np.array(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="a fresh catalogue of N rows")
    parser.add_argument("--acts", type=int, default=60)
    args = parser.parse_args()
    cat = catalogue(args.rows)
    print(f"catalogue: {cat.source} ({len(cat):,} rows); {args.acts} label acts per way")
    run(cat, None, 2)  # compile the binning kernel and warm the caches first
    base = None
    for name, axes in WAYS:
        made, ms = run(cat, axes, args.acts)
        median, p95 = np.median(ms), np.percentile(ms, 95)
        base = base or (median, p95)
        print(
            f"{name:>20}: pane made in {made * 1000:6.0f} ms; act -> next shown: median "
            f"{median:5.1f} ms (x{median / base[0]:.2f}), p95 {p95:5.1f} ms (x{p95 / base[1]:.2f})"
        )


if __name__ == "__main__":
    main()
