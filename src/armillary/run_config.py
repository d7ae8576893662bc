"""Run configurations: a session's set-up in one JSON file, to make the same session again.

:meth:`Session.save_config <armillary.Session.save_config>` writes what a session was made
with: the catalogue (its path, id column, derived columns and content identity), the label
store, classes and colours, features, the label column, learner, strategy, scheme and every
other option, and the Armillary version. :meth:`Session.from_config
<armillary.Session.from_config>` makes that session again, on the same labels (they live
in the store, which the configuration names), with the same random state: the same
candidates, the same models.

Paths are written relative to the configuration's folder when they lie under it, so a
project folder (catalogue, store, configuration) can be moved or shared whole.

Learners given as scikit-learn objects are recorded as their class and parameters, and
made again only from classes that are scikit-learn estimators (``BaseEstimator``
subclasses), so a configuration cannot name arbitrary code to run. A learner or strategy
defined in a notebook cannot be imported again: :meth:`from_config` then asks for it
(``learner=`` / ``strategy=``).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from armillary._ids import catalogue_identity
from armillary.errors import ArmillaryError

if TYPE_CHECKING:
    from armillary.session import Session

FORMAT = 1
"""Version of the configuration's layout; a newer one is refused with a clear error."""


class ConfigError(ArmillaryError):
    """A run configuration that cannot be read, or that names what is not there."""


# --------------------------------------------------------------------------- writing


def config_of(session: Session, folder: Path) -> dict[str, Any]:
    """The JSON-ready configuration of ``session``; paths relative to ``folder`` if under it."""
    from armillary import __version__

    made = {
        **session._made_with,
        "classes": session.classes,
        "colours": session.colours,
        "features": session.features,
        "label_column": session.label_column,
        "label_map": dict(session.label_map or {}),
        "cutouts": {t.name: t.template for t in session.cutouts},
        "random_state": session.random_state,
    }
    catalogue = session.catalogue
    store = session.store.path
    return {
        "armillary": {"version": __version__, "format": FORMAT},
        "catalogue": {
            "path": _relative(Path(catalogue.source), folder),
            "id_column": catalogue.id_column,
            "identity": catalogue_identity(catalogue),
            "derived": catalogue.derived,
        },
        "store": None if str(store) == ":memory:" else _relative(Path(store), folder),
        **{
            k: _value_out(v, k)
            for k, v in made.items()
            if k not in ("learner", "strategy", "label_map")
        },
        "label_map": [
            [_value_out(code, "label_map"), name] for code, name in made["label_map"].items()
        ],
        "learner": _learner_out(made["learner"]),
        "strategy": _callable_out(made["strategy"], "strategy"),
    }


def write_config(session: Session, path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Write :func:`config_of` to ``path`` (JSON), atomically; refuse to replace a file
    unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        msg = f"{path} exists; pass overwrite=True to replace it"
        raise FileExistsError(msg)
    text = json.dumps(config_of(session, path.resolve().parent), indent=2) + "\n"
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path


def _relative(path: Path, folder: Path) -> str:
    path = path.resolve()
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)


def _learner_out(learner: Any) -> Any:
    if isinstance(learner, str):
        return learner
    if isinstance(learner, list | tuple):
        return [_learner_out(item) for item in learner]
    return _estimator_out(learner)


def _estimator_out(estimator: Any) -> Any:
    """An estimator as ``{"estimator": "module:Class", "params": {...}}`` (recursively)."""
    if hasattr(estimator, "get_params"):
        params = estimator.get_params(deep=False)
        return {
            "estimator": _callable_out(type(estimator), "learner"),
            "params": {
                k: _value_out(v, f"{type(estimator).__name__}.{k}") for k, v in params.items()
            },
        }
    return _value_out(estimator, "learner")


def _value_out(value: Any, what: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "get_params"):
        return _estimator_out(value)
    if isinstance(value, list | tuple):
        return [_value_out(v, what) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _value_out(v, what) for k, v in value.items()}
    if hasattr(value, "item"):  # a numpy scalar
        return value.item()
    msg = (
        f"cannot record {what}={value!r} in a run configuration: only plain values, "
        "lists and scikit-learn estimators are; give the learner by name, or plain parameters"
    )
    raise ConfigError(msg)


def _callable_out(obj: Any, what: str) -> Any:
    if isinstance(obj, str):
        return obj
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not name or "<" in name:
        msg = f"cannot record the {what} {obj!r}: it has no importable name"
        raise ConfigError(msg)
    return {"import": f"{module}:{name}"}


