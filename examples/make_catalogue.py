"""Write Armillary's example catalogue: a synthetic star / galaxy / quasar FITS table.

Usage::

    python examples/make_catalogue.py                      # 100,000 rows
    python examples/make_catalogue.py --rows 1000000 --out /tmp/cat1m.fits

The file is left alone when it already holds the same number of rows, seed and thumbnail
count (they are recorded in its header); ``--force`` writes it again. See
:mod:`armillary.datasets` for what the columns hold.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    from armillary.datasets import GENERATOR_VERSION, generator_parameters, make_catalogue
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from armillary.datasets import GENERATOR_VERSION, generator_parameters, make_catalogue

DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "catalogue.fits"


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows (default 100000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="FITS file to write (default examples/data/catalogue.fits)")
    parser.add_argument("--thumbnails", type=int, default=2000,
                        help="rows with a PNG thumbnail (default 2000)")
    parser.add_argument("--chunk-rows", type=int, default=500_000,
                        help="rows written at a time (default 500000)")
    parser.add_argument("--force", action="store_true", help="write even if up to date")
    return parser


def main(argv=None):
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    out = args.out.expanduser().resolve()
    wanted = {"version": GENERATOR_VERSION, "n": args.rows, "seed": args.seed,
              "thumbnails": min(args.thumbnails, args.rows)}
    found = generator_parameters(out) if out.exists() else None
    if not args.force and found is not None and all(found[k] == v for k, v in wanted.items()):
        print(f"{out} is up to date ({args.rows:,} rows, seed {args.seed}); "
              "use --force to write it again")
        return 0
    start = time.perf_counter()
    try:
        path = make_catalogue(args.rows, args.seed, out, thumbnails=args.thumbnails,
                              chunk_rows=args.chunk_rows)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(f"wrote {args.rows:,} rows (seed {args.seed}) to {path} in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
