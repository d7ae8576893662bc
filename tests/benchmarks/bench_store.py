"""Benchmark of the label store: commit latency, bulk import, current labels and masks.

Run from the repository root::

    python tests/benchmarks/bench_store.py [--dir DIR] [--commits 2000]

It prints

1. single-label commit latency (median, p99) of ``LabelStore.append`` with the store's
   settings (WAL, ``synchronous=FULL``: each commit is fsynced, so an acknowledged label
   survives a power cut), and for comparison the same with ``synchronous=NORMAL``;
2. a bulk import of 1,000,000 catalogue labels (``import_label_column`` on a real
   1M-row catalogue), in events/s;
3. the time to compute current labels and the pool masks for a 10,000,000-row catalogue
   with 100,000 events, for a store written as a session writes it (each event with its
   catalogue row, which a Pool on the same catalogue takes instead of looking the id up)
   and, for comparison, for the same events with ids only (as an older Armillary wrote
   them): cold (a new store object and a new :class:`~armillary.pool.Pool`, five times:
   each in a new process of its own on the already cached catalogue, as a user opening a
   session meets it, and in the benchmark's own process, just after it wrote the
   catalogue, its index and the log) and warm (``Pool.refresh()`` after one more label),
   plus the full ``current()`` DataFrame for reference. As a baseline for the cold runs
   in new processes, the time a new process takes to allocate and touch the 60 MB of
   fresh memory the masks need (on a virtual machine this first touch varies a lot).

Targets (issue 5): commit p99 under 5 ms; masks for 10M rows under 200 ms. This is a
script, not a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from armillary import open_catalogue
from armillary._ids import catalogue_identity
from armillary.labels_io import import_label_column
from armillary.pool import Pool
from armillary.store import LabelStore

CLASSES = ["Star", "Galaxy", "QSO"]
WHO = {"annotator": "bench", "session_id": "bench"}


def commit_latency(folder: Path, n: int, synchronous: str) -> tuple[float, float, float]:
    """Median, p99 and max (ms) of n single-label appends."""
    store = LabelStore(folder / f"latency-{synchronous}.sqlite", classes=CLASSES)
    store._conn.execute(f"PRAGMA synchronous={synchronous}")  # for the comparison only
    for i in range(50):  # warm up: file growth, caches
        store.append("label", i, "Star", **WHO)
    times = []
    for i in range(n):
        start = time.perf_counter()
        store.append("label", 10_000 + i, CLASSES[i % 3], score=0.5, model_version=1, **WHO)
        times.append(time.perf_counter() - start)
    store.close()
    ms = np.array(times) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 99)), float(ms.max())


def write_catalogue(path: Path, n: int, string_ids: bool, seed: int) -> Path:
    """A Parquet catalogue of n rows: ids, one magnitude, and a label column (0-2)."""
    rng = np.random.default_rng(seed)
    ids = (
        pa.array(np.char.add("SRC J", np.arange(n).astype(str)).astype(object))
        if string_ids
        else pa.array(np.arange(n, dtype=np.int64) * 7 + 1_000_000)
    )
    labels = rng.integers(0, 3, n).astype(np.int16)
    pq.write_table(
        pa.table({"ID": ids, "r": rng.normal(20, 1, n).astype(np.float32), "labels": labels}), path
    )
    return path


def bulk_import(folder: Path) -> tuple[int, float]:
    """Import 1M catalogue labels from a 1M-row catalogue's label column."""
    path = write_catalogue(folder / "one-million.parquet", 1_000_000, True, seed=1)
    catalogue = open_catalogue(path, cache_dir=folder)
    store = LabelStore(folder / "import.sqlite", classes=CLASSES)
    start = time.perf_counter()
    written = import_label_column(
        store, catalogue, "labels", {0: "Star", 1: "Galaxy", 2: "QSO"}, annotator="bench"
    )
    took = time.perf_counter() - start
    store.close()
    return len(written), took


