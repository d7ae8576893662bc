"""The FITS table reader: raw big-endian rows decoded chunk by chunk, as astropy would.

Binary tables are read straight from the file, a block of rows at a time (``readinto`` at
the table's data offset, so no page of the file stays mapped into the process), and each
column is decoded the way astropy's ``Table.read`` decodes it:

- big-endian numbers become native-endian;
- ``TSCAL``/``TZERO`` are applied (the unsigned-integer offsets give unsigned integers,
  other scalings give float64, as in astropy);
- integer values equal to ``TNULL`` are masked (NaN where the column is scaled to floats);
- ``L`` columns become booleans, ``A`` columns strings (trailing blanks dropped);
- vector columns (``3E``, or ``TDIM``) are flattened into ``name_0, name_1, …`` (see
  :mod:`armillary.formats`); variable-length (``P``/``Q``), bit (``X``) and complex
  columns are left out with a warning.

Compressed files (``.fits.gz``) are decompressed by astropy into memory first; ASCII
tables are read whole through astropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from armillary.errors import CatalogueError
from armillary.formats import (
    MAX_ELEMENTS,
    STR,
    Column,
    Strings,
    flat_names,
    table_reader,
    warn_skipped,
)

__all__ = ["FitsReader", "open_fits"]


@dataclass
class _Decode:
    """How to turn one raw field (or one element of it) into physical values."""

    field: str
    element: int | None
    kind: object
    null: int | None
    scale: float
    zero: float
    boolean: bool


def _hdu_kind(hdu):
    from astropy.io import fits

    if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)):
        return "table"
    return "image" if getattr(hdu, "is_image", False) else type(hdu).__name__


def _pick_hdu(hdul, hdu, path):
    """Index of the HDU to read: ``hdu`` (index, EXTNAME, or (name, ver)) or the first table."""
    tables = [k for k, h in enumerate(hdul) if _hdu_kind(h) == "table"]
    if hdu is None:
        if not tables:
            raise CatalogueError(
                f"{path} holds no table HDU: a catalogue must be a FITS binary or ASCII table"
            )
        return tables[0]
    try:
        index = hdul.index_of(hdu)
        hdul[index]  # raises IndexError for an index past the end
    except (KeyError, IndexError) as exc:
        listing = ", ".join(f"{k} ({h.name})" for k, h in enumerate(hdul))
        raise CatalogueError(f"{path} has no HDU {hdu!r}; its HDUs are {listing}") from exc
    if index not in tables:
        listing = ", ".join(f"{k} ({hdul[k].name})" for k in tables) or "none"
        raise CatalogueError(
            f"HDU {hdu!r} of {path} is an {_hdu_kind(hdul[index])}, not a "
            f"table; its table HDUs are: {listing}"
        )
    return index


def open_fits(path, hdu=None):
    """A reader of the chosen (by default the first) table HDU of a FITS file."""
    from astropy.io import fits

    try:  # astropy also warns of what it finds odd ("File may have been truncated")
        hdul = fits.open(
            path, memmap=not path.name.lower().endswith(".gz"), mode="readonly", lazy_load_hdus=True
        )
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError, ...
        raise CatalogueError(
            f"cannot read {path} as a FITS table ({exc}); is it a complete FITS file?"
        ) from exc
    try:
        index = _pick_hdu(hdul, hdu, path)
        if isinstance(hdul[index], fits.TableHDU):  # ASCII: small and rare, read whole
            from astropy.table import Table

            reader = table_reader(Table.read(hdul[index]), "fits", str(path))
            reader.meta = {"hdu": index}
            hdul.close()
            return reader
        return FitsReader(path, hdul, index)
    except CatalogueError:
        hdul.close()
        raise
    except Exception as exc:
        hdul.close()
        raise CatalogueError(
            f"cannot read {path} as a FITS table ({exc}); is it a complete FITS file?"
        ) from exc


class FitsReader:
    """One binary table HDU of a FITS file, read in row chunks.

    Parameters
    ----------
    path : pathlib.Path
    hdul : astropy.io.fits.HDUList
        The opened file (closed by :meth:`close`).
    index : int
        Index of the table HDU.
    """

    format = "fits"
    recycles = True
    """:meth:`chunks` takes ``recycle=`` (arrays reused from chunk to chunk)."""

    def __init__(self, path, hdul, index):
        self.path = path
        self._hdul = hdul
        hdu = hdul[index]
        self.meta = {"hdu": index}
        self.nrows = int(hdu.header["NAXIS2"])
        data = hdu.data
        if data is None or self.nrows == 0 or not len(hdu.columns):
            self.nrows, self.columns, self._decode, self._raw = 0, {}, {}, None
            return
        self._raw = data.view(np.ndarray)
        self._dtype = self._raw.dtype
        self._file = None
        self._offset = hdu.fileinfo()["datLoc"]
        if not path.name.lower().endswith(".gz"):
            self._check_size(hdu)
            self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        self.columns, self._decode = self._scan(hdu)
        if self.nrows:
            self._rows(self.nrows - 1, self.nrows)  # fails now on a truncated file

    def _check_size(self, hdu):
        need = self._offset + self._dtype.itemsize * self.nrows
        size = self.path.stat().st_size
        if size < need:
            raise CatalogueError(
                f"cannot read {self.path} as a FITS table: the header of "
                f"HDU {self.meta['hdu']} announces {self.nrows:,} rows "
                f"ending at byte {need:,}, but the file has {size:,} bytes; "
                "is it a complete FITS file (truncated download)?"
            )

    def _scan(self, hdu):
        columns, decode, skipped = {}, {}, {}
        for k, col in enumerate(hdu.columns, start=1):
            raw = self._dtype[col.name]
            form = str(col.format)
            why = (
                "variable-length array"
                if "P" in form or "Q" in form
                else "bit array"
                if form.endswith("X")
                else None
            )
            kind = None if why else _physical_kind(raw.base, form, col.bscale, col.bzero)
            size = int(np.prod(raw.shape)) if raw.shape else 1
            why = why or (
                "complex or unsupported type"
                if kind is None
                else f"vector of {size} elements"
                if size > MAX_ELEMENTS
                else None
            )
            if why:
                skipped[col.name] = why
                continue
            null = col.null if isinstance(col.null, (int, np.integer)) and kind != STR else None
            unit = str(col.unit) if col.unit else None
            description = hdu.header.comments[f"TTYPE{k}"] or None
            for e, name in enumerate(flat_names(col.name, raw.shape)):
                element = e if raw.shape else None
                masked = null is not None and kind.kind in "iub"
                columns[name] = Column(kind, masked, unit, description, col.name, element)
                decode[name] = _Decode(
                    col.name,
                    element,
                    kind,
                    null,
                    float(col.bscale or 1.0),
                    float(col.bzero or 0.0),
                    form.endswith("L"),
                )
        warn_skipped(self.path, skipped)
        return columns, decode

    def _rows(self, start, stop, out=None):
        """Raw (big-endian) records of rows [start, stop), read into ``out`` if given."""
        if self._file is None:
            return self._raw[start:stop]
        out = np.empty(stop - start, self._dtype) if out is None else out[: stop - start]
        view = memoryview(out).cast("B")
        self._file.seek(self._offset + start * self._dtype.itemsize)
        got = 0
        while got < view.nbytes:
            n = self._file.readinto(view[got:])
            if not n:
                raise CatalogueError(
                    f"{self.path} ends inside the data of its table; is it a complete FITS file?"
                )
            got += n
        return out

    def chunks(self, names=None, chunk_rows=262_144, recycle=0):
        """Yield ``{name: values}`` for consecutive row chunks.

        The raw records are read into one buffer kept from chunk to chunk: a cache-sized
        block of records at a time where every column asked for is plain (numbers, not
        scaled, without nulls), else a whole chunk. Plain columns whose values lie side
        by side in a record, with one type (the columns of a table of ``E`` columns, the
        elements of a vector), form a run: each block of a run is byte-swapped and
        transposed into a ``(columns, rows)`` array in one call, while the block is in
        the cache, and each column is a contiguous row of that array.

        Parameters
        ----------
        names : list of str, optional
            The columns to decode (default: all).
        chunk_rows : int
        recycle : int
            With ``k > 0``, the plain columns' arrays of chunk ``i`` are written into the
            buffers of chunk ``i - k``: for a consumer that is done with a chunk by the
            time ``k`` more have been made (no fresh pages for each chunk). With 0 (the
            default) every chunk has arrays of its own.
        """
        if not self.nrows:
            return
        names = list(self.columns if names is None else names)
        runs = _runs(self._dtype, self._decode, [n for n in names if _plain(self._decode[n])])
        where = {name: (k, j) for k, run in enumerate(runs) for j, name in enumerate(run.names)}
        others = [n for n in names if n not in where]
        width = min(chunk_rows, self.nrows)
        block = max(1, _BLOCK_BYTES // self._dtype.itemsize)
        whole = bool(others) or self._file is None  # else: read a block at a time
        buffer = None if self._file is None else np.empty(width if whole else block, self._dtype)
        ring = []
        for number, start in enumerate(range(0, self.nrows, chunk_rows)):
            n = min(chunk_rows, self.nrows - start)
            if recycle and len(ring) == recycle:
                outs = ring[number % recycle]
            else:
                outs = [np.empty((len(r.names), width), r.kind) for r in runs]
                if recycle:
                    ring.append(outs)
            rows = self._rows(start, start + n, buffer) if whole else None
            for first in range(0, n if runs else 0, block):
                last = min(first + block, n)
                if whole:
                    records = _bytes(rows[first:last])
                else:  # read into a cache-sized buffer, decoded while still in the cache
                    records = _bytes(self._rows(start + first, start + last, buffer))
                for run, out in zip(runs, outs, strict=True):
                    np.copyto(out[:, first:last], run.source(records).T)
            chunk = {name: outs[k][j, :n] for name, (k, j) in where.items()}
            chunk.update((name, _decode(rows, self._decode[name])) for name in others)
            yield {name: chunk[name] for name in names}

    def close(self):
        """Close the file."""
        if getattr(self, "_file", None) is not None:
            self._file.close()
        self._hdul.close()


_UNSIGNED = {
    1: (-128, np.int8),
    2: (2**15, np.uint16),
    4: (2**31, np.uint32),
    8: (2**63, np.uint64),
}


def _physical_kind(raw, form, scale, zero):
    """The native dtype of a field's physical values, as astropy picks it; None if
    unsupported. ``raw`` is the stored (big-endian) dtype of one element."""
    if raw.kind == "S":
        return STR
    if form.endswith("L"):
        return np.dtype(bool)
    if raw.kind not in "iuf":
        return None
    scale, zero = float(scale or 1.0), float(zero or 0.0)
    if raw.kind in "iu" and scale == 1.0 and zero == _UNSIGNED[raw.itemsize][0]:
        return np.dtype(_UNSIGNED[raw.itemsize][1])
    if scale != 1.0 or zero != 0.0:
        return np.dtype(np.float64)
    return raw.newbyteorder("=")


_BLOCK_BYTES = 1 << 19  # raw records decoded at a time: well inside a core's L2 cache


@dataclass
class _Run:
    """Plain columns whose stored values lie side by side, with one type, in a record."""

    offset: int  # of the first value in the record, in bytes
    raw: np.dtype  # the stored (big-endian) type of each value
    names: list
    kind: np.dtype  # their native type

    def source(self, records):
        """The run's stored values in ``records`` (a rows x record-bytes uint8 array),
        as a (rows, columns) strided view."""
        stop = self.offset + len(self.names) * self.raw.itemsize
        return records[:, self.offset : stop].view(self.raw)


def _runs(dtype, decode, names):
    """The plain columns ``names`` of records of ``dtype``, grouped into :class:`_Run`."""
    located = []
    for name in dict.fromkeys(names):
        how = decode[name]
        field, offset = dtype.fields[how.field][:2]
        raw = field.base
        located.append((offset + (how.element or 0) * raw.itemsize, raw, name, how.kind))
    runs = []
    for offset, raw, name, kind in sorted(located, key=lambda item: item[0]):
        last = runs[-1] if runs else None
        if last and last.raw == raw and offset == last.offset + len(last.names) * raw.itemsize:
            last.names.append(name)
        else:
            runs.append(_Run(offset, raw, [name], kind))
    return runs


def _bytes(records):
    """Records as a (rows, record bytes) uint8 array, a view where they are contiguous."""
    records = np.ascontiguousarray(records)
    return records.view(np.uint8).reshape(len(records), records.dtype.itemsize)


def _plain(how):
    """Whether a field's values are its raw numbers, only byte-swapped."""
    return (
        isinstance(how.kind, np.dtype)
        and how.kind.kind in "iuf"
        and not how.boolean
        and how.null is None
        and how.scale == 1.0
        and how.zero == 0.0
    )


