"""Selection: a running top-k with a seeded hash tie-break, and the parallel drivers.

Rows are ranked by score descending, then by a tie-break hash descending.  The hash is
``splitmix64(global_row_index XOR splitmix64(random_state))``; it is a bijection of the
row index, so the order is total, equal scores come out in a pseudo-random order spread
uniformly over the catalogue, and the order does not depend on how the pool was cut
into chunks.  NaN scores are never selected.

Scores alone are computed in one block of rows per thread (:func:`in_blocks`, a thread
pool running GIL-free kernels).  A top-k hands out chunks of rows instead, large ones
first (:func:`chunks`), to one worker per thread as each finishes its last: a thread
slowed by another process on its core takes fewer rows, rather than keeping the others
waiting.  Each worker scores its chunks tile by tile (:func:`score_tile`) into its own
min-heap of best rows (:func:`run_block`), carried from chunk to chunk so that it stays
full and keeps skipping, and :func:`top_k_blocks` merges the heaps.  The heap holds the
best rows offered whatever their order, so the picks do not depend on who scored what.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np

from ._measures import new_work, tile_rows
from ._reference import tie_hash
from ._tile import score_tile

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
#: Rows :func:`select_tile` counts at a time before offering any to the heap.
SELECT_ROWS = 256

# Every constant mixed with a uint64 is itself a uint64: numba (like numpy) turns
# uint64-with-int64 arithmetic into float64.


@numba.njit(**_JIT)
def splitmix64(x):
    """The splitmix64 finaliser of one uint64 (twin: :func:`_reference.splitmix64`)."""
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@numba.njit(**_JIT)
def _less(hs, hh, a, b):
    """Heap entry ``a`` ranks below entry ``b`` (score, then hash)."""
    return hs[a] < hs[b] or (hs[a] == hs[b] and hh[a] < hh[b])


@numba.njit(**_JIT)
def _swap(hs, hh, hi, a, b):
    hs[a], hs[b] = hs[b], hs[a]
    hh[a], hh[b] = hh[b], hh[a]
    hi[a], hi[b] = hi[b], hi[a]


@numba.njit(**_JIT)
def _sift_up(hs, hh, hi, pos):
    while pos > 0:
        parent = (pos - 1) // 2
        if not _less(hs, hh, pos, parent):
            return
        _swap(hs, hh, hi, pos, parent)
        pos = parent


@numba.njit(**_JIT)
def _sift_down(hs, hh, hi, count):
    pos = 0
    while True:
        smallest = pos
        left = 2 * pos + 1
        right = left + 1
        if left < count and _less(hs, hh, left, smallest):
            smallest = left
        if right < count and _less(hs, hh, right, smallest):
            smallest = right
        if smallest == pos:
            return
        _swap(hs, hh, hi, pos, smallest)
        pos = smallest


@numba.njit(**_JIT)
def select_tile(scores, n, i0, exclude, has_exclude, offset, seed, hs, hh, hi, count):
    """Offer rows ``i0 .. i0 + n - 1`` (scores ``scores[:n]``) to the heap; return count.

    ``hs, hh, hi`` hold the heap's scores, hashes and global row indices; the heap keeps
    the best ``len(hs)`` rows seen, its worst at the root.
    """
    cap = hs.shape[0]
    threshold = hs[0] if count == cap else -np.inf
    for lo in range(0, n, SELECT_ROWS):
        part = scores[lo : min(n, lo + SELECT_ROWS)]
        # A vectorised count first: in most parts of a large pool no row reaches the
        # heap (and the pruned measures leave most rows NaN), so the scalar loop below
        # runs only over the few parts that hold a candidate.
        reach = 0
        for j in range(part.shape[0]):
            reach += 1 if part[j] >= threshold else 0
        if reach == 0:
            continue
        for j in range(part.shape[0]):
            s = part[j]
            if not s >= threshold:  # also skips NaN
                continue
            if has_exclude and exclude[i0 + lo + j]:
                continue
            row = offset + i0 + lo + j
            h = splitmix64(np.uint64(row) ^ seed)
            if count < cap:
                hs[count] = s
                hh[count] = h
                hi[count] = row
                _sift_up(hs, hh, hi, count)
                count += 1
            elif s > hs[0] or h > hh[0]:
                hs[0] = s
                hh[0] = h
                hi[0] = row
                _sift_down(hs, hh, hi, count)
            if count == cap:
                threshold = hs[0]
    return count


@numba.njit(**_JIT)
def run_block(
    flat,
    M,
    N,
    C,
    start,
    stop,
    method,
    table,
    out,
    exclude,
    has_exclude,
    offset,
    seed,
    hs,
    hh,
    hi,
    count,
):
    """Score rows ``start .. stop - 1`` of a flat (M, N, C) array, tile by tile.

    With a non-empty ``out`` (length N) the scores go to ``out[start:stop]``; otherwise
    the rows are offered to the heap ``hs, hh, hi``, which holds ``count`` entries on
    entry, and its new count is returned.
    """
    rows = tile_rows(C)
    work = new_work(M, C)
    keep_scores = out.shape[0] > 0
    scores = np.empty(rows, dtype=np.float64)
    cap = hs.shape[0]
    for i0 in range(start, stop, rows):
        n = min(rows, stop - i0)
        if keep_scores:
            score_tile(flat, M, N, C, i0, n, method, table, -np.inf, out[i0 : i0 + n], work)
        else:
            threshold = hs[0] if count == cap else -np.inf
            if score_tile(flat, M, N, C, i0, n, method, table, threshold, scores, work):
                count = select_tile(
                    scores, n, i0, exclude, has_exclude, offset, seed, hs, hh, hi, count
                )
    return count


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(
                max_workers=numba.config.NUMBA_NUM_THREADS, thread_name_prefix="armillary"
            )
        return _POOL


def in_parallel(task: Callable[[int], object], count: int) -> list:
    """Run ``task(i)`` for ``i < count``: ``task(0)`` in the calling thread, the others
    on the thread pool.  The caller starts at once, however long the pool's threads
    take to wake on a busy machine."""
    futures = [_pool().submit(task, i) for i in range(1, count)]
    try:
        first = task(0)
    finally:
        wait(futures)  # never return (or raise) while a task still runs
    return [first, *(future.result() for future in futures)]


def in_blocks(kernel: Callable[[int, int, int], object], n: int, n_blocks: int) -> list:
    """Run ``kernel(block, start, stop)`` over ``n`` rows cut into ``n_blocks`` blocks.

    The kernels release the GIL (``nogil=True``), so the blocks run in parallel
    (:func:`in_parallel`, ``NUMBA_NUM_THREADS`` threads in all).  Threads from Python
    rather than ``parallel=True`` keep the compile time down (each parallel kernel costs
    seconds of compilation) and let every public function share the same compiled block
    kernel.
    """
    bounds = [(b, b * n // n_blocks, (b + 1) * n // n_blocks) for b in range(n_blocks)]
    return in_parallel(lambda b: kernel(*bounds[b]), n_blocks)


#: Smallest chunk of rows :func:`chunks` hands out (C = 4: 512 KiB of float64).
MIN_CHUNK_ROWS = 16384
#: :func:`chunks` hands out 1 / (CHUNK_SHARE x workers) of the rows left at a time.
CHUNK_SHARE = 4


def chunks(n: int, workers: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks covering ``n`` rows, for ``workers``.

    "Guided" sizes: each chunk is a share of the rows still left, so the first ones are
    large (few calls) and the last ones small (the workers finish together); about 40
    chunks for 1e7 rows and 2 workers.  The iterator is safe to share between threads.
    """
    return _Chunks(n, workers)


