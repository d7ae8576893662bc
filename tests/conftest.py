"""Shared fixtures: one small synthetic catalogue (a real FITS file) and sessions on it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from armillary import Catalogue, Session, datasets, open_catalogue
from helpers import ASTRONOMICAL_CONFIG

#: Rows of the shared example catalogue, and how many of them (the first) have a thumbnail.
N_ROWS = 3000
N_THUMBNAILS = 40
CLASSES = ["Star", "Galaxy", "QSO"]
FEATURES = ["u - g", "g - r", "r - i", "i - z", "z - y", "j - k", "w1 - w2"]
LABEL_MAP = {0: "Star", 1: "Galaxy", 2: "QSO"}


@pytest.fixture(scope="session")
def catalogue_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3000-row example catalogue written by ``armillary.datasets.make_catalogue``."""
    folder = tmp_path_factory.mktemp("sky")
    return datasets.make_catalogue(
        n=N_ROWS, seed=0, path=folder / "sky.fits", thumbnails=N_THUMBNAILS
    )


@pytest.fixture(scope="session")
def catalogue(catalogue_path: Path) -> Catalogue:
    """The example catalogue, opened once (its cache sits beside the FITS file).

    Tests must not derive columns on it, and must not open sessions with ``store=None`` on
    it: the default store would be shared by every test. Use ``own_catalogue`` for that.
    """
    return open_catalogue(catalogue_path)


@pytest.fixture
def own_catalogue(catalogue_path: Path, tmp_path: Path) -> Catalogue:
    """The example catalogue with its cache (and so its default store) in ``tmp_path``."""
    return open_catalogue(catalogue_path, cache_dir=tmp_path / "cache")


@pytest.fixture(scope="session")
def truth(catalogue: Catalogue) -> np.ndarray:
    """The generator's true class name of every row: the oracle of simulated labelling."""
    return np.array(CLASSES, dtype=object)[catalogue.column("true_label").astype(np.intp)]


@pytest.fixture(scope="session")
def session_kwargs() -> dict[str, Any]:
    """The issue's signature, with a fast learner; a test overrides what it needs."""
    return {
        "classes": CLASSES,
        "features": FEATURES,
        "label_column": "labels",
        "label_map": LABEL_MAP,
        "learner": "decision-tree",
        "strategy": "margin",
        "extra_columns": ["redshift", "Lx"],
        "image_columns": ["thumbnail"],
        "random_state": 0,
        "annotator": "ada",
    }


@pytest.fixture
def config() -> dict[str, Any]:
    """AstronomicAL's example configuration, read; skips when ``../shared`` is absent."""
    if not ASTRONOMICAL_CONFIG.is_file():
        pytest.skip(f"the AstronomicAL example configuration is not at {ASTRONOMICAL_CONFIG}")
    return json.loads(ASTRONOMICAL_CONFIG.read_text())


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "labels.sqlite"


@pytest.fixture
def make_session(
    catalogue: Catalogue, store_path: Path, session_kwargs: dict[str, Any]
) -> Iterator[Callable[..., Session]]:
    """Build sessions (on the shared catalogue and a fresh store by default); all are
    closed, and their trainer threads stopped, at the end of the test."""
    opened: list[Session] = []

    def make(source: Any = None, **overrides: Any) -> Session:
        kwargs = {**session_kwargs, "store": store_path, **overrides}
        session = Session(catalogue if source is None else source, **kwargs)
        opened.append(session)
        return session

    yield make
    for session in opened:
        session.close()


@pytest.fixture
def session(make_session: Callable[..., Session]) -> Session:
    return make_session()


@pytest.fixture(scope="session")
def rows_of_each_class(truth: np.ndarray) -> Callable[..., dict[str, np.ndarray]]:
    """``rows_of_each_class(per_class, seed=0)``: that many random row positions of each
    true class, as ``{class name: positions}``."""

    def pick(per_class: int, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {
            name: rng.choice(np.flatnonzero(truth == name), size=per_class, replace=False)
            for name in CLASSES
        }

    return pick
