"""Benchmark of catalogue conversion and out-of-core reads (a script, not a test).

Usage::

    python tests/benchmarks/bench_catalogue.py            # 10M-row FITS, 100M-row cache
    python tests/benchmarks/bench_catalogue.py --quick    # 200k rows, 2M-row cache
    python tests/benchmarks/bench_catalogue.py --keep --dir /data/bench

It writes a FITS table of float32 columns, then measures, each in a child process of its
own (so that peak RSS, from ``getrusage``, belongs to that step alone):

1. astropy's plain ``Table.read`` of the file, the reference;
2. :func:`armillary.open_catalogue` converting it into its cache (time, throughput over
   the FITS data bytes, peak RSS);
3. reopening it from the cache;
4. a cache of ``--big-rows`` rows x 12 float32 columns generated straight into the cache
   format (through the same writer, from a synthetic reader), then opening it, and one
   full pass over its 12 columns with :meth:`Catalogue.iter_chunks` (summing each
   block), with C-ordered blocks (the default) and again with F-ordered ones.

Each child first imports what it needs and opens a tiny table, so the times exclude
imports and vaex's one-time plugin discovery; that overhead is printed on its own line.
Times are the best of ``--repeat`` runs; the runs of steps 1 and 2 alternate (astropy,
convert, astropy, convert, ...) so that both are timed over the same stretch of a shared
machine's changing load, and the conversion's line also gives its throughput over
astropy's run by run (sorted). The conversion includes the ``fsync`` that makes the
cache durable before it is renamed into place. The page cache is warm (the files were
just written), as it is when a notebook reopens a catalogue. Files are deleted at the
end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SMALL_COLUMNS = 14
BIG_COLUMNS = 12
TARGET_RSS_MB = 1500
TARGET_REOPEN_S = 1.0


# --------------------------------------------------------------------------- data


def write_fits(path, nrows, ncols, seed=0, chunk=1_000_000):
    """A FITS binary table of ``ncols`` float32 columns, written in chunks."""
    from astropy.io import fits

    names = [f"c{k}" for k in range(ncols)]
    table = fits.BinTableHDU.from_columns([fits.Column(name=n, format="E") for n in names], nrows=0)
    table.header["NAXIS2"] = nrows
    record = np.dtype([(n, ">f4") for n in names])
    rng = np.random.default_rng(seed)
    with open(path, "wb") as out:
        out.write(fits.PrimaryHDU().header.tostring().encode("ascii"))
        out.write(table.header.tostring().encode("ascii"))
        for start in range(0, nrows, chunk):
            rows = min(chunk, nrows - start)
            block = np.empty(rows, record)
            block.view(">f4").reshape(rows, ncols)[:] = rng.random((rows, ncols), dtype=np.float32)
            out.write(block.tobytes())
        out.write(b"\0" * (-out.tell() % 2880))
    return nrows * record.itemsize


class SyntheticReader:
    """A reader (see armillary.formats) of random float32 columns, made chunk by chunk."""

    format = "synthetic"

    def __init__(self, nrows, ncols, seed=0):
        from armillary.formats import Column

        self.nrows = nrows
        self.meta = {}
        self.seed = seed
        self.columns = {
            f"f{k}": Column(np.dtype(np.float32), False, None, None, f"f{k}") for k in range(ncols)
        }

    def chunks(self, names=None, chunk_rows=262_144):
        names = list(self.columns if names is None else names)
        for start in range(0, self.nrows, chunk_rows):
            rows = min(chunk_rows, self.nrows - start)
            rng = np.random.default_rng([self.seed, start])
            yield {name: rng.random(rows, dtype=np.float32) for name in names}

    def close(self):
        pass


# --------------------------------------------------------------------------- children


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _warm(folder):
    """Import everything and open a tiny table: the one-time costs; their seconds."""
    start = time.perf_counter()
    import astropy.io.fits  # noqa: F401
    import h5py  # noqa: F401
    import tqdm.auto  # noqa: F401
    import vaex  # noqa: F401

    from armillary.catalogue import open_catalogue

    tiny = Path(folder) / "tiny.fits"
    write_fits(tiny, 10, 2)
    open_catalogue(tiny, id_column=None, cache_dir=folder, progress=False)
    return time.perf_counter() - start


def child_astropy(args):
    from astropy.table import Table

    Table.read(args["tiny"])  # imports and registry, outside the timing
    base = _rss_mb()
    start = time.perf_counter()
    table = Table.read(args["path"])
    seconds = time.perf_counter() - start
    assert len(table) == args["rows"]
    return {"seconds": seconds, "rss": _rss_mb(), "base": base}


def child_convert(args):
    from armillary.catalogue import open_catalogue

    overhead = _warm(args["scratch"])
    base = _rss_mb()
    start = time.perf_counter()
    cat = open_catalogue(args["path"], id_column=None, cache_dir=args["cache_dir"], progress=False)
    seconds = time.perf_counter() - start
    assert len(cat) == args["rows"]
    return {"seconds": seconds, "rss": _rss_mb(), "base": base, "overhead": overhead}


def child_reopen(args):
    from armillary.catalogue import open_catalogue

    _warm(args["scratch"])
    base = _rss_mb()
    start = time.perf_counter()
    cat = open_catalogue(
        args["path"], id_column=None, cache_dir=args.get("cache_dir"), progress=False
    )
    seconds = time.perf_counter() - start
    assert len(cat) == args["rows"]
    return {"seconds": seconds, "rss": _rss_mb(), "base": base}


def child_generate(args):
    from armillary._cache import CACHE_VERSION, build_cache

    _warm(args["scratch"])
    base = _rss_mb()
    reader = SyntheticReader(args["rows"], BIG_COLUMNS)
    attrs = {
        "armillary_fingerprint": f"synthetic-{args['rows']}",
        "armillary_source": "synthetic",
        "armillary_cache_version": CACHE_VERSION,
        "armillary_format": reader.format,
    }
    start = time.perf_counter()
    build_cache(reader, Path(args["path"]), attrs, progress=False)
    return {"seconds": time.perf_counter() - start, "rss": _rss_mb(), "base": base}


def child_pass(args):
    from armillary.catalogue import open_catalogue

    _warm(args["scratch"])
    cat = open_catalogue(args["path"], id_column=None, progress=False)
    base = _rss_mb()
    features = cat.columns[:BIG_COLUMNS]
    total = np.zeros(len(features))
    start = time.perf_counter()
    for _, block in cat.iter_chunks(features, order=args["order"]):
        total += block.sum(axis=0, dtype=np.float64)
    seconds = time.perf_counter() - start
    assert np.all(np.abs(total / len(cat) - 0.5) < 0.01)  # uniform(0, 1) columns
    return {"seconds": seconds, "rss": _rss_mb(), "base": base}


CHILDREN = {
    "astropy": child_astropy,
    "convert": child_convert,
    "reopen": child_reopen,
    "generate": child_generate,
    "pass": child_pass,
}


def _child(task, args):
    done = subprocess.run(
        [sys.executable, __file__, "--child", task, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        sys.exit(f"child {task} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _best(results):
    best = min(results, key=lambda r: r["seconds"])
    return {**best, "rss": max(r["rss"] for r in results), "all": [r["seconds"] for r in results]}


def run_child(task, repeat=1, before=None, **args):
    """Run ``task`` in fresh interpreters ``repeat`` times: best time, highest RSS."""
    return run_alternating([(task, before, args)], repeat)[0]


def run_alternating(steps, repeat):
    """Run ``steps`` (``(task, before, args)`` each) in turn, ``repeat`` rounds, so that
    steps compared with each other are timed over the same stretch of time (on a shared
    machine the load changes from second to second); per step, as :func:`run_child`."""
    results = [[] for _ in steps]
    for _ in range(repeat):
        for (task, before, args), done in zip(steps, results, strict=True):
            if before is not None:
                before()
            done.append(_child(task, args))
    return [_best(done) for done in results]


# --------------------------------------------------------------------------- main


def measure(folder, rows, big_rows, repeat):
    scratch = folder / "scratch"
    scratch.mkdir()
    fits_path, cache_dir = folder / "bench.fits", folder / "cache"
    data_mb = write_fits(fits_path, rows, SMALL_COLUMNS) / 1e6
    write_fits(scratch / "tiny.fits", 10, 2)
    common = {"path": str(fits_path), "rows": rows, "scratch": str(scratch)}
    astropy, convert = run_alternating(
        [
            ("astropy", None, {"tiny": str(scratch / "tiny.fits"), **common}),
            (
                "convert",
                lambda: shutil.rmtree(cache_dir, True),
                {"cache_dir": str(cache_dir), **common},
            ),
        ],
        repeat,
    )
    reopen = run_child("reopen", repeat, cache_dir=str(cache_dir), **common)
    big = folder / "big.armillary.hdf5"
    big_mb = big_rows * BIG_COLUMNS * 4 / 1e6
    generate = run_child("generate", 1, path=str(big), rows=big_rows, scratch=str(scratch))
    opened = run_child("reopen", repeat, path=str(big), rows=big_rows, scratch=str(scratch))
    passed = run_child("pass", 1, path=str(big), rows=big_rows, scratch=str(scratch), order="C")
    passed_f = run_child("pass", 1, path=str(big), rows=big_rows, scratch=str(scratch), order="F")
    ratio = astropy["seconds"] / convert["seconds"]
    paired = sorted(a / c for a, c in zip(astropy["all"], convert["all"], strict=True))
    return locals()


def table(header, rows):
    """A Markdown table, as lines: ``header`` is (title, "<" or ">") per column (left or
    right aligned), ``rows`` lists of cells already formatted as text."""
    widths = [
        max(len(title), *(len(row[k]) for row in rows)) for k, (title, _) in enumerate(header)
    ]

    def line(cells):
        padded = (
            f"{cell:{align}{width}}"
            for cell, (_, align), width in zip(cells, header, widths, strict=True)
        )
        return f"| {' | '.join(padded)} |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return [line([title for title, _ in header]), rule, *(line(row) for row in rows)]


def report(m, rows, big_rows):
    small = f"{rows / 1e6:g}M x {SMALL_COLUMNS} float32 FITS ({m['data_mb']:.0f} MB)"
    big = f"{big_rows / 1e6:g}M x {BIG_COLUMNS} float32 cache ({m['big_mb']:.0f} MB)"
    big_label = f"{big_rows / 1e6:g}M-row cache"
    steps = [  # (step, result, MB it handles or None, note)
        (
            "astropy Table.read (reference)",
            m["astropy"],
            m["data_mb"],
            f"after imports {m['astropy']['base']:.0f} MB",
        ),
        (
            "open_catalogue: convert FITS -> cache",
            m["convert"],
            m["data_mb"],
            f"after imports {m['convert']['base']:.0f} MB; {m['ratio']:.2f} x astropy's MB/s "
            f"(run by run: {', '.join(f'{r:.2f}' for r in m['paired'])})",
        ),
        (
            "  one-time imports + vaex plugins (excluded)",
            {"seconds": m["convert"]["overhead"]},
            None,
            "first open in a process",
        ),
        ("open_catalogue: reopen from cache", m["reopen"], None, ""),
        (f"generate {big_label} (same writer)", m["generate"], m["big_mb"], ""),
        (f"open_catalogue: open {big_label}", m["opened"], None, ""),
        (
            f"iter_chunks: full pass, {BIG_COLUMNS} columns",
            m["passed"],
            m["big_mb"],
            f"after open {m['passed']['base']:.0f} MB; C-order blocks + sums",
        ),
        (
            "  the same, order='F' (columns read in place)",
            m["passed_f"],
            m["big_mb"],
            f"after open {m['passed_f']['base']:.0f} MB",
        ),
    ]
    cells = [
        [
            step,
            f"{result['seconds']:.3f}",
            f"{megabytes / result['seconds']:.0f}" if megabytes else "",
            f"{result['rss']:.0f}" if "rss" in result else "",
            note,
        ]
        for step, result, megabytes, note in steps
    ]
    header = [("step", "<"), ("time s", ">"), ("MB/s", ">"), ("peak RSS", ">"), ("note", "<")]
    targets = [("target", "<"), ("verdict", "<"), ("measured", ">")]
    return "\n".join(
        [
            f"Catalogue benchmark: {small}; {big}",
            "",
            *table(header, cells),
            "",
            *table(targets, _verdicts(m, big_rows)),
        ]
    )


def _verdicts(m, big_rows):
    ours = m["data_mb"] / m["convert"]["seconds"]
    reference = m["data_mb"] / m["astropy"]["seconds"]
    rss = max(m["convert"]["rss"], m["passed"]["rss"], m["passed_f"]["rss"])
    checks = [
        (
            f"reopen a {big_rows / 1e6:g}M-row catalogue < {TARGET_REOPEN_S:g} s",
            m["opened"]["seconds"] < TARGET_REOPEN_S,
            f"{m['opened']['seconds']:.3f} s",
        ),
        (
            f"peak RSS < {TARGET_RSS_MB} MB (conversion, full pass)",
            rss < TARGET_RSS_MB,
            f"{rss:.0f} MB",
        ),
        (
            "conversion throughput >= astropy read",
            ours >= reference,
            f"{ours:.0f} vs {reference:.0f} MB/s",
        ),
    ]
    return [[text, "met" if ok else "MISSED", value] for text, ok, value in checks]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k rows, a 2M-row cache")
    parser.add_argument("--rows", type=int, help="rows of the FITS table (10M)")
    parser.add_argument("--big-rows", type=int, help="rows of the big cache (100M)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timed step")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the files written")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](json.loads(args.child[1]))))
        return
    rows = args.rows or (200_000 if args.quick else 10_000_000)
    big_rows = args.big_rows or (2_000_000 if args.quick else 100_000_000)
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="armillary-bench-", dir=args.dir))
    try:
        print(report(measure(folder, rows, big_rows, max(args.repeat, 1)), rows, big_rows))
    finally:
        if args.keep:
            print(f"\nfiles kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
