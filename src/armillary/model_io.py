"""Save fitted models in a safe format, and load them back without unpickling anything.

A saved model is a folder::

    model/
      manifest.json      features, classes, scheme, versions, and the sha256 of each file
      model.skops        one file per named object, in skops' format (skops.io.dump)
      members-0.skops    a list of objects (a committee) is saved one file per member
      members-1.skops

A folder rather than one zip: the manifest can be read (and diffed) with any tool, and each
``.skops`` file is already a zip of its own. Loading checks every file's hash against the
manifest, then lists the types each file would create (``skops.io.get_untrusted_types``)
and refuses any that skops does not trust by default unless the caller names them in
``trusted``. :mod:`pickle` is never used: a file that is not a skops zip is refused unread.

The hashes catch a damaged or swapped file, not a malicious one: whoever can write the
model files can write the manifest too. What keeps a hostile file from running code is
skops' type check, which is why ``trusted`` is the caller's decision.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import shutil
import uuid
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from armillary.errors import ArmillaryError, ArmillaryWarning

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "TREE_TYPES",
    "ModelFileError",
    "ModelVersionWarning",
    "UntrustedModelError",
    "load_model",
    "read_manifest",
    "save_model",
    "untrusted_types",
]

#: What ``manifest["format"]`` says in every saved model.
FORMAT = "armillary-model"
#: The manifest layout this Armillary writes; it reads this version and older.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

#: scikit-learn's tree storage, which skops does not trust by default: a crafted file can
#: hold out-of-range node indices that crash the process at ``predict``. Forests, extra
#: trees, decision trees and histogram gradient boosting all need these. Pass them as
#: ``trusted`` only for files you made yourself or otherwise trust.
TREE_TYPES = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)

_NAME = re.compile(r"[A-Za-z0-9_]+")
_FILE = re.compile(r"[A-Za-z0-9_]+(-[0-9]+)?\.skops")


class ModelFileError(ArmillaryError):
    """A saved model is missing, damaged, or from a newer Armillary."""


class UntrustedModelError(ModelFileError):
    """A saved model would create types the caller has not said they trust."""


class ModelVersionWarning(ArmillaryWarning):
    """A model was saved with another scikit-learn version than the one loading it."""


# --- saving ------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    versions = {}
    for package in ("armillary", "scikit-learn", "numpy", "skops"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    # The source tree's version wins over stale installed metadata.
    from armillary import __version__

    versions["armillary"] = __version__
    return versions


def _to_json(value: Any) -> Any:
    """Make numpy scalars and arrays (and paths) JSON-ready; ``json.dumps`` calls this."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} {value!r} cannot go in a JSON manifest")


def _layout(model: Any) -> dict[str, list[tuple[str, Any]] | None]:
    """Each name's files and objects: None, one file, or one file per list member."""
    objects = model if isinstance(model, Mapping) else {"model": model}
    layout: dict[str, list[tuple[str, Any]] | None] = {}
    for name, value in objects.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"object name {name!r} must be letters, digits and underscores")
        if value is None:
            layout[name] = None
        elif isinstance(value, list | tuple):
            layout[name] = [(f"{name}-{i}.skops", member) for i, member in enumerate(value)]
        else:
            layout[name] = [(f"{name}.skops", value)]
    return layout


def _dump_all(folder: Path, layout: Mapping[str, Any]) -> tuple[dict, dict]:
    """Dump each object into ``folder``; return the manifest's objects and files entries."""
    import skops.io as sio

    entries: dict[str, Any] = {}
    hashes: dict[str, str] = {}
    for name, files in layout.items():
        if files is None:
            entries[name] = None
            continue
        for filename, obj in files:
            try:
                data = sio.dumps(obj)
            except Exception as error:  # skops raises several types for what it cannot save
                raise ModelFileError(
                    f"cannot save {name!r} ({type(obj).__name__}) in skops format: {error}"
                ) from error
            (folder / filename).write_bytes(data)
            hashes[filename] = hashlib.sha256(data).hexdigest()
        is_list = not (len(files) == 1 and files[0][0] == f"{name}.skops")
        entries[name] = [f for f, _ in files] if is_list else files[0][0]
    return entries, hashes


def _replace(staging: Path, path: Path) -> None:
    """Move the finished ``staging`` folder to ``path``, swapping out an older model."""
    if not path.exists():
        staging.rename(path)
        return
    retired = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    path.rename(retired)
    staging.rename(path)
    shutil.rmtree(retired, ignore_errors=True)


