"""Features of a cached catalogue, read in row chunks with bounded memory.

Stored numeric columns are read with plain file reads at their dataset's offset, not
through the memory map vaex holds: pages read that way stay in the OS's page cache but
never count towards the process's resident memory, so a full pass over a 100-million-row
catalogue needs a few chunks of memory, not the file's size. Expressions and derived
columns are evaluated by vaex on each chunk (a small in-memory DataFrame holding just the
columns they need); an expression over a column that cannot be read that way (strings,
categories) falls back to vaex's own evaluation of the memory-mapped cache.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CacheColumns", "feature_chunks", "prefetched"]


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


class CacheColumns:
    """Where each stored numeric column (and its mask) lies in a cache file."""

    def __init__(self, cache):
        import h5py

        self.cache = cache
        self.parts = {}
        with h5py.File(cache, "r") as h5:
            for name, col in h5["table/columns"].items():
                data = col.get("data") if "type" not in col.attrs else None
                if (
                    data is None
                    or data.ndim != 1
                    or data.dtype.kind not in "biuf"
                    or _text(data.attrs.get("dtype", "")) == "str"
                ):
                    continue
                mask = col.get("mask")
                parts = [(data.id.get_offset(), data.dtype)]
                parts.append(None if mask is None else (mask.id.get_offset(), mask.dtype))
                if parts[0][0] is not None and (mask is None or parts[1][0] is not None):
                    self.parts[name] = parts

    def read(self, handle, name, start, stop, buffers=None):
        """Rows [start, stop) of column ``name`` (a masked array if it has a mask).

        With ``buffers`` (a dict kept between calls), the values are read into arrays
        reused from one chunk to the next, which spares the OS handing out fresh pages.
        """
        (offset, dtype), mask = self.parts[name]
        values = _read(
            handle, offset, dtype, start, stop, _buffer(buffers, name, dtype, stop - start)
        )
        if mask is None:
            return values
        flags = _buffer(buffers, f"{name}/mask", mask[1], stop - start)
        return np.ma.MaskedArray(values, mask=_read(handle, *mask, start, stop, flags))

    def direct(self, name, dtype):
        """Whether column ``name`` can be read as it is into an array of ``dtype``."""
        (_, stored), mask = self.parts[name]
        return mask is None and stored == dtype

    def read_into(self, handle, name, start, out):
        """Read rows [start, start + len(out)) of an unmasked column into ``out``."""
        offset, dtype = self.parts[name][0]
        _read(handle, offset, dtype, start, start + len(out), out)


def _buffer(buffers, key, dtype, size):
    if buffers is None:
        return np.empty(size, dtype)
    if key not in buffers or buffers[key].size < size:
        buffers[key] = np.empty(size, dtype)
    return buffers[key][:size]


def _read(handle, offset, dtype, start, stop, out):
    view = memoryview(out).cast("B")
    handle.seek(offset + start * dtype.itemsize)
    got = 0
    while got < view.nbytes:
        n = handle.readinto(view[got:])
        if not n:
            raise OSError(f"the cache {handle.name} ends early; delete it and open again")
        got += n
    return out


def _as_float(values):
    if np.ma.isMaskedArray(values):
        return np.ma.filled(values.astype(np.float64), np.nan)
    return np.asarray(values)


def _plan(df, stored, expressions):
    """Per expression how to get it ("column", "scope" or "vaex"); the stored columns the
    scope needs, and the derived columns it needs."""
    virtual = set(df.virtual_columns)
    variables = set(df.variables)
    how, scope_base, virtuals = [], set(), set()
    for expression in expressions:
        if expression in stored and expression not in virtual:
            how.append("column")
            continue
        deps = df[expression].variables(ourself=True, include_virtual=True)
        if expression not in df.get_column_names(hidden=True):
            deps.discard(expression)
        base = deps - virtual - variables
        if base <= set(stored):
            how.append("scope")
            scope_base |= base
            virtuals |= deps & virtual
        else:
            how.append("vaex")
    return how, scope_base, virtuals


def _scope(df, base, virtuals, functions):
    """A small vaex DataFrame of ``base`` columns with the derived columns it needs."""
    import vaex

    scope = vaex.from_dict(base)
    for name, value in df.variables.items():
        scope.add_variable(name, value)
    for name, function in functions.items():
        scope.add_function(name, function, unique=False)
    for name, expression in df.virtual_columns.items():
        if name in virtuals:
            scope.add_virtual_column(name, expression, unique=False)
    return scope


def feature_chunks(df, columns, expressions, chunk_rows, dtype, functions, order="C"):
    """Yield ``(start, block)``: rows [start, start + len(block)) of ``expressions`` as a
    ``(rows, len(expressions))`` array of ``dtype`` (missing values NaN), C- or
    F-contiguous as ``order`` says.

    Parameters
    ----------
    df : vaex.dataframe.DataFrame
        The memory-mapped cache, with the derived columns.
    columns : CacheColumns
    expressions : list of str
    chunk_rows : int
    dtype : numpy dtype
    functions : dict of str to callable
        Functions the derived columns call (registered combinations).
    order : {"C", "F"}
        With "F", stored columns of the right type are read straight into the block.
    """
    how, scope_base, virtuals = _plan(df, columns.parts, expressions)
    dtype = np.dtype(dtype)
    direct = {
        e
        for e, h in zip(expressions, how, strict=True)
        if h == "column" and order == "F" and columns.direct(e, dtype)
    }
    base_names = sorted(
        {e for e, h in zip(expressions, how, strict=True) if h == "column" and e not in direct}
        | scope_base
    )
    n = len(df)
    with (
        open(columns.cache, "rb", buffering=0) as handle,
        np.errstate(divide="ignore", invalid="ignore", over="ignore"),
    ):
        buffers = {}
        for start in range(0, n, chunk_rows):
            stop = min(start + chunk_rows, n)
            block = np.empty((stop - start, len(expressions)), dtype, order=order)
            base = {name: columns.read(handle, name, start, stop, buffers) for name in base_names}
            scoped = [e for e, h in zip(expressions, how, strict=True) if h == "scope"]
            values = {}
            if scoped:
                scope = _scope(df, base, virtuals, functions)
                values = dict(zip(scoped, scope.evaluate(scoped), strict=True))
            for j, (expression, kind) in enumerate(zip(expressions, how, strict=True)):
                if expression in direct:
                    columns.read_into(handle, expression, start, block[:, j])
                    continue
                value = base[expression] if kind == "column" else values.get(expression)
                if kind == "vaex":
                    value = df.evaluate(expression, start, stop)
                block[:, j] = _as_float(value)
            yield start, block


def prefetched(chunks, depth=2):
    """Iterate ``chunks`` in a background thread, up to ``depth`` chunks ahead, so that
    reading and decoding the source overlaps writing the cache."""
    import queue
    import threading

    items, stop, done = queue.Queue(maxsize=depth), threading.Event(), object()

    def put(item):
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for chunk in chunks:
                if not put(chunk):
                    break
            else:
                put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
        finally:
            chunks.close()

    thread = threading.Thread(target=work, name="armillary-reader", daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
