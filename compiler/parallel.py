"""Batch parallelism for the heavy kernels: BLAS runs single-threaded while a kernel splits its
batch over a small pool of Python threads (numpy releases the GIL in BLAS and ufunc loops).

Why not OpenBLAS's own threads: they busy-wait at a barrier after every product. On a shared
machine (2 cores, load average 7, measured) a 2-thread sgemm on conv-sized operands ran 4-6x
slower than a 1-thread one, and ResNet-50 calibration 6x slower; independent batch chunks on
single-threaded BLAS lose only their share of the CPU.

`SNNC_THREADS=N` sets the pool size (default: the CPUs this process may run on). Without
threadpoolctl installed, BLAS keeps its own threading and kernels run unsplit.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None  # (size, pool)
_inside = threading.local()  # set in pool workers and while a split runs: never nest
_controller: Any = None


def workers() -> int:
    raw = os.environ.get("SNNC_THREADS", "")
    if raw.strip().isdigit() and int(raw) > 0:
        return int(raw)
    return max(1, len(os.sched_getaffinity(0)))


def _blas_controller() -> Any:
    """threadpoolctl's controller (imported lazily: an optional dependency), or None."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller = False
        else:
            _controller = ThreadpoolController()
    return _controller or None


@contextmanager
def single_threaded_blas() -> Iterator[bool]:
    """Limit BLAS to one thread inside the block; yields whether that was possible."""
    controller = _blas_controller()
    if controller is None:
        yield False
        return
    with controller.limit(limits=1, user_api="blas"):
        yield True


def _executor(n: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None or _pool[0] != n:  # SNNC_THREADS changed
            _pool = (n, ThreadPoolExecutor(n, thread_name_prefix="snnc-kernel",
                                           initializer=lambda: setattr(_inside, "on", True)))
        return _pool[1]


@contextmanager
def _kernel_scope() -> Iterator[bool]:
    """Single-threaded BLAS, and a mark that nested calls run inline; yields whether BLAS
    could be limited (if not, splitting work across threads would oversubscribe)."""
    with single_threaded_blas() as limited:
        _inside.on = True
        try:
            yield limited
        finally:
            _inside.on = False


def split_rows(fn: Callable[[slice], None], rows: int, min_rows: int = 1) -> None:
    """Call fn(chunk) for contiguous chunks of range(rows), in parallel; fn writes its part of
    a result the caller allocated (no concatenation copy). One chunk, inline, when already
    inside a split, with one worker, or when chunks would have fewer than min_rows rows."""
    if getattr(_inside, "on", False):
        fn(slice(0, rows))
        return
    n = min(workers(), rows // max(min_rows, 1))
    with _kernel_scope() as limited:
        if n <= 1 or not limited:
            fn(slice(0, rows))
            return
        bounds = np.linspace(0, rows, n + 1).astype(int)
        chunks = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        futures = [_executor(n).submit(fn, c) for c in chunks[1:]]
        fn(chunks[0])
        for f in futures:
            f.result()


def parallel_map(fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
    """fn(item) for each item on the pool, for independent pieces of work such as batch
    chunks; results come back in order, as they are ready, so the caller can report progress.
    Kernels that fn calls run inline. Sequential when nested or with one worker."""
    if getattr(_inside, "on", False):
        yield from (fn(item) for item in items)
        return
    n = min(workers(), len(items))
    with _kernel_scope() as limited:
        if n <= 1 or not limited:
            yield from (fn(item) for item in items)
            return
        yield from _executor(n).map(fn, items)
