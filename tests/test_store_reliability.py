"""Real processes on real files: SIGKILL mid-write, and two writers at once.

Children come from a ``forkserver`` that has imported this module once, so a child starts
in milliseconds and holds no thread of the test process. Nothing here asserts a time;
the durations are printed (``pytest -s``) for the record.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from armillary.store import LabelStore

CLASSES = ("Star", "Galaxy", "QSO")
KILLS = 100
PER_WRITER = 10_000


@pytest.fixture(scope="module")
def forkserver():
    """A multiprocessing context whose server has this module (and the store) loaded."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("this platform has no forkserver start method")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "armillary.store"])
    return context


# -- crash: SIGKILL at random moments ----------------------------------------------------


def label_forever(path: str, acks: str, seed: int) -> None:
    """Label, bulk-label and undo until killed, acknowledging each act once it returns.

    An acknowledgement is one ``os.write`` of one line to an append-only file, made only
    after the store returned (that is, after the commit was synced).
    """
    rng = random.Random(seed)
    out = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    store = LabelStore(path, classes=CLASSES)
    who = {"annotator": "ada", "session_id": f"run-{seed}"}
    for i in range(10**9):
        dice = rng.random()
        if dice < 0.8:
            event = store.append("label", f"{seed}-{i}", rng.choice(CLASSES), **who)
            line = f"label {event.event_id} {event.row_id} {event.label}\n"
        elif dice < 0.9:
            rows = [f"{seed}-{i}-{k}" for k in range(25)]
            written = store.append_many("bulk_label", rows, "QSO", selection_id=f"s{i}", **who)
            line = f"bulk {written.start} {written.stop}\n"
        else:
            undone = store.undo(**who)  # then the child's last event is the log's last
            line = f"undo {undone.event_id if undone else 0} {store.state_version}\n"
        os.write(out, line.encode())


def read_acks(path: Path) -> list[list[str]]:
    """The complete acknowledgement lines (a kill may cut none, but be safe)."""
    if not path.exists():
        return []
    text = path.read_text()
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    return [line.split() for line in complete.splitlines()]


def check_acknowledged(store_path: Path, acks: list[list[str]]) -> int:
    """Every acknowledged act is in the log, as acknowledged; returns the log's length."""
    with sqlite3.connect(store_path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    with LabelStore(store_path) as store:  # opens after the kill, recovering the WAL
        log = store.events().set_index("event_id")
    labels = pd.DataFrame([a[1:] for a in acks if a[0] == "label"],
                          columns=["event_id", "id", "label"]).astype({"event_id": int})
    found = log.reindex(labels["event_id"])
    assert (found["kind"].isin(["label", "relabel"])).all()
    assert found["id"].tolist() == labels["id"].tolist()
    assert found["label"].tolist() == labels["label"].tolist()
    for ack in acks:
        if ack[0] == "bulk":
            kinds = log["kind"].reindex(range(int(ack[1]), int(ack[2])))
            assert (kinds == "bulk_label").all()
    undone = [int(a[1]) for a in acks if a[0] == "undo" and int(a[1])]
    assert np.isin(undone, log["target_event"].dropna().to_numpy()).all()
    return len(log)


def test_sigkill_at_random_moments_loses_no_acknowledged_label(tmp_path, forkserver):
    store_path, ack_path = tmp_path / "labels.sqlite", tmp_path / "acks.txt"
    rng = random.Random(0)
    started = time.perf_counter()
    unacknowledged = 0
    for round_ in range(KILLS):
        child = forkserver.Process(target=label_forever,
                                   args=(str(store_path), str(ack_path), round_))
        child.start()
        time.sleep(rng.uniform(0.0, 0.25))  # sometimes while it opens the store
        child.kill()  # SIGKILL
        child.join()
        assert child.exitcode == -9
        acks = read_acks(ack_path)
        unacknowledged += check_acknowledged(store_path, acks) > _acked_events(acks)
    print(f"\n{KILLS} SIGKILLs in {time.perf_counter() - started:.1f} s; "
          f"{len(read_acks(ack_path))} acts acknowledged; in {unacknowledged} rounds the "
          "log held an act never acknowledged (killed once its commit had reached the "
          "operating system, mostly inside the fsync, but before the acknowledgement)")


def _acked_events(acks: list[list[str]]) -> int:
    """The highest event id any acknowledgement names."""
    last = [int(a[2]) - (a[0] == "bulk") if a[0] != "label" else int(a[1]) for a in acks]
    return max(last, default=0)


# -- concurrency: two writers and a reader ------------------------------------------------


def write_many(path: str, writer: int, start: multiprocessing.synchronize.Event) -> None:
    """PER_WRITER labels, each its own committed append, over 500 shared rows."""
    store = LabelStore(path, classes=CLASSES)
    start.wait()
    for i in range(PER_WRITER):
        store.append("label", i % 500, CLASSES[(i + writer) % 3], note=str(i),
                     annotator=f"writer-{writer}", session_id="race")
    store.close()


def check_snapshot(store: LabelStore) -> int:
    """Within one snapshot: ids dense, each writer's events a gapless prefix in order,
    and current() the fold of events(). Returns the number of events seen."""
    with store.snapshot():
        log = store.events()
        current = store.current()
    n = len(log)
    assert log["event_id"].tolist() == list(range(1, n + 1))
    for _, mine in log.groupby("annotator"):
        assert mine["note"].astype(int).tolist() == list(range(len(mine)))
    last = log.drop_duplicates("id", keep="last").sort_values("event_id")
    assert current["event_id"].tolist() == last["event_id"].tolist()
    assert current["label"].tolist() == last["label"].tolist()
    return n


def test_two_writers_lose_and_duplicate_nothing(tmp_path, forkserver):
    path = tmp_path / "labels.sqlite"
    LabelStore(path).close()
    start = forkserver.Event()
    writers = [forkserver.Process(target=write_many, args=(str(path), w, start))
               for w in (0, 1)]
    for w in writers:
        w.start()
    began = time.perf_counter()
    start.set()
    seen = []
    with LabelStore(path) as reader:
        while any(w.is_alive() for w in writers):
            seen.append(check_snapshot(reader))
        for w in writers:
            w.join()
            assert w.exitcode == 0
        took = time.perf_counter() - began
        assert check_snapshot(reader) == 2 * PER_WRITER
        log = reader.events()
    assert seen == sorted(seen)  # a reader never sees the log shrink
    assert len(seen) > 1  # it read while they wrote
    assert seen[0] < 2 * PER_WRITER
    for w in (0, 1):
        mine = log[log["annotator"] == f"writer-{w}"]
        assert mine["note"].astype(int).tolist() == list(range(PER_WRITER))
        assert mine["label"].tolist() == [CLASSES[(i + w) % 3] for i in range(PER_WRITER)]
    interleaved = np.count_nonzero(np.diff((log["annotator"] == "writer-0").to_numpy()))
    print(f"\n2 x {PER_WRITER} committed appends in {took:.1f} s "
          f"({2 * PER_WRITER / took:.0f} commits/s); {len(seen)} consistent snapshots "
          f"read meanwhile; the writers took turns {interleaved} times")
    assert isinstance(log, pd.DataFrame)
