"""Survey cutouts: pictures of each source from a survey's image service, by URL template.

A session given ``cutouts={"Legacy Survey": armillary.cutouts.legacy_survey()}`` shows,
with every candidate, the picture at that template's URL filled in with the candidate's
own values. The *browser* showing the pane fetches the image, as AstronomicAL's pane did;
the kernel never downloads anything, so a kernel on a machine without internet access is
fine as long as the astronomer's browser has it.

A template is an ``http(s)`` URL with ``{column}`` placeholders naming catalogue columns,
optionally with a format spec: ``"https://example.org/cut.jpg?ra={RA:.6f}&dec={DEC:.6f}"``.
Values are URL-encoded. A source whose value for a placeholder is missing (NaN, empty)
gets no URL, and the pane says so.

>>> legacy_survey("RA", "DEC")
'https://www.legacysurvey.org/viewer/cutout.jpg?ra={RA}&dec={DEC}&layer=ls-dr10&pixscale=0.262&size=160'
"""

from __future__ import annotations

import string
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from armillary._plain import plain_value
from armillary.errors import ArmillaryError, ColumnNotFoundError

__all__ = ["CutoutTemplate", "check_cutouts", "legacy_survey", "sdss"]


def legacy_survey(
    ra: str = "RA", dec: str = "DEC", *, layer: str = "ls-dr10", size: int = 160,
    pixscale: float = 0.262,
) -> str:  # fmt: skip
    """A template for the DESI Legacy Imaging Surveys' colour cutouts (``ls-dr10``: grz,
    0.262 arcsec per pixel, its native scale). ``ra`` and ``dec`` name the catalogue's
    columns of right ascension and declination in degrees (ICRS)."""
    query = f"layer={_quoted(layer)}&pixscale={float(pixscale):g}&size={int(size)}"
    return f"https://www.legacysurvey.org/viewer/cutout.jpg?ra={{{ra}}}&dec={{{dec}}}&{query}"


def sdss(ra: str = "RA", dec: str = "DEC", *, size: int = 160, scale: float = 0.25) -> str:
    """A template for SDSS SkyServer's (DR17) colour cutouts (gri; ``scale`` in arcsec per
    pixel). ``ra`` and ``dec`` name the catalogue's coordinate columns, in degrees."""
    side = int(size)
    return (
        "https://skyserver.sdss.org/dr17/SkyServerWS/ImgCutout/getjpeg?"
        f"ra={{{ra}}}&dec={{{dec}}}&scale={float(scale):g}&width={side}&height={side}"
    )


def _quoted(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


@dataclass(frozen=True)
class CutoutTemplate:
    """One checked template: its name in the pane, its text, and the columns it reads."""

    name: str
    template: str
    columns: tuple[str, ...]

    def url(self, values: Mapping[str, Any]) -> str | None:
        """The URL for one source's ``values`` (column -> value); None when one is missing."""
        out = []
        for literal, field, spec, conversion in string.Formatter().parse(self.template):
            out.append(literal)
            if field is None:
                continue
            value = plain_value(values.get(field))
            if value is None:
                return None
            if conversion:
                value = str(value) if conversion == "s" else repr(value)
            try:
                text = format(value, spec) if spec else str(value)
            except (TypeError, ValueError):
                return None  # a value this spec cannot format: no picture, not a crash
            out.append(_quoted(text))
        return "".join(out)


def check_cutouts(
    cutouts: Mapping[str, str] | None, columns: list[str], where: str
) -> list[CutoutTemplate]:
    """Check a session's ``cutouts`` against the catalogue's ``columns``.

    ``where`` names the catalogue in errors. Raises :class:`~armillary.errors.ArmillaryError`
    for a template that is not an http(s) URL, has an empty or positional placeholder or
    unbalanced braces, and :class:`~armillary.errors.ColumnNotFoundError` for a
    placeholder that is not a column.
    """
    if cutouts is None:
        return []
    if not isinstance(cutouts, Mapping):
        msg = (
            "cutouts must map a name to a URL template, e.g. "
            "{'Legacy Survey': armillary.cutouts.legacy_survey('RA', 'DEC')}, "
            f"not {type(cutouts).__name__}"
        )
        raise ArmillaryError(msg)
    known = set(columns)
    checked = []
    for name, template in cutouts.items():
        if not isinstance(name, str) or not name.strip():
            raise ArmillaryError(f"cutouts: a name must be a non-empty string, not {name!r}")
        if not isinstance(template, str) or not template.lower().startswith(
            ("http://", "https://")
        ):
            msg = f"cutouts[{name!r}] must be an http(s) URL template, not {template!r}"
            raise ArmillaryError(msg)
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        except ValueError as exc:
            msg = (
                f"cutouts[{name!r}]: {exc} in {template!r}; placeholders are "
                "{column}, and a literal brace is written twice"
            )
            raise ArmillaryError(msg) from None
        for field in fields:
            if not field or field.isdigit():
                msg = (
                    f"cutouts[{name!r}]: placeholder {{{field}}} in {template!r} names no "
                    "column; write the column's name, e.g. {RA}"
                )
                raise ArmillaryError(msg)
            if field not in known:
                msg = (
                    f"cutouts[{name!r}]: placeholder {{{field}}} is not a column of {where}; "
                    f"available columns: {', '.join(columns)}"
                )
                raise ColumnNotFoundError(msg)
        checked.append(CutoutTemplate(name.strip(), template, tuple(dict.fromkeys(fields))))
    return checked
