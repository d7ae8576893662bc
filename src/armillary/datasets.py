"""Synthetic photometric catalogues for examples, tests and benchmarks.

:func:`make_catalogue` writes a plausible star / galaxy / quasar catalogue as a FITS binary
table (big-endian, as FITS always is), streamed to disk in chunks so that ten million rows
need little memory.

Columns
-------
``ID``
    Unique survey-style names: ``"SDSS J123456.78+012345.6_0000042"``,
    ``"WISEA J…"`` or ``"2MASS J12345678+0123456_0000042"``. The coordinates come from the
    row's RA/DEC; the zero-padded suffix is the row number, which makes every name unique.
``RA``, ``DEC``
    Degrees (ICRS), uniform on the sphere for -30 < DEC < 75.
``u g r i z y``
    AB magnitudes (SDSS ugriz, Pan-STARRS y).
``j h k w1 w2``
    Vega magnitudes, as UKIDSS/2MASS and WISE publish them, so that quasars show the usual
    WISE cut ``w1 - w2 > ~0.6``.
``<band>_err``
    1-sigma magnitude errors; they grow with magnitude towards each band's 5-sigma depth
    (sky-limited: ``0.217 * 10**(0.4 * (mag - depth))`` above a calibration floor).

    The optical bands ``u g r i z y`` form the parent catalogue and are measured for every
    row (forced photometry, as SDSS and PS1 stacks report it), errors capped at 1 mag. The
    near- and mid-infrared bands ``j h k w1 w2`` come from separate surveys (UKIDSS LAS,
    WISE) matched to it: a source measured below 3 sigma there (fainter than its depth
    + 0.55 mag) is not in that survey's catalogue, so its magnitude and error are NaN.
    Rows detected at >= 5 sigma in all 11 bands (every ``<band>_err`` < 0.2177) are what an
    inner-join cross-match such as AstronomicAL's SDSS x UKIDSS x WISE example holds.
``r_psf_model``
    r-band PSF magnitude minus model magnitude, SDSS's star/galaxy separator: about 0 for
    point sources (stars, quasars), positive for resolved galaxies (about 0.1-2 mag, less
    for small, distant ones; SDSS calls a source extended above 0.145). Its scatter grows
    with ``r_err``, so faint galaxies and point sources merge, as they do in real surveys.
    A few per cent of stars are blends, and low-redshift quasars show their host.
``redshift``
    A photometric-redshift-like estimate: the true redshift plus scatter and outliers;
    stars get small template-fit values near zero.
``Lx``
    log10 of the X-ray luminosity in erg/s (0.5-2 keV), present for ~10 % of rows (mostly
    quasars), NaN elsewhere.
``labels``
    Known class for a few rows (0 Star, 1 Galaxy, 2 QSO), -1 (unknown) for the rest.
``true_label``
    The generator's ground truth for every row, for simulated-labeller runs and tests. A real
    catalogue has no such column.
``thumbnail``
    For the first ``thumbnails`` rows, the path of a 64x64 RGB PNG (i, r, g as R, G, B),
    *relative to the folder that holds the FITS file*; an empty string for the other rows.
    The images lie in ``<stem>_thumbnails/`` beside the FITS file.

The generator's parameters are recorded in the table header (``ARMGEN``, ``ARMVER``,
``ARMN``, ``ARMSEED``, ``ARMTHUMB``, ``ARMLABF``); :func:`generator_parameters` reads them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = [
    "BANDS",
    "CLASS_NAMES",
    "EXAMPLE_FEATURES",
    "GENERATOR_VERSION",
    "generator_parameters",
    "make_catalogue",
]

CLASS_NAMES = ("Star", "Galaxy", "QSO")
"""Class names, indexed by label."""
BANDS = ("u", "g", "r", "i", "z", "y", "j", "h", "k", "w1", "w2")
"""Magnitude columns, bluest first."""
EXAMPLE_FEATURES = (
    "u - g", "g - r", "r - i", "i - z", "z - y", "y - j", "j - h", "h - k", "k - w1", "w1 - w2",
    "r_psf_model",
)  # fmt: skip
"""The features the examples and benchmarks train on: the ten adjacent colours, bluest
first, and the morphology column (what an astronomer would pick for star / galaxy /
quasar separation)."""
GENERATOR_VERSION = 3
"""Bumped whenever the same seed would give different rows.