# --------------------------------------------------------------------------- reading


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a configuration file; errors name the file and what is wrong."""
    path = Path(path)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no run configuration at {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not a run configuration (not JSON: {exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("armillary"), dict):
        msg = f"{path} is not an Armillary run configuration (no 'armillary' section)"
        raise ConfigError(msg)
    fmt = config["armillary"].get("format")
    if not isinstance(fmt, int) or fmt > FORMAT:
        msg = (
            f"{path} was written by Armillary {config['armillary'].get('version')} "
            f"(configuration format {fmt!r}); this Armillary reads format {FORMAT}: upgrade it"
        )
        raise ConfigError(msg)
    for key in ("catalogue", "classes", "features", "learner", "strategy"):
        if key not in config:
            raise ConfigError(f"{path} has no {key!r}: it is not a complete run configuration")
    return config


def load_session(cls: type, path: str | os.PathLike, overrides: dict[str, Any]) -> Any:
    """``Session.from_config``: read, check and make the session."""
    path = Path(path)
    config = read_config(path)
    allowed = set(inspect.signature(cls).parameters) - {"catalogue"}
    unknown = (set(config) - {"armillary", "catalogue", "store"} - allowed) | (
        set(overrides) - allowed - {"catalogue"}
    )
    if unknown:
        msg = f"{path}: unknown session settings {sorted(unknown)}; valid: {sorted(allowed)}"
        raise ConfigError(msg)
    catalogue, kwargs = session_arguments(config, path, overrides)
    return cls(catalogue, **kwargs)


def session_arguments(
    config: dict[str, Any], path: Path, overrides: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """The catalogue and the keyword arguments of ``Session`` for a read configuration."""
    from armillary.catalogue import Catalogue, open_catalogue

    folder = path.resolve().parent
    kwargs = {k: v for k, v in config.items() if k not in ("armillary", "catalogue")}
    kwargs["label_map"] = dict(config.get("label_map") or []) or None
    if "learner" not in overrides:
        kwargs["learner"] = _learner_in(config["learner"], path)
    if "strategy" not in overrides:
        kwargs["strategy"] = _import(config["strategy"], "strategy", path)
    if "store" not in overrides:
        kwargs["store"] = _store_in(config.get("store"), folder, path)
    kwargs.update(overrides)
    catalogue = kwargs.pop("catalogue", None)
    spec = config["catalogue"]
    if catalogue is None:
        source = folder / spec["path"]
        if not source.exists():
            msg = (
                f"{path}: the run's catalogue {spec['path']} is not at {source}; "
                "pass catalogue= with its path or the opened catalogue"
            )
            raise ConfigError(msg)
        catalogue = open_catalogue(source, id_column=spec.get("id_column"))
    elif not isinstance(catalogue, Catalogue):
        catalogue = open_catalogue(catalogue, id_column=spec.get("id_column"))
    _restore_derived(catalogue, spec.get("derived") or {}, path)
    if spec.get("identity") and catalogue_identity(catalogue) != spec["identity"]:
        msg = (
            f"{path}: {catalogue.source} is not the catalogue this run used (its contents "
            "differ); pass catalogue= with the run's file"
        )
        raise ConfigError(msg)
    return catalogue, kwargs


def _restore_derived(catalogue: Any, derived: dict[str, str], path: Path) -> None:
    for name, expression in derived.items():
        if catalogue.derived.get(name) == expression:
            continue
        try:
            catalogue.restore_derived(name, expression)
        except ArmillaryError as exc:
            msg = f"{path}: cannot derive the run's column {name!r} = {expression!r}: {exc}"
            raise ConfigError(msg) from None


def _store_in(store: str | None, folder: Path, path: Path) -> Any:
    if store is None:
        return ":memory:"
    where = folder / store
    if not where.exists():
        msg = (
            f"{path}: the run's label store {store} is not at {where}; pass store= with its "
            "path, or store= a new file to start the run again without its labels"
        )
        raise ConfigError(msg)
    return where


def _learner_in(learner: Any, path: Path) -> Any:
    if isinstance(learner, str):
        return learner
    if isinstance(learner, list):
        return [_learner_in(item, path) for item in learner]
    return _estimator_in(learner, path)


def _estimator_in(spec: Any, path: Path) -> Any:
    from sklearn.base import BaseEstimator

    if not isinstance(spec, dict) or "estimator" not in spec:
        raise ConfigError(f"{path}: learner {spec!r} is not a name or a recorded estimator")
    cls = _import(spec["estimator"], "learner", path)
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        named = spec["estimator"]
        named = named.get("import", named) if isinstance(named, dict) else named
        msg = f"{path}: learner {named} is not a scikit-learn estimator; refused"
        raise ConfigError(msg)
    params = {k: _param_in(v, path) for k, v in (spec.get("params") or {}).items()}
    return cls(**params)


def _param_in(value: Any, path: Path) -> Any:
    if isinstance(value, dict) and "estimator" in value:
        return _estimator_in(value, path)
    if isinstance(value, list):
        return [_param_in(v, path) for v in value]
    return value


def _import(spec: Any, what: str, path: Path) -> Any:
    if isinstance(spec, str):
        return spec
    target = spec.get("import") if isinstance(spec, dict) else None
    if not isinstance(target, str) or ":" not in target:
        raise ConfigError(f"{path}: {what} {spec!r} is not a name or an import path")
    module, _, name = target.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        msg = (
            f"{path}: the run's {what} {target} cannot be imported (defined in a notebook?); "
            f"pass {what}= to from_config"
        )
        raise ConfigError(msg) from None
    return obj
