"""Plain helpers shared by the session, learning and presenter tests (not fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: AstronomicAL's example configuration, in ``../shared`` beside the checkout (absent on a
#: user's machine: the ``config`` fixture then skips).
ASTRONOMICAL_CONFIG = (
    Path(__file__).parents[2] / "shared" / "fixtures" / "astronomical_example_config.json"
)


def label_rows(session, positions, truth, wrong=None) -> list:
    """Label rows by their true class, as the simulated astronomer; returns their ids.

    ``wrong`` maps a position to another class (a deliberate mistake).
    """
    ids = []
    for pos in positions:
        row_id = session.catalogue.id_at(int(pos))
        session.label(row_id, (wrong or {}).get(int(pos), truth[int(pos)]))
        ids.append(row_id)
    return ids


def pool_rows(session, truth, per_class, seed=0) -> dict[str, np.ndarray]:
    """``per_class`` random rows of each true class that the session may propose
    (``rows_of_each_class`` may include held-out rows, which are never trained on)."""
    rng = np.random.default_rng(seed)
    free = np.ones(len(truth), dtype=bool)
    free[session.evaluation.held_out] = False
    return {
        name: rng.choice(np.flatnonzero((truth == name) & free), size=per_class, replace=False)
        for name in ("Star", "Galaxy", "QSO")
    }


def human_events(store) -> int:
    """Events people made (the catalogue's own labels, recorded on open, left out)."""
    return len(store.events(provenance="human"))