2: infrared non-detections (below 3 sigma in j h k w1 w2) are NaN, not magnitudes with
errors of up to 1 mag.
3: a morphology column, ``r_psf_model`` (PSF minus model magnitude); every other column
is unchanged."""

_CLASS_FRACTIONS = (0.40, 0.45, 0.15)
_BLOCK = 1024  # rows per random stream: output does not depend on chunk_rows
_MAX_ERR = 1.0
# Bands of the matched infrared surveys: NaN below their 3-sigma catalogue limit.
_MATCHED = np.array([False] * 6 + [True] * 5)
_DETECT_SIGMA = 3.0
# 5-sigma depths (SDSS, PS1 y, UKIDSS LAS in Vega, CatWISE in Vega) and error floors.
_DEPTH = np.array([22.3, 23.3, 23.1, 22.5, 21.3, 21.3, 19.6, 18.8, 18.2, 17.9, 16.6])
_FLOOR = np.array([0.02, 0.01, 0.01, 0.01, 0.015, 0.02, 0.02, 0.02, 0.02, 0.025, 0.03])
# A_band / E(B-V) (Schlafly & Finkbeiner 2011-like).
_EXTINCTION = np.array([4.24, 3.30, 2.29, 1.70, 1.26, 1.08, 0.72, 0.46, 0.31, 0.18, 0.16])

# Stellar locus: colours u-g g-r r-i i-z z-y z-J J-H H-K K-W1 W1-W2 at temperature nodes
# t = 0 (A0, hot) ... 1 (M5, cool).
_LOCUS_T = np.array([0.0, 0.15, 0.30, 0.45, 0.60, 0.72, 0.86, 1.0])
_LOCUS = np.array(
    [
        [1.00, -0.25, -0.15, -0.10, -0.05, 0.50, 0.00, 0.00, 0.02, 0.00],  # A0
        [0.95, 0.30, 0.10, 0.02, 0.00, 0.83, 0.22, 0.04, 0.02, -0.02],  # F5
        [1.20, 0.45, 0.15, 0.05, 0.02, 0.96, 0.30, 0.06, 0.04, -0.03],  # G2
        [1.60, 0.65, 0.22, 0.10, 0.05, 1.10, 0.45, 0.10, 0.05, -0.05],  # K0
        [2.30, 1.05, 0.40, 0.22, 0.10, 1.30, 0.60, 0.13, 0.08, -0.05],  # K5
        [2.50, 1.30, 0.70, 0.35, 0.15, 1.50, 0.65, 0.18, 0.10, 0.00],  # M0
        [2.50, 1.45, 1.30, 0.65, 0.30, 1.80, 0.60, 0.25, 0.15, 0.10],  # M3
        [2.40, 1.50, 1.90, 0.95, 0.45, 2.10, 0.58, 0.30, 0.20, 0.20],  # M5
    ]
)
_WHITE_DWARF = np.array([0.35, -0.20, -0.20, -0.20, -0.10, 0.30, 0.0, 0.0, 0.0, 0.0])
_STAR_SCATTER = np.array([0.08, 0.03, 0.03, 0.03, 0.03, 0.04, 0.04, 0.04, 0.04, 0.04])

_PREFIXES = (b"SDSS J", b"WISEA J", b"2MASS J")


# --------------------------------------------------------------------------- physics


def _power_law_mags(rng, m, lo, hi, slope):
    """Draw ``m`` magnitudes in [lo, hi] with counts rising as 10**(slope * mag)."""
    a = slope * np.log(10.0)
    u = rng.random(m)
    return lo + np.log1p(u * np.expm1(a * (hi - lo))) / a


def _star_colours(rng, m):
    """Colours of ``m`` stars: a 1-D locus in temperature plus a few white dwarfs."""
    cool = rng.random(m) < 0.35
    t = np.where(cool, 0.55 + 0.45 * rng.beta(2.0, 2.5, m), 0.75 * rng.beta(2.5, 4.0, m))
    colours = np.column_stack([np.interp(t, _LOCUS_T, _LOCUS[:, j]) for j in range(10)])
    white_dwarf = rng.random(m) < 0.015
    colours[white_dwarf] = _WHITE_DWARF
    colours += rng.normal(size=(m, 10)) * _STAR_SCATTER
    r = _power_law_mags(rng, m, 14.0, 21.8, 0.12)
    redshift = np.abs(rng.normal(0.0, 0.08, m))
    return r, colours, redshift


def _galaxy_colours(rng, m):
    """Colours of ``m`` galaxies: red and blue populations reddening with redshift."""
    r = _power_law_mags(rng, m, 15.5, 22.5, 0.45)
    z = 0.1 * 10 ** (0.18 * (r - 17.5)) * rng.gamma(4.0, 0.25, m)
    z = np.clip(z, 0.005, 1.5)
    red = rng.random(m) < 0.4
    s = np.where(red, np.clip(rng.normal(0.9, 0.06, m), 0, 1), 0.7 * rng.beta(2.0, 3.0, m))
    zc = np.minimum(z, 0.45)
    break_ri = np.clip((z - 0.3) / 0.4, 0.0, 1.0)
    colours = np.column_stack(
        [
            1.0 + 0.8 * s + 1.2 * s * np.minimum(z, 0.3),
            0.35 + 0.45 * s + (0.8 + 1.4 * s) * zc,
            0.2 + 0.2 * s + (0.3 + 0.4 * s) * z + 0.6 * s * break_ri,
            0.12 + 0.15 * s + 0.35 * z,
            0.05 + 0.1 * s + 0.15 * z,
            1.05 + 0.3 * s + 0.9 * z,
            0.62 + 0.12 * s + 0.35 * z,
            0.22 + 0.06 * s + 0.7 * z,
            0.15 - 0.05 * s + 0.4 * z,
            0.05 + 0.2 * (1 - s) + 0.3 * z,
        ]
    )
    colours += rng.normal(size=(m, 10)) * [0.15, 0.08, 0.06, 0.06, 0.06, 0.1, 0.08, 0.08, 0.1, 0.1]
    obscured_agn = rng.random(m) < 0.04
    colours[:, 9] += obscured_agn * rng.uniform(0.6, 1.0, m)
    photo_z = z + rng.normal(0.0, 0.04, m) * (1 + z)
    outlier = rng.random(m) < 0.05
    photo_z = np.where(outlier, rng.uniform(0.0, 1.5, m), photo_z)
    return r, colours, np.maximum(photo_z, 0.0), z


def _qso_colours(rng, m):
    """Colours of ``m`` quasars: UV excess, emission-line wiggles, red mid-IR."""
    r = _power_law_mags(rng, m, 16.5, 22.3, 0.55)
    z = np.clip(np.exp(rng.normal(np.log(1.4), 0.55, m)), 0.1, 4.5)
    tau = 2 * np.pi * z
    colours = np.column_stack(
        [
            0.2 + 0.08 * np.sin(tau / 0.9) + 2.0 * np.clip(z - 2.3, 0, None),
            0.15 + 0.08 * np.sin(tau / 0.7 + 1) + 1.2 * np.clip(z - 3.2, 0, None),
            0.12 + 0.08 * np.sin(tau / 0.8 + 2),
            0.05 + 0.08 * np.sin(tau / 0.6 + 0.5),
            0.05 + 0.0 * z,
            1.0 + 0.1 * np.sin(tau / 1.1),
            0.75 + 0.1 * np.sin(tau / 1.3 + 1),
            0.8 + 0.15 * np.sin(tau / 1.7 + 2),
            1.0 + 0.0 * z,
            1.1 - 0.15 * np.clip(z - 2.0, 0, None),
        ]
    )
    colours += rng.normal(size=(m, 10)) * [0.12, 0.1, 0.1, 0.1, 0.08, 0.12, 0.12, 0.15, 0.2, 0.18]
    host = rng.random(m) < 0.10  # host-dominated: mid-IR colours like a galaxy's
    colours[:, 9] -= host * rng.uniform(0.3, 0.8, m)
    dusty = rng.random(m) < 0.10  # intrinsically reddened
    colours[:, :5] += (dusty * rng.uniform(0.1, 0.4, m))[:, None] * -np.diff(_EXTINCTION[:6])
    photo_z = z + rng.normal(0.0, 0.1, m) * (1 + z)
    outlier = rng.random(m) < 0.15
    photo_z = np.where(outlier, rng.uniform(0.0, 4.0, m), photo_z)
    return r, colours, np.maximum(photo_z, 0.0), z


def _magnitudes(r, colours):
    """Magnitudes in :data:`BANDS` from ``r`` and the ten adjacent colours."""
    ug, gr, ri, iz, zy, zj, jh, hk, kw1, w12 = colours.T
    g = r + gr
    i = r - ri
    z = i - iz
    j = z - zj
    h = j - jh
    k = h - hk
    w1 = k - kw1
    return np.column_stack([g + ug, g, r, i, z, z - zy, j, h, k, w1, w1 - w12])


def _log_lx(rng, labels, redshift):
    """log10 X-ray luminosity (erg/s) for detected rows, NaN elsewhere."""
    m = labels.size
    detect_p = np.choose(labels, [0.02, 0.06, 0.42])
    values = np.choose(
        labels,
        [
            28.8 + rng.normal(0.0, 0.7, m),
            41.3 + 2.0 * np.log10(1 + redshift) + rng.normal(0.0, 0.7, m),
            43.2 + 1.5 * np.log10(1 + redshift) + rng.normal(0.0, 0.45, m),
        ],
    )
    return np.where(rng.random(m) < detect_p, values, np.nan)


def _psf_minus_model(rng, labels, true_z, r_err):
    """r PSF - model magnitude: 0 for point sources, growing with a galaxy's angular size.

    A galaxy's half-light radius (lognormal around 3.5 kpc) is seen at ``8 z / (0.3 + z)``
    kpc per arcsec (close to the true angular scale for z < 1.5); a profile of radius
    ``re`` under a 1.2 arcsec seeing loses ``1.25 log10(1 + (re / 0.6)**2)`` mag in a PSF fit.
    """
    m = labels.size
    re = rng.lognormal(np.log(3.5), 0.45, m) * (0.3 + true_z) / (8.0 * np.maximum(true_z, 1e-3))
    galaxy = 1.25 * np.log10(1.0 + (re / 0.6) ** 2)
    host = np.where(true_z < 0.7, 0.25 * (1.0 - true_z / 0.7) * rng.random(m), 0.0)
    blend = np.where(rng.random(m) < 0.03, rng.uniform(0.05, 0.3, m), 0.0)
    value = np.choose(labels, [blend, galaxy, host])
    return value + rng.normal(size=m) * np.hypot(0.015, 1.5 * r_err)


def _simulate_block(seed, block, labelled_fraction):
    """All per-row quantities of one block of :data:`_BLOCK` rows (its own random stream)."""
    rng = np.random.default_rng([seed, block])
    m = _BLOCK
    true = rng.choice(3, size=m, p=_CLASS_FRACTIONS)
    ra = rng.uniform(0.0, 360.0, m)
    sin_dec = rng.uniform(np.sin(np.radians(-30.0)), np.sin(np.radians(75.0)), m)
    dec = np.degrees(np.arcsin(sin_dec))
    mags = np.empty((m, len(BANDS)))
    photo_z = np.empty(m)
    true_z = np.zeros(m)
    for label, simulate in enumerate((_star_colours, _galaxy_colours, _qso_colours)):
        rows = np.flatnonzero(true == label)
        r, colours, pz, *z = simulate(rng, rows.size)
        mags[rows] = _magnitudes(r, colours)
        photo_z[rows] = pz
        if z:
            true_z[rows] = z[0]
    ebv = rng.exponential(0.03, m)
    mags += ebv[:, None] * _EXTINCTION
    err = np.hypot(_FLOOR, 0.217 * 10 ** (0.4 * (mags - _DEPTH)))
    err = np.minimum(err, _MAX_ERR)
    observed = mags + rng.normal(size=mags.shape) * err
    # Detection is decided on the measured flux, as a survey's catalogue threshold is.
    limit = _DEPTH + 2.5 * np.log10(5.0 / _DETECT_SIGMA)
    missing = _MATCHED & (observed > limit)
    observed[missing] = np.nan
    err[missing] = np.nan
    labels = np.where(rng.random(m) < labelled_fraction, true, -1)
    # Its own stream, so that adding the column changed no other value.
    morphology = _psf_minus_model(np.random.default_rng([seed, block, 3]), true, true_z, err[:, 2])
    return {
        "RA": ra,
        "DEC": dec,
        "mags": observed,
        "errs": err,
        "redshift": photo_z,
        "r_psf_model": morphology,
        "true_z": true_z,
        "Lx": _log_lx(rng, true, true_z),
        "labels": labels,
        "true_label": true,
        "prefix": rng.choice(3, size=m, p=[0.5, 0.3, 0.2]),
    }


# --------------------------------------------------------------------------- ids


def _digits(values, width):
    """ASCII digits of non-negative integers, zero-padded: uint8 array (m, width)."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (48 + (values[:, None] // powers) % 10).astype(np.uint8)


