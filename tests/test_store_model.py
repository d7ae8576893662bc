"""The label log's semantics against a plain-Python model, with hypothesis.

:class:`LogModel` says what the store should hold after any sequence of acts, undos and
redos; ``tests/test_pool.py`` reuses it for the pool masks.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from armillary import _store_schema as schema
from armillary.store import STATE_OF, LabelStore

CLASSES = ("Star", "Galaxy", "QSO")
ACTORS = (("ada", "s1"), ("ada", "s2"), ("bob", "s1"))


class LogModel:
    """What the log should say, in plain Python: a list of acts, each a list of events."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.acts: list[dict] = []
        self.redo_stack: dict[tuple, list[dict]] = defaultdict(list)

    def state(self, row: object, provenance: str = "human") -> tuple | None:
        """(state, label) of a row now, or None."""
        live = [e for e in self.events if e["id"] == row and e["provenance"] == provenance
                and e["kind"] in STATE_OF and not e["act"]["undone"]]
        return (STATE_OF[live[-1]["kind"]], live[-1]["label"]) if live else None

    def act(self, actor: tuple, rows: list, kind: str, label: str | None,
            provenance: str = "human") -> list[str]:
        """Record an act; returns the kinds stored (a label of a labelled row is a
        relabel, for single-row acts)."""
        act = {"actor": actor, "undone": False, "events": []}
        for row in rows:
            stored = kind
            if kind == "label" and len(rows) == 1 and \
                    (self.state(row, provenance) or ("",))[0] == "label":
                stored = "relabel"
            event = {"id": row, "kind": stored, "label": label, "provenance": provenance,
                     "act": act}
            act["events"].append(event)
            self.events.append(event)
        self.acts.append(act)
        self.redo_stack[actor] = []
        return [e["kind"] for e in act["events"]]

    def undo(self, actor: tuple) -> dict | None:
        mine = [a for a in self.acts if a["actor"] == actor and not a["undone"]]
        if not mine:
            return None
        mine[-1]["undone"] = True
        self.redo_stack[actor].append(mine[-1])
        return mine[-1]

    def redo(self, actor: tuple) -> dict | None:
        if not self.redo_stack[actor]:
            return None
        act = self.redo_stack[actor].pop()
        act["undone"] = False
        return act

    def current(self, provenance: str = "human") -> list[tuple]:
        """(id, state, label) of every row with a state, ordered by its event."""
        latest = {}
        for i, e in enumerate(self.events):
            if e["provenance"] == provenance and e["kind"] in STATE_OF \
                    and not e["act"]["undone"]:
                latest[e["id"]] = (i, e)
        return [(e["id"], STATE_OF[e["kind"]], e["label"])
                for _, e in sorted(latest.values(), key=lambda p: p[0])]


def states(store: LabelStore, provenance: str = "human", lean: bool = False) -> list[tuple]:
    """(id, state, label) of every row of current(), in order."""
    cols = ["id", "kind", "label"] if lean else None
    cur = store.current(provenance, columns=cols)
    return list(zip(cur["id"].tolist(), cur["kind"], cur["label"], strict=True))


def apply(store: LabelStore, model: LogModel, op: tuple, where: list | None = None) -> None:
    """Do one op on both the store and the model, checking what the store returns; with
    ``where``, the catalogue row of each id of the op, recorded with its events."""
    kind, rows, label, actor = op
    annotator, session = actor
    if kind in ("undo", "redo"):
        expected = getattr(model, kind)(actor)
        got = getattr(store, kind)(annotator=annotator, session_id=session)
        if expected is None:
            assert got is None
        else:
            first = expected["events"][0]
            assert (got.row_id, got.kind) == (first["id"], first["kind"])
        return
    label = label if kind in schema.LABEL_KINDS else None
    note = "a note" if kind == "note" else None
    if kind == "bulk_label":
        kinds = model.act(actor, rows, kind, label)
        written = store.append_many(kind, rows, label, annotator=annotator,
                                    session_id=session, selection_id="sel", rows=where)
        assert len(written) == len(rows)
        assert store.events()["kind"].tolist()[-len(rows):] == kinds
        return
    kinds = model.act(actor, rows[:1], kind, label)
    event = store.append(kind, rows[0], label, annotator=annotator, session_id=session,
                         note=note, row=None if where is None else where[0])
    assert event.kind == kinds[0]


OPS = st.lists(
    st.tuples(
        st.sampled_from([*schema.ACTS, "undo", "redo", "undo", "label"]),
        st.lists(st.integers(0, 5), min_size=1, max_size=4),
        st.sampled_from(CLASSES),
        st.sampled_from(ACTORS),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_current_matches_model(ops):
    model = LogModel()
    with LabelStore(":memory:") as store:  # semantics only; files are tested elsewhere
        for op in ops:
            apply(store, model, op)
            assert states(store, lean=True) == model.current()
        assert states(store) == model.current()
        labels = store.labels()
        assert labels[["id", "label"]].values.tolist() == [
            [r[0], r[2]] for r in model.current() if r[1] == "label"]
        assert store.test_set()["id"].tolist() == [
            r[0] for r in model.current() if r[1] == "test"]
        # The SQL view (the spec a PostgreSQL backend would follow) agrees too.
        rows = store._conn.execute(schema.CURRENT_SQL, ("human",)).fetchall()
        assert [r[0] for r in rows] == store.current()["event_id"].tolist()


@settings(max_examples=30, deadline=None)
@given(ops=OPS, reopen_at=st.integers(0, 40))
def test_a_reopened_store_continues_the_same_log(tmp_path_factory, ops, reopen_at):
    """Undo and redo read the log, not memory: a new process picks up where one left."""
    path = tmp_path_factory.mktemp("reopen") / "labels.sqlite"
    model = LogModel()
    store = LabelStore(path)
    try:
        for k, op in enumerate(ops):
            if k == reopen_at:
                store.close()
                store = LabelStore(path)
            apply(store, model, op)
        assert states(store) == model.current()
        assert states(store, lean=True) == model.current()
    finally:
        store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