def write_log(store_path: Path, catalogue: Any, with_rows: bool) -> int:
    """100,000 events on random rows of the catalogue, into a new store opened as a
    Session opens it; with each event's catalogue row (as a session appends) or with
    ids only (as an older Armillary wrote them). The same events either way."""
    ids = catalogue.ids
    rng = np.random.default_rng(3)
    store = LabelStore(
        store_path,
        classes=CLASSES,
        catalogue_fingerprint=catalogue_identity(catalogue),
        id_column=catalogue.id_column,
    )

    def at(rows: np.ndarray) -> np.ndarray | None:
        return rows if with_rows else None

    for act in range(87):  # 87,000 events: bulk selections of 1,000 rows
        rows = rng.integers(0, len(ids), 1000)
        store.append_many(
            "bulk_label",
            ids[rows],
            rng.choice(CLASSES, 1000).astype(object),
            selection_id=f"sel-{act}",
            rows=at(rows),
            **WHO,
        )
    store.undo(**WHO)  # 2,000 undo events
    store.undo(**WHO)
    for k in range(1000):  # 1,000 single acts, each its own fsynced commit
        act = ("label", "unsure", "skip", "test_label")[k % 4]
        row = int(rng.integers(0, len(ids)))
        store.append(
            act,
            ids[row],
            CLASSES[k % 3] if act in ("label", "test_label") else None,
            row=row if with_rows else None,
            **WHO,
        )
    rows = rng.integers(0, len(ids), 10_000)
    store.append_many("label", ids[rows], "Galaxy", rows=at(rows), **WHO)
    n_events = store.n_events
    store.close()
    return n_events


STORES = {
    "rows": "store with catalogue rows (as a session writes it)",
    "ids": "store with ids only (as an older Armillary wrote it)",
}


def masks(folder: Path, string_ids: bool) -> dict[str, Any]:
    """Current labels and masks of a 10M-row catalogue with 100k events: (wall, CPU) s."""
    kind = "str" if string_ids else "int"
    path = write_catalogue(folder / f"ten-million-{kind}.parquet", 10_000_000, string_ids, seed=2)
    catalogue = open_catalogue(path, cache_dir=folder)
    stores = {name: folder / f"masks-{kind}-{name}.sqlite" for name in STORES}
    events = {name: write_log(stores[name], catalogue, name == "rows") for name in STORES}
    out: dict[str, Any] = {"events": events["rows"]}
    # As a user meets it: a new process on a catalogue whose cache exists (not this one,
    # which has just written the catalogue, its index and the log); one process per run,
    # the runs of each figure and of the baseline taken in turn, so that each meets the
    # same moods of this machine's memory.
    # The catalogue cache and the stores were just written: flush them first, so that the
    # system's writeback of this script's own files does not run during the timings.
    os.sync()
    out["touch"], out["fresh"] = [], {name: [] for name in STORES}
    for _ in range(COLD_RUNS):
        out["touch"].append(_in_new_process(_touch))
        for name, store_path in stores.items():
            out["fresh"][name].append(_in_new_process(_cold_run, path, folder, store_path))
    out["cold"] = {
        name: [_cold_run(path, folder, store_path) for _ in range(COLD_RUNS)]
        for name, store_path in stores.items()
    }
    store = LabelStore(
        stores["rows"], classes=CLASSES, catalogue_fingerprint=catalogue_identity(catalogue)
    )
    pool = Pool(store, catalogue)
    masks_ = pool.masks()
    clock = _Clock()
    out["rows"] = int(len(pool.status) - masks_["unlabelled"].sum())
    store.append("label", catalogue.ids[5], "QSO", row=5, **WHO)
    clock.lap()
    pool.refresh()
    masks_ = pool.masks()
    out["warm"] = clock.lap()
    store.current()
    out["frame_cold"] = clock.lap()
    store.append("label", catalogue.ids[6], "Star", row=6, **WHO)
    clock.lap()
    store.current()
    out["frame_warm"] = clock.lap()
    store.close()
    return out