def _format_ids(ra, dec, rows, prefix, row_digits):
    """Survey-style names, built as bytes without a Python loop (fast for 10M rows)."""
    m = ra.size
    cs = np.round(ra / 15.0 * 360000.0).astype(np.int64) % 8640000  # 0.01 s of time
    ra_hms = (cs // 360000) * 1000000 + (cs // 6000 % 60) * 10000 + cs % 6000
    ds = np.minimum(np.round(np.abs(dec) * 36000.0).astype(np.int64), 90 * 36000)
    dec_dms = (ds // 36000) * 100000 + (ds // 600 % 60) * 1000 + ds % 600
    ra_d = _digits(ra_hms, 8)  # HHMMSSss
    dec_d = _digits(dec_dms, 7)  # DDMMSSs
    sign = np.where(dec < 0, ord("-"), ord("+")).astype(np.uint8)[:, None]
    dot = np.full((m, 1), ord("."), np.uint8)
    counter = np.hstack([np.full((m, 1), ord("_"), np.uint8), _digits(rows, row_digits)])
    dotted = np.hstack(
        [ra_d[:, :6], dot, ra_d[:, 6:], sign, dec_d[:, :6], dot, dec_d[:, 6:], counter]
    )
    plain = np.hstack([ra_d, sign, dec_d, counter])
    width = _id_width(row_digits)
    out = np.zeros((m, width), np.uint8)
    for code, text in enumerate(_PREFIXES):
        sel = prefix == code
        body = plain if text.startswith(b"2MASS") else dotted
        head = np.frombuffer(text, np.uint8)
        out[sel, : head.size] = head
        out[sel, head.size : head.size + body.shape[1]] = body[sel]
    return out.view(f"S{width}").ravel()


def _id_width(row_digits):
    return len(b"WISEA J") + 18 + 1 + row_digits


# --------------------------------------------------------------------------- thumbnails


def _moffat(x, y, fwhm, beta=3.0):
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    psf = (1.0 + (x * x + y * y) / alpha**2) ** -beta
    return psf / psf.sum()


def _galaxy_profile(rng, x, y, redshift, red):
    """Unit-flux Sersic-like profile (n=4 red, n=1 blue) with random shape."""
    re = np.clip(1.1 / max(redshift, 0.01) * rng.lognormal(0.0, 0.3), 1.5, 24.0)
    q = rng.uniform(0.6, 1.0) if red else rng.uniform(0.25, 1.0)
    pa = rng.uniform(0.0, np.pi)
    xr = x * np.cos(pa) + y * np.sin(pa)
    yr = (-x * np.sin(pa) + y * np.cos(pa)) / q
    radius = np.hypot(xr, yr) / re
    profile = np.exp(-7.67 * radius**0.25) if red else np.exp(-1.68 * radius)
    return profile / profile.sum()


def _render_thumbnail(rng, label, gri, redshift, red, size=64):
    """A 64x64 RGB image (uint8) of one source with a few neighbours and sky noise.

    The pixel scale is ~0.2 arcsec; the asinh stretch is set per image from the source's
    peak, as cutout services do, so faint sources are visible but noisier.
    """
    y, x = np.mgrid[0:size, 0:size] - (size - 1) / 2.0
    fwhm = rng.uniform(3.5, 5.5)
    psf = _moffat(x, y, fwhm)
    dx, dy = rng.normal(0.0, 0.7, 2)
    if label == 1:
        source = _galaxy_profile(rng, x - dx, y - dy, redshift, red)
        otf = np.fft.rfft2(np.fft.ifftshift(psf))
        source = np.fft.irfft2(np.fft.rfft2(source) * otf, s=source.shape)
    else:
        source = _moffat(x - dx, y - dy, fwhm)
        if label == 2 and redshift < 0.6:
            host = _galaxy_profile(rng, x - dx, y - dy, redshift, False)
            source = 0.7 * source + 0.3 * host
    flux = 10 ** (-0.4 * (np.asarray(gri)[::-1] - 22.5))  # i, r, g -> R, G, B
    image = source[..., None] * flux
    peak = image.max()
    for _ in range(rng.poisson(1.2)):
        nx, ny = rng.uniform(-size / 2, size / 2, 2)
        mags = gri[1] + rng.exponential(1.5) - 0.7 + rng.normal(0.0, 0.3, 3)
        image += _moffat(x - nx, y - ny, fwhm)[..., None] * 10 ** (-0.4 * (mags - 22.5))
    noise = 0.004
    image += rng.normal(0.0, noise, image.shape)
    soft = 3.0 * noise
    stretched = np.arcsinh(image / soft) / np.arcsinh(max(peak, 10 * soft) / soft)
    return (np.clip(0.9 * stretched, 0.0, 1.0) * 255).astype(np.uint8)


def _write_thumbnails(folder, seed, start, sim, rows, digits):
    """Render the thumbnails of ``rows`` (absolute row numbers) of a simulated block."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        k = row - start
        rng = np.random.default_rng([seed, row, 7])
        gri = sim["mags"][k, 1:4]
        red = sim["mags"][k, 1] - sim["mags"][k, 2] > 0.62 + 1.6 * min(sim["true_z"][k], 0.45)
        pixels = _render_thumbnail(rng, int(sim["true_label"][k]), gri, sim["true_z"][k], red)
        Image.fromarray(pixels, "RGB").save(folder / f"{row:0{digits}d}.png", optimize=False)


# --------------------------------------------------------------------------- FITS


def _columns(id_width, thumb_width):
    """FITS columns (name, TFORM, unit, comment) in file order."""
    cols = [
        ("ID", f"{id_width}A", None, "survey-style unique name"),
        ("RA", "D", "deg", "right ascension (ICRS)"),
        ("DEC", "D", "deg", "declination (ICRS)"),
    ]
    for band in BANDS:
        system = "Vega" if band in {"j", "h", "k", "w1", "w2"} else "AB"
        cols.append((band, "E", "mag", f"{band} magnitude ({system})"))
    cols += [(f"{band}_err", "E", "mag", f"{band} 1-sigma error") for band in BANDS]
    cols += [
        ("r_psf_model", "E", "mag", "r PSF - model magnitude (0: point source)"),
        ("redshift", "E", None, "photometric-redshift-like estimate"),
        ("Lx", "E", None, "log10 Lx [erg/s], NaN: undetected"),
        ("labels", "I", None, "0 Star, 1 Galaxy, 2 QSO, -1 unknown"),
        ("true_label", "I", None, "ground truth: 0 Star, 1 Galaxy, 2 QSO"),
        ("thumbnail", f"{thumb_width}A", None, "PNG path, relative to this folder"),
    ]
    return cols


def _headers(n, params, id_width, thumb_width):
    """Primary and table headers as bytes, and the big-endian record dtype of a row."""
    from astropy.io import fits

    spec = _columns(id_width, thumb_width)
    coldefs = fits.ColDefs(
        [fits.Column(name=name, format=form, unit=unit) for name, form, unit, _ in spec]
    )
    table = fits.BinTableHDU.from_columns(coldefs, nrows=0)
    header = table.header
    header["NAXIS2"] = n
    header["EXTNAME"] = "CATALOGUE"
    for k, (_, _, _, comment) in enumerate(spec, start=1):
        header.comments[f"TTYPE{k}"] = comment
    for key, (value, comment) in params.items():
        header[key] = (value, comment)
    header["COMMENT"] = "Synthetic catalogue written by armillary.datasets.make_catalogue."
    header["COMMENT"] = "ugrizy are AB magnitudes; j h k w1 w2 are Vega magnitudes."
    header["COMMENT"] = "Thumbnail paths are relative to the folder holding this file."
    primary = fits.PrimaryHDU().header
    kinds = {"A": "S", "D": ">f8", "E": ">f4", "I": ">i2"}
    dtype = np.dtype(
        [
            (name, kinds[form[-1]] + (form[:-1] if form[-1] == "A" else ""))
            for name, form, _, _ in spec
        ]
    )
    if dtype.itemsize != header["NAXIS1"]:
        raise RuntimeError(f"row size {dtype.itemsize} != NAXIS1 {header['NAXIS1']}")
    return primary.tostring().encode("ascii"), header.tostring().encode("ascii"), dtype


def _pack(sim, rows, dtype, row_digits, thumbs):
    """The big-endian FITS records of one simulated block, rows ``rows`` only."""
    keep = slice(0, rows.size)
    rec = np.zeros(rows.size, dtype=dtype)
    rec["ID"] = _format_ids(
        sim["RA"][keep], sim["DEC"][keep], rows, sim["prefix"][keep], row_digits
    )
    for name in ("RA", "DEC", "r_psf_model", "redshift", "Lx", "labels", "true_label"):
        rec[name] = sim[name][keep]
    for b, band in enumerate(BANDS):
        rec[band] = sim["mags"][keep, b]
        rec[f"{band}_err"] = sim["errs"][keep, b]
    rec["thumbnail"] = thumbs
    return rec


def generator_parameters(path):
    """The parameters a catalogue was generated with, or ``None`` if it is not one of ours.

    Parameters
    ----------
    path : str or os.PathLike
        A FITS file, possibly missing.

    Returns
    -------
    dict or None
        ``{"version", "n", "seed", "thumbnails", "labelled_fraction"}``.
    """
    from astropy.io import fits

    try:
        header = fits.getheader(path, 1)
        if header.get("ARMGEN") != "armillary.datasets":
            return None
        return {
            "version": int(header["ARMVER"]),
            "n": int(header["ARMN"]),
            "seed": int(header["ARMSEED"]),
            "thumbnails": int(header["ARMTHUMB"]),
            "labelled_fraction": float(header["ARMLABF"]),
        }
    except (OSError, KeyError, IndexError, ValueError):
        return None


def _check_args(n, seed, thumbnails, chunk_rows, labelled_fraction):
    for name, value, low in (
        ("n", n, 1),
        ("seed", seed, 0),
        ("thumbnails", thumbnails, 0),
        ("chunk_rows", chunk_rows, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not 0.0 <= labelled_fraction <= 1.0:
        raise ValueError(f"labelled_fraction must be in [0, 1], got {labelled_fraction!r}")


def make_catalogue(
    n=100_000,
    seed=0,
    path="catalogue.fits",
    thumbnails=2000,
    chunk_rows=500_000,
    labelled_fraction=0.02,
):
    """Write a synthetic star / galaxy / quasar catalogue as a FITS binary table.

    Rows are simulated in fixed blocks of 1024, each from its own random stream seeded by
    ``(seed, block)``, so the file depends only on ``n``, ``seed``, ``thumbnails`` and
    ``labelled_fraction``: not on ``chunk_rows``, and the first rows of a large catalogue
    equal those of a small one. Records are written as they are made, ``chunk_rows`` at a
    time, so memory stays bounded (about 200 bytes per buffered row). The file is written
    under a temporary name and renamed, so a reader never sees half a file.

    Parameters
    ----------
    n : int
        Number of rows.
    seed : int
        Seed of the random streams.
    path : str or os.PathLike
        The FITS file to write; its folder is created if needed.
    thumbnails : int
        How many rows (the first ones) get a PNG thumbnail in ``<stem>_thumbnails/``.
    chunk_rows : int
        Rows buffered before each write.
    labelled_fraction : float
        Fraction of rows whose ``labels`` holds the true class (the rest hold -1).

    Returns
    -------
    pathlib.Path
        The absolute path of the written file.

    See Also
    --------
    armillary.datasets : the module docstring describes every column.
    """
    _check_args(n, seed, thumbnails, chunk_rows, labelled_fraction)
    path = Path(path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    thumbnails = min(thumbnails, n)
    row_digits = max(7, len(str(n - 1)))
    thumb_digits = max(6, len(str(max(thumbnails - 1, 0))))
    thumb_dir = path.parent / f"{path.stem}_thumbnails"
    thumb_width = len(thumb_dir.name) + 1 + thumb_digits + 4
    params = {
        "ARMGEN": ("armillary.datasets", "generator"),
        "ARMVER": (GENERATOR_VERSION, "generator version"),
        "ARMN": (n, "rows"),
        "ARMSEED": (seed, "random seed"),
        "ARMTHUMB": (thumbnails, "rows with a thumbnail"),
        "ARMLABF": (labelled_fraction, "fraction of rows with a known label"),
    }
    primary, table, dtype = _headers(n, params, _id_width(row_digits), thumb_width)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as out:
            out.write(primary)
            out.write(table)
            _write_rows(
                out,
                n,
                seed,
                labelled_fraction,
                dtype,
                row_digits,
                chunk_rows,
                (thumb_dir, thumbnails, thumb_digits),
            )
            out.write(b"\0" * (-out.tell() % 2880))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_rows(out, n, seed, labelled_fraction, dtype, row_digits, chunk_rows, thumb):
    """Simulate blocks, render their thumbnails, and write records chunk by chunk."""
    thumb_dir, thumbnails, thumb_digits = thumb
    buffer = np.zeros(min(chunk_rows, n), dtype=dtype)
    filled = 0
    for block in range((n + _BLOCK - 1) // _BLOCK):
        start = block * _BLOCK
        rows = np.arange(start, min(start + _BLOCK, n), dtype=np.int64)
        sim = _simulate_block(seed, block, labelled_fraction)
        with_thumb = rows[rows < thumbnails]
        names = np.zeros(rows.size, dtype=f"S{dtype['thumbnail'].itemsize}")
        if with_thumb.size:
            _write_thumbnails(thumb_dir, seed, start, sim, with_thumb, thumb_digits)
            names[: with_thumb.size] = [
                f"{thumb_dir.name}/{r:0{thumb_digits}d}.png".encode() for r in with_thumb
            ]
        rec = _pack(sim, rows, dtype, row_digits, names)
        while rec.size:
            take = min(rec.size, buffer.size - filled)
            buffer[filled : filled + take] = rec[:take]
            filled += take
            rec = rec[take:]
            if filled == buffer.size:
                out.write(buffer.tobytes())
                filled = 0
    out.write(buffer[:filled].tobytes())