def save_model(
    path: str | Path, model: Any, manifest: Mapping[str, Any], *, overwrite: bool = False
) -> Path:
    """Save fitted scikit-learn objects and their manifest to a folder.

    Parameters
    ----------
    path : str or Path
        The folder to write; it must not exist unless ``overwrite`` is true and it holds a
        saved model. The model is written beside it and then moved in, so a failed save
        leaves any earlier model as it was.
    model : mapping of str to object, or one object
        Named objects to save, e.g. ``{"model": estimator, "scaler": None, "members": [...]}``:
        each a scikit-learn estimator or pipeline (or a numpy array, or a dict of these),
        ``None``, or a list of them (saved one file per member; a tuple loads back as a
        list). A single object is saved as ``{"model": obj}``.
    manifest : mapping
        What the session knows about the model: ``features``, ``classes``, ``scheme``,
        ``strategy``, ``random_state``, ``n_labels``, ``model_version``... Any JSON-ready
        values (numpy scalars and arrays are converted).
    overwrite : bool
        Replace a model already saved at ``path``.

    Returns
    -------
    Path
        The folder. Its ``manifest.json`` adds ``format``, ``format_version``, ``created``
        (UTC, ISO 8601), ``versions`` (armillary, scikit-learn, numpy, skops), ``objects``
        (each name's file or files, or null) and ``files`` (each file's sha256).
    """
    path = Path(path)
    reserved = {"format", "format_version", "created", "versions", "objects", "files"}
    if clash := sorted(reserved & set(manifest)):
        raise ValueError(f"manifest keys {clash} are written by save_model: rename them")
    if path.exists() and not (overwrite and (path / MANIFEST).is_file()):
        why = (
            "pass overwrite=True to replace it"
            if (path / MANIFEST).is_file()
            else ("it is not a saved model; choose a new folder")
        )
        raise ModelFileError(f"{path} already exists: {why}")
    layout = _layout(model)
    staging = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        objects, hashes = _dump_all(staging, layout)
        record = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **manifest,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "versions": _versions(),
            "objects": objects,
            "files": hashes,
        }
        text = json.dumps(record, indent=2, default=_to_json, ensure_ascii=False)
        (staging / MANIFEST).write_text(text + "\n", encoding="utf-8")
        _replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


# --- loading -----------------------------------------------------------------------------


