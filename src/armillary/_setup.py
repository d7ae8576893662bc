"""Checks and defaults for a new :class:`~armillary.session.Session` (clear errors first)."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from armillary.catalogue import Catalogue
from armillary.errors import ArmillaryError, ColumnNotFoundError, UnknownClassError


def check_classes(classes: Sequence[str]) -> list[str]:
    names = list(classes)
    if len(names) < 2:
        raise ArmillaryError(f"a session needs at least two classes, got {names!r}")
    if any(not isinstance(c, str) or not c.strip() for c in names):
        raise ArmillaryError(f"class names must be non-empty strings, got {names!r}")
    if len(set(names)) != len(names):
        raise ArmillaryError(f"class names must be unique, got {names!r}")
    return names


def check_columns(catalogue: Catalogue, columns: Iterable[str], what: str) -> list[str]:
    names = list(columns)
    known = set(catalogue.columns)
    for name in names:
        if name not in known:
            raise ColumnNotFoundError(
                f"{what}: column {name!r} is not in {catalogue.source.name}; "
                f"available columns: {', '.join(catalogue.columns)}"
            )
    return names


def check_axes(
    axes: Sequence[Sequence[str]] | None, features: list[str], catalogue: Catalogue
) -> list[tuple[str, str]]:
    """The session's ``axes`` for the pane's density maps: pairs (x, y) of numeric columns
    or expressions; default the first two features; ``[]`` for none."""
    if axes is None:
        return [(features[0], features[1])] if len(features) >= 2 else []
    pairs = []
    for pair in axes:
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ArmillaryError(
                "axes takes pairs (x, y) of columns or expressions, e.g. "
                f"[('g - r', 'r - i')]; got {pair!r}"
            )
        for name in pair:
            value = catalogue.row(0, [name])[name] if len(catalogue) else 0.0  # checks the name
            if value is not None and not isinstance(value, numbers.Real):
                raise ArmillaryError(
                    f"axes: {name!r} is not numeric in {catalogue.source.name} "
                    f"(its first value is {value!r}); pick a numeric column or expression"
                )
        pairs.append((str(pair[0]), str(pair[1])))
    return pairs


def check_features(features: Sequence[str]) -> list[str]:
    names = list(features)
    if not names:
        raise ArmillaryError(
            "a session needs features: pass features=[...] with columns or "
            "expressions such as 'g - r'"
        )
    return names


def check_label_column(
    catalogue: Catalogue,
    classes: list[str],
    label_column: str | None,
    label_map: Mapping[Any, str] | None,
) -> tuple[str | None, dict[Any, str]]:
    mapping = dict(label_map or {})
    for code, name in mapping.items():
        if name not in classes:
            raise UnknownClassError(
                f"label_map maps {code!r} to {name!r}, which is not one of the classes {classes}"
            )
    if label_column is None:
        if mapping:
            raise ArmillaryError("label_map was given without label_column: pass both")
        return None, {}
    check_columns(catalogue, [label_column], "label_column")
    return label_column, mapping


def feature_report(
    catalogue: Catalogue, features: list[str], X: np.ndarray, missing: str
) -> dict[str, Any]:
    """Missing feature values per feature, and what is done about them."""
    bad = ~np.isfinite(X)
    per_feature = {f: int(n) for f, n in zip(features, bad.sum(axis=0), strict=True)}
    for name, n in per_feature.items():
        if n == len(X):
            raise ArmillaryError(
                f"feature {name!r} has no finite value in {catalogue.source.name}; "
                "drop it from features"
            )
    rows = int(bad.any(axis=1).sum())
    action = "imputed (median of labelled rows)" if missing == "impute" else "excluded"
    return {
        "rows": len(X),
        "rows_with_missing": rows,
        "missing": action,
        "per_feature": per_feature,
    }


def default_colours(n: int) -> list[str]:
    """Distinct colours for class buttons (AstronomicAL's example used the first three)."""
    palette = [
        "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
        "#e377c2", "#17becf", "#bcbd22", "#1f77b4", "#7f7f7f",
    ]  # fmt: skip
    return [palette[i % len(palette)] for i in range(n)]