COLD_RUNS = 5
"""Cold computations of the masks (each a new store object and Pool), of which the
median is reported, with every run in order."""
TOUCH_BYTES = 60_000_000
"""The fresh memory the masks of 10M rows take: the status codes and five bool masks."""


def _in_new_process(function: Any, *args: Any) -> Any:
    """``function(*args)`` in a new (spawned) process of its own."""
    with multiprocessing.get_context("spawn").Pool(1) as child:
        return child.apply(function, args)


def _cold_run(path: Path, folder: Path, store_path: Path) -> tuple[float, float]:
    """One cold computation of the masks: a new LabelStore, Pool and masks()."""
    catalogue = open_catalogue(path, cache_dir=folder)
    clock = _Clock()
    store = LabelStore(store_path, classes=CLASSES)
    Pool(store, catalogue).masks()
    lap = clock.lap()
    store.close()
    return lap


def _touch() -> tuple[float, float]:
    """Allocate and touch as much fresh memory as the masks take (the baseline)."""
    clock = _Clock()
    memory = np.ones(TOUCH_BYTES, np.int8)
    lap = clock.lap()
    del memory
    return lap


def _cold(laps: list[tuple[float, float]]) -> str:
    middle = laps[int(np.argsort([lap[0] for lap in laps])[len(laps) // 2])]
    runs = ", ".join(f"{lap[0] * 1e3:.0f}" for lap in laps)
    return f"median {_ms(middle)} of {len(laps)} (in order: {runs} ms)"


class _Clock:
    """Wall and CPU seconds since the last lap (CPU time shows what load adds)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return out


def _ms(lap: tuple[float, float]) -> str:
    return f"{lap[0] * 1e3:.0f} ms (CPU {lap[1] * 1e3:.0f} ms)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, default=None, help="folder for the files (default: a temporary folder)"
    )
    parser.add_argument("--commits", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load average {load}; "
            f"SQLite {sqlite3.sqlite_version}; folder {folder}"
        )
        for sync in ("FULL", "NORMAL"):
            median, p99, worst = commit_latency(folder, args.commits, sync)
            note = " (the store's setting)" if sync == "FULL" else " (comparison only)"
            print(
                f"single-label commit, WAL + synchronous={sync}{note}: "
                f"median {median:.3f} ms, p99 {p99:.3f} ms, max {worst:.1f} ms "
                f"over {args.commits} appends"
            )
        n, took = bulk_import(folder)
        print(
            f"bulk import of {n:,} catalogue labels (import_label_column, one act): "
            f"{took:.2f} s = {n / took:,.0f} events/s"
        )
        for string_ids in (False, True):
            r = masks(folder, string_ids)
            head = (
                f"10M-row catalogue ({'string' if string_ids else 'int64'} ids), "
                f"{r['events']:,} events, {r['rows']:,} rows with a state"
            )
            print(
                f"{head}: baseline, a new process allocating and touching "
                f"{TOUCH_BYTES / 1e6:.0f} MB (np.ones, int8; the masks' fresh memory): "
                f"{_cold(r['touch'])}"
            )
            for name, what in STORES.items():
                print(
                    f"{head}: current labels + masks cold (new LabelStore + Pool + masks()), "
                    f"{what}, one new process per run on the cached catalogue: "
                    f"{_cold(r['fresh'][name])}"
                )
                print(
                    f"{head}: current labels + masks cold, {what}, in this process: "
                    f"{_cold(r['cold'][name])}"
                )
            print(
                f"{head}: after one more label (Pool.refresh + masks()), "
                f"{STORES['rows']}: {_ms(r['warm'])}"
            )
            print(
                f"{head}: full current() DataFrame cold {_ms(r['frame_cold'])}, after one "
                f"more label {_ms(r['frame_warm'])}"
            )


if __name__ == "__main__":
    main()
