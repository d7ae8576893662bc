"""Move an AstronomicAL run to Armillary: :func:`session_from_astronomical` makes a
:class:`~armillary.Session` from the run's configuration file, with its labels.

===============================  =======================================================
AstronomicAL (configuration)     Armillary (:class:`~armillary.Session`)
===============================  =======================================================
dataset_filepath, id_col         catalogue: ``open_catalogue(path, id_column=id_col)``
features_for_training            features, then the combinations of each
feature_generation               ``catalogue.combine(features_for_training, op, n)``
labels_to_train, label_colours   classes, colours (codes named by labels_to_strings)
label_col, labels_to_strings     label_column, label_map (less -1, "Unknown")
extra_info_cols                  extra_columns (those the catalogue has)
extra_image_cols                 image_columns (file paths; columns of URLs left out)
classifiers[].classifier, query  learner (several: a committee, queried by vote entropy
                                 as modAL's Committee did), strategy
one classifier per class         scheme="one-vs-rest"
scale_data                       scale="robust" (AstronomicAL's RobustScaler) or None
classifiers[].id, y              the labels (-1: unsure), imported once
test_set_file                    the curated test set, less rows trained on (as there)
===============================  =======================================================

AstronomicAL ran from its own folder, configurations in ``configs/`` and data in
``data/``: relative paths are looked for beside the configuration, then one folder up.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from armillary import labels_io
from armillary._setup import default_colours
from armillary.catalogue import Catalogue, open_catalogue
from armillary.errors import (
    ArmillaryWarning,
    CatalogueNotFoundError,
    ColumnNotFoundError,
    LabelFileError,
)
from armillary.learners import LEARNERS
from armillary.session import Session
from armillary.store import LabelStore
from armillary.strategies import COMMITTEE, NAMES

__all__ = ["LEARNER_NAMES", "STRATEGY_NAMES", "session_from_astronomical"]

#: AstronomicAL's classifier names (``extensions/models.py``) and common variants.
LEARNER_NAMES = {
    "RForest": "random-forest", "ETrees": "extra-trees", "ExtraTrees": "extra-trees",
    "KNN": "knn", "DTree": "decision-tree", "LogRegression": "logistic-regression",
    "LR": "logistic-regression", "GBTrees": "hist-gradient-boosting",
    "HistGB": "hist-gradient-boosting",
}  # fmt: skip
#: AstronomicAL's query names (``extensions/query_strategies.py``), modAL's committee ones.
STRATEGY_NAMES = {
    "Uncertainty Sampling": "least-confidence", "Margin Sampling": "margin",
    "Entropy Sampling": "entropy", "Random": "random", "Random Sampling": "random",
    "Vote Entropy": "vote-entropy", "KL Max Disagreement": "max-disagreement",
    "Consensus Entropy": "consensus-entropy",
}  # fmt: skip
UNKNOWN = -1  # AstronomicAL's code for "Unknown" / unsure
NO_COLUMN = (None, "Use Index", "No Labels")  # AstronomicAL's "no such column"


def session_from_astronomical(
    config_path: str | os.PathLike,
    catalogue: Catalogue | str | os.PathLike | None = None,
    *,
    store: LabelStore | str | os.PathLike | None = None,
    import_labels: bool = True,
    **overrides: Any,
) -> Session:
    """A session set up as an AstronomicAL run was, with that run's labels.

    Parameters
    ----------
    config_path : str or path
        The configuration AstronomicAL saved (``configs/*.json``).
    catalogue : Catalogue or path, optional
        The catalogue; default the configuration's ``dataset_filepath``.
    store : LabelStore, path or None
        As for :class:`~armillary.Session`.
    import_labels : bool
        Import the labels of the configuration's ``classifiers`` (-1: unsure) and its
        test set (``test_set_file``). Importing again writes nothing new.
    **overrides
        Arguments of :class:`~armillary.Session`; they win over the configuration's (a
        setting given here is not read from the configuration).

    Returns
    -------
    Session
        Close it (``session.close()``) when done.

    Raises
    ------
    LabelFileError
        The file is not JSON, not a configuration, or names an unknown classifier, query,
        feature generation or label code; nothing is written.
    ColumnNotFoundError, UnknownIdError
        A training feature is not a column, or a labelled id not a row, of the catalogue;
        nothing is written.
    """
    path = Path(config_path)
    config = read_config(path)
    cat = _catalogue(config, path, catalogue)
    settings = session_settings(config, path, cat, overrides)
    plan = _label_plan(config, path, cat, settings["classes"]) if import_labels else None
    session = Session(cat, store=store, **settings)
    try:
        if plan is not None:
            _import(session, path, *plan)
    except BaseException:
        session.close()
        raise
    return session


def read_config(path: Path) -> dict[str, Any]:
    """The configuration as a dict; a clear error when it is not one."""
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabelFileError(f"no AstronomicAL configuration at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelFileError(
            f"{path} is not JSON ({exc}); pass the configuration AstronomicAL saved"
        ) from None
    if not isinstance(config, dict) or not isinstance(config.get("classifiers"), dict):
        raise LabelFileError(
            f"{path} is not an AstronomicAL configuration: it has no 'classifiers' object"
        )
    return config


def session_settings(
    config: Mapping[str, Any], path: Path, catalogue: Catalogue, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The :class:`~armillary.Session` arguments the configuration gives, then ``overrides``."""
    names = _int_keys(config, path, "labels_to_strings")
    classes = list(overrides.get("classes") or config.get("labels_to_train") or names.values())
    codes = {name: code for code, name in names.items()}
    colours, fallback = _int_keys(config, path, "label_colours"), default_colours(len(classes))
    out: dict[str, Any] = {
        "classes": classes,
        "colours": [colours.get(codes.get(c), fallback[i]) for i, c in enumerate(classes)],
        "label_column": _label_column(config, path, catalogue),
        "label_map": {c: n for c, n in names.items() if c != UNKNOWN and n in classes},
        "scheme": "one-vs-rest",  # AstronomicAL trained one classifier per class
        "scale": "robust" if config.get("scale_data") else None,
    }
    for arg, key in (("extra_columns", "extra_info_cols"), ("image_columns", "extra_image_cols")):
        if arg not in overrides:
            out[arg] = _shown(config, path, catalogue, key, images=arg == "image_columns")
    if "features" not in overrides:
        out["features"] = _features(config, path, catalogue)
    out.update(_learning(config, path, overrides))
    out.update(overrides)
    if out["label_column"] is None and "label_map" not in overrides:
        del out["label_map"]  # no column, so no map
    return out


# -- the catalogue and its columns -----------------------------------------------------


def _catalogue(config: Mapping[str, Any], path: Path, catalogue: Any) -> Catalogue:
    if isinstance(catalogue, Catalogue):
        return catalogue
    id_column = None if config.get("id_col") in NO_COLUMN else config["id_col"]
    if catalogue is not None:
        return open_catalogue(catalogue, id_column=id_column)
    source = config.get("dataset_filepath") or ""
    found, tried = _find(path, source)
    if not source or found is None:
        raise CatalogueNotFoundError(
            f"{path}: dataset_filepath {source!r} is not at {' nor '.join(tried)}; pass "
            "catalogue= (a Catalogue or the path of the dataset)"
        )
    return open_catalogue(found, id_column=id_column)


def _find(path: Path, name: str) -> tuple[Path | None, list[str]]:
    """A file the configuration names: beside it, or one folder up (AstronomicAL's root,
    when the configuration is in its ``configs/``); an absolute name is itself."""
    folder, name = path.absolute().parent, Path(name).expanduser()
    places = dict.fromkeys([folder / name, folder.parent / name])
    return next((p for p in places if p.is_file()), None), [str(p) for p in places]


def _features(config: Mapping[str, Any], path: Path, catalogue: Catalogue) -> list[str]:
    """Training features, then every combination AstronomicAL generated from them."""
    bands = list(config.get("features_for_training") or [])
    missing = [b for b in bands if b not in catalogue.columns]
    if missing or not bands:
        raise ColumnNotFoundError(
            f"{path}: features_for_training {missing or bands} are not columns of "
            f"{catalogue.name} (its columns: {', '.join(catalogue.columns)}); "
            "pass features=[...] to choose"
        )
    generated: list[str] = []
    for entry in config.get("feature_generation") or []:
        try:  # "subtract (a-b)" -> "subtract"
            made = catalogue.combine(bands, re.sub(r"\s*\(.*\)\s*$", "", entry[0]), entry[1])
        except (ValueError, TypeError, IndexError) as exc:
            raise LabelFileError(f"{path}: feature_generation {entry!r}: {exc}") from None
        generated += [name for name in made if name not in generated and name not in bands]
    return bands + generated


def _shown(
    config: Mapping[str, Any], path: Path, catalogue: Catalogue, key: str, images: bool
) -> list[str]:
    """The columns of ``key`` the catalogue has (and, for images, that hold no URLs)."""
    wanted = list(config.get(key) or [])
    absent = [c for c in wanted if c not in catalogue.columns]
    urls = [c for c in wanted if images and c not in absent and _holds_urls(catalogue, c)]
    if absent:
        _warn(f"{path}: {key} {absent} are not columns of {catalogue.name}; left out")
    if urls:
        _warn(
            f"{path}: {key} {urls} hold URLs, and image columns hold image files; left "
            "out (show survey images with cutouts=, see armillary.cutouts)"
        )
    return [c for c in wanted if c not in absent and c not in urls]


def _holds_urls(catalogue: Catalogue, column: str, rows: int = 20) -> bool:
    values = (str(catalogue.row(p, [column])[column]) for p in range(min(rows, len(catalogue))))
    return any(v.strip().lower().startswith(("http://", "https://")) for v in values)


def _label_column(config: Mapping[str, Any], path: Path, catalogue: Catalogue) -> str | None:
    column = config.get("label_col")
    if column not in NO_COLUMN and column not in catalogue.columns:
        _warn(f"{path}: label_col {column!r} is not a column of {catalogue.name}; left out")
    return column if column in catalogue.columns else None


def _int_keys(config: Mapping[str, Any], path: Path, key: str) -> dict[int, Any]:
    """``labels_to_strings`` or ``label_colours`` by integer code (-1 included)."""
    try:
        return {int(k): v for k, v in (config.get(key) or {}).items()}
    except (AttributeError, TypeError, ValueError):
        raise LabelFileError(f"{path}: {key} must map integer label codes") from None


# -- learner and strategy --------------------------------------------------------------


def _learning(config: Mapping[str, Any], path: Path, overrides: Mapping[str, Any]) -> dict:
    """Learner and strategy of the first classifier tab (AstronomicAL had one per class)."""
    tabs = {k: t for k, t in config["classifiers"].items()
            if isinstance(t, dict) and t.get("classifier")}  # fmt: skip
    if not tabs:
        return {}
    key, first = next(iter(tabs.items()))
    setup = (first["classifier"], first.get("query"))
    others = [k for k, t in tabs.items() if (t["classifier"], t.get("query")) != setup]
    if others:
        _warn(
            f"{path}: classifiers {others} differ from classifiers[{key!r}] {setup}; "
            f"Armillary trains one learner for every class: classifiers[{key!r}]'s is used"
        )
    where = f"{path}: classifiers[{key!r}]"
    out: dict[str, Any] = {}
    if "learner" not in overrides:
        names = [_name(LEARNER_NAMES, LEARNERS, c, f"{where}.classifier", "learner")
                 for c in first["classifier"]]  # fmt: skip
        out["learner"] = names[0] if len(names) == 1 else names
    queries = [_name(STRATEGY_NAMES, NAMES, q, f"{where}.query", "strategy")
               for q in first.get("query") or []]  # fmt: skip
    if "strategy" not in overrides and queries:
        if isinstance(overrides.get("learner", out.get("learner")), list | tuple):
            # a committee: modAL's Committee (AstronomicAL's) queried by vote entropy
            out["strategy"] = next((q for q in queries if q in COMMITTEE), "vote-entropy")
        else:
            out["strategy"] = queries[0]
    return out


def _name(table: dict, own: Any, name: Any, where: str, arg: str) -> str:
    if isinstance(name, str) and (name in own or name in table):
        return table.get(name, name)
    raise LabelFileError(
        f"{where} {name!r} is unknown; known names: {', '.join(table)} (or Armillary's "
        f"{', '.join(own)}); pass {arg}=... to choose"
    )


# -- labels ----------------------------------------------------------------------------


def _label_plan(config: Mapping[str, Any], path: Path, catalogue: Catalogue, classes: list):
    """Check every label to import (before anything is written); the test set to add."""
    label_map = {c: n for c, n in _int_keys(config, path, "labels_to_strings").items()
                 if c != UNKNOWN and n in classes}  # fmt: skip
    tabs = [k for k, t in config["classifiers"].items() if isinstance(t, dict) and "id" in t]
    table = labels_io._classifier_rows(config["classifiers"], tabs, path)
    labels_io._catalogue_ids(catalogue, table["id"].tolist(), path)
    labels_io._kinds_and_labels(table["y"].tolist(), label_map, path, "label")
    return label_map, tabs, _test_set(config, path, catalogue, label_map, set(table["id"]))


def _test_set(config, path, catalogue, label_map, trained: set) -> tuple | None:
    """AstronomicAL's test set (``test_set_file``: true for ``data/test_set.json``, or a
    path), less the rows trained on, as AstronomicAL left them out."""
    value = config.get("test_set_file")
    if not value:
        return None
    found, tried = _find(path, "data/test_set.json" if value is True else str(value))
    if found is None:
        _warn(f"{path}: test_set_file is not at {' nor '.join(tried)}; no test set imported")
        return None
    data = labels_io._read_json(found)
    if not isinstance(data, dict):
        raise LabelFileError(f"{found} is not an AstronomicAL test set (id -> label object)")
    keep = [k for k in data if str(k) not in trained]
    if len(keep) < len(data):
        _warn(f"{found}: {len(data) - len(keep)} test-set rows were trained on; left out")
    ids, rows = labels_io._catalogue_ids(catalogue, keep, found)
    codes = [data[k] for k in keep]
    return found, ids, rows, *labels_io._kinds_and_labels(codes, label_map, found, "test_label")


def _import(session: Session, path: Path, label_map: dict, tabs: list, test: Any) -> None:
    """Write the checked labels: the test set, then the classifiers' labels (one act each);
    rows already in the state they would get are left alone."""
    if test is not None:
        found, ids, rows, kinds, labels = test
        labels_io._append_changes(
            session.store, ids, kinds, labels, rows=rows, annotator=session.annotator,
            session_id=None, source=str(found),
        )  # fmt: skip
    # through the session, so that its masks and queue follow the new labels
    session.import_labels(path, label_map=label_map, classifiers=tabs)


def _warn(message: str) -> None:
    warnings.warn(message, ArmillaryWarning, stacklevel=5)