def _check_format(manifest: Any, where: Path) -> dict[str, Any]:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{where} is not an Armillary model manifest (no format {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{where} has no valid format_version ({version!r})")
    if version > FORMAT_VERSION:
        made_by = manifest.get("versions", {}).get("armillary", "a newer version")
        raise ModelFileError(
            f"{where} is model format {version}, written by Armillary {made_by}; this "
            f"Armillary reads format {FORMAT_VERSION} and older: upgrade armillary to load it"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(_FILE.fullmatch(str(f)) for f in files):
        raise ModelFileError(f"{where} lists model files that are not plain .skops names")
    if not isinstance(manifest.get("objects"), dict):
        raise ModelFileError(f"{where} has no objects entry naming the saved objects")
    return manifest


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read a saved model's manifest (no model file is read or loaded).

    Raises
    ------
    ModelFileError
        When ``path`` holds no readable manifest, or one from a newer Armillary.
    """
    where = Path(path) / MANIFEST
    try:
        manifest = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ModelFileError(f"{where} does not exist: {path} is not a saved model") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{where} cannot be read as JSON: {error}") from error
    return _check_format(manifest, where)


def _verified_bytes(folder: Path, manifest: Mapping[str, Any]) -> dict[str, bytes]:
    """Each listed file's bytes, read once, after its sha256 matches the manifest."""
    contents = {}
    for filename, expected in manifest["files"].items():
        where = folder / filename
        try:
            data = where.read_bytes()
        except OSError as error:
            raise ModelFileError(f"{where} cannot be read: {error}") from error
        if hashlib.sha256(data).hexdigest() != expected:
            raise ModelFileError(
                f"{where} does not match the sha256 in {folder / MANIFEST}: the file was "
                "changed or damaged after saving; save the model again"
            )
        contents[filename] = data
    return contents


def _types_in(where: Path, data: bytes) -> list[str]:
    """The types skops does not trust by default in one file; never unpickles."""
    import skops.io as sio

    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ModelFileError(f"{where} is not a skops file (not a zip archive); it is not loaded")
    try:
        return list(sio.get_untrusted_types(data=data))
    except Exception as error:  # a zip that is no skops dump: refuse it, whatever went wrong
        raise ModelFileError(f"{where} is not a valid skops file: {error}") from error


def _refuse_untrusted(found: Mapping[str, list[str]], trusted: Iterable[str]) -> None:
    """Raise :class:`UntrustedModelError` if any file holds a type not in ``trusted``."""
    from skops.io.exceptions import UNTRUSTED_TYPE_REASONS

    refused = {f: sorted(set(types) - set(trusted)) for f, types in found.items()}
    refused = {f: types for f, types in refused.items() if types}
    if not refused:
        return
    names = sorted({t for types in refused.values() for t in types})
    where = "; ".join(f"{f}: {', '.join(types)}" for f, types in refused.items())
    hint = " (or armillary.model_io.TREE_TYPES)" if set(names) <= set(TREE_TYPES) else ""
    reasons = [f"\n- {UNTRUSTED_TYPE_REASONS[t]}" for t in names if t in UNTRUSTED_TYPE_REASONS]
    raise UntrustedModelError(
        f"the saved model would create types that are not trusted by default ({where}). "
        f"If you made this model or trust its source, load it with trusted={names!r}{hint}."
        + "".join(reasons)
    )


def untrusted_types(path: str | Path) -> dict[str, list[str]]:
    """The types in each file of a saved model that skops does not trust by default.

    Review these before passing them as ``trusted`` to :func:`load_model`. The files'
    hashes are checked first; nothing is loaded.
    """
    folder = Path(path)
    contents = _verified_bytes(folder, read_manifest(folder))
    return {name: _types_in(folder / name, data) for name, data in contents.items()}


def _warn_versions(manifest: Mapping[str, Any], folder: Path) -> None:
    saved = manifest.get("versions", {}).get("scikit-learn")
    current = _versions()["scikit-learn"]
    if saved and saved != current:
        warnings.warn(
            f"{folder} was saved with scikit-learn {saved} and is loaded with {current}: "
            "predictions may differ; refit the model to be sure",
            ModelVersionWarning,
            stacklevel=3,
        )


def load_model(
    path: str | Path, *, trusted: Iterable[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load a model saved by :func:`save_model`, checking every file first.

    Parameters
    ----------
    path : str or Path
        The saved model's folder.
    trusted : iterable of str, optional
        Fully qualified type names to allow beyond skops' default trusted set, e.g.
        :data:`TREE_TYPES` for tree models you saved yourself. See :func:`untrusted_types`.

    Returns
    -------
    objects : dict
        The named objects as they were saved (``None`` and lists included).
    manifest : dict
        The manifest.

    Raises
    ------
    ModelFileError
        A missing or changed file (the message names it), a file that is not skops, or a
        manifest from a newer Armillary.
    UntrustedModelError
        The files would create types not trusted by default and not in ``trusted``; the
        message names them and what to pass.
    """
    import skops.io as sio

    folder = Path(path)
    manifest = read_manifest(folder)
    contents = _verified_bytes(folder, manifest)
    found = {name: _types_in(folder / name, data) for name, data in contents.items()}
    trusted = [str(t) for t in (trusted or ())]
    _refuse_untrusted(found, trusted)
    _warn_versions(manifest, folder)
    loaded = {}
    for name, data in contents.items():
        try:
            loaded[name] = sio.loads(data, trusted=sorted(set(found[name]) & set(trusted)))
        except Exception as error:  # skops raises many types for a malformed dump
            raise ModelFileError(f"{folder / name} cannot be loaded: {error}") from error
    return _assemble(manifest, loaded, folder), manifest


def _assemble(manifest: Mapping[str, Any], loaded: Mapping[str, Any], folder: Path) -> dict:
    objects: dict[str, Any] = {}
    for name, entry in manifest["objects"].items():
        files = [entry] if isinstance(entry, str) else list(entry or [])
        if missing := [f for f in files if f not in loaded]:
            raise ModelFileError(f"{folder / MANIFEST} names {missing} without their sha256")
        if entry is None:
            objects[name] = None
        elif isinstance(entry, str):
            objects[name] = loaded[entry]
        else:
            objects[name] = [loaded[f] for f in entry]
    return objects