def _field(rows, how):
    """The raw values of one field (element) of raw records ``rows``: a strided view."""
    raw = rows[how.field]
    if how.element is not None:
        raw = raw.reshape(raw.shape[0], -1)[:, how.element]
    return raw


def _decode(rows, how):
    """Physical values of one field (element) of raw records ``rows``."""
    raw = _field(rows, how)
    if how.kind == STR:
        return Strings.from_fixed(raw)
    if how.boolean:
        return raw.view(np.uint8) == ord("T")
    mask = None if how.null is None else raw == how.null
    scaled = how.scale != 1.0 or how.zero != 0.0
    values = _scaled(raw, how) if scaled else raw.astype(how.kind)
    if mask is None or not mask.any():
        return values
    if how.kind.kind == "f":
        values[mask] = np.nan
        return values
    return np.ma.MaskedArray(values, mask=mask)


def _scaled(raw, how):
    """``TZERO + TSCAL * raw`` in the dtype astropy picks (unsigned offsets stay exact)."""
    if how.kind.kind in "iu":  # astropy's unsigned/signed offset convention
        if how.kind.itemsize < 8:
            return (raw.astype(np.int64) + int(how.zero)).astype(how.kind)
        native = raw.astype(raw.dtype.newbyteorder("="))
        return native.view(how.kind) + how.kind.type(int(how.zero) % 2**64)
    return (raw.astype(np.float64) * how.scale + how.zero).astype(how.kind, copy=False)