class _Chunks:
    """The iterator of :func:`chunks`: its ``__next__`` claims a chunk under a lock.

    Not ``iter(callable, sentinel)``: CPython's callable iterator, shared between
    threads, can drop a chunk that one thread has claimed when another thread meets the
    sentinel meanwhile (the first then sees the iterator exhausted), and the rows of
    that chunk would never be scored.
    """

    def __init__(self, n: int, workers: int) -> None:
        self.n, self.workers = n, workers
        self.start = 0
        self.lock = threading.Lock()

    def __iter__(self) -> _Chunks:
        return self

    def __next__(self) -> tuple[int, int]:
        with self.lock:
            start = self.start
            if start >= self.n:
                raise StopIteration
            left = self.n - start
            size = max(MIN_CHUNK_ROWS, -(-left // (CHUNK_SHARE * self.workers)))
            self.start = min(self.n, start + size)
            return start, self.start


def top_k_blocks(block, n: int, k: int, workers: int):
    """Run ``block(start, stop, hs, hh, hi, count) -> count`` over :func:`chunks` of the
    ``n`` rows, with one heap per worker (holding ``count`` entries on entry); return
    the ``k`` best of the merged heaps."""
    cap = min(k, n)  # a worker may score any number of rows
    hs = np.empty((workers, cap), dtype=np.float64)
    hh = np.empty((workers, cap), dtype=np.uint64)
    hi = np.empty((workers, cap), dtype=np.int64)
    schedule = chunks(n, workers)

    def worker(w: int) -> int:
        count = 0
        # errstate (per thread, hence here) only matters under NUMBA_DISABLE_JIT, where
        # the hash runs on numpy scalars whose intended wrap-around would warn.
        with np.errstate(over="ignore"):
            for start, stop in schedule:
                count = block(start, stop, hs[w], hh[w], hi[w], count)
        return count

    counts = np.asarray(in_parallel(worker, workers), dtype=np.int64)
    keep = np.arange(cap) < counts[:, None]
    return best_k(hi[keep], hs[keep], hh[keep], k)


def best_k(indices, scores, hashes, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``k`` best entries by (score, hash) descending; keys are unique per row."""
    order = np.lexsort((hashes, scores))[::-1][:k]
    return indices[order].astype(np.int64), scores[order].astype(np.float64)


def merge(indices, scores, k: int, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of already-validated candidate rows (global indices)."""
    valid = ~np.isnan(scores)
    indices, scores = indices[valid], scores[valid]
    return best_k(indices, scores, tie_hash(indices, random_state), k)
