"""`snnc eval` over a Dask cluster: `--scheduler ADDRESS` (a running dask.distributed
scheduler) or `--workers N` (a LocalCluster of N worker processes on this machine, loopback
only). Dask is optional (`pip install 'snnc[dask]'`) and imported only here, only then.

What travels: each compiled network as its `.snn` artifact bytes (runtime/artifact.py, sent
once to every worker, loaded there with the artifact's own checks; never a pickled object),
the shards of the test set as arrays, and back the shards' outputs and spike counts, which are
merged in sample order. The per-layer report (observe callbacks on up to 512 samples) and
compiling stay in the client process.

Identical to one process: the simulators run a batch in chunks (simulator.chunk_size), and a
chunk's products sum in an order that may depend on its size; so shards are cut at the
single-process run's chunk boundaries, at least two whole chunks each (a simulator splits a
run into at least two chunks, so a shard of one chunk would be halved), the last partial
chunk riding with the last shard. Every sample is then simulated in the same chunk, with the
same arithmetic, as without a cluster: the same outputs, counts and report (timings aside).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from snnc.backends.numpy import SimulationResult
from snnc.backends.numpy.simulator import DEFAULT_ENGINE, chunk_size
from snnc.compiler.errors import UsageError
from snnc.compiler.targets import target as target_entry

from . import artifact
from .network import CompiledNetwork, load

INSTALL = "pip install 'snnc[dask]' (or pip install 'dask[distributed]')"
SHARDS_PER_WORKER = 2  # a little slack for uneven workers, without many tiny shards
_CONNECT_TIMEOUT_S = 20
_LOADED: dict[str, CompiledNetwork] = {}  # per worker process: digest -> network
_KEEP_LOADED = 4


def plan_shards(n: int, chunk: int, parts: int) -> list[slice]:
    """Up to `parts` slices of range(n), cut at multiples of `chunk`, each holding at least two
    whole chunks (the last also the partial one); one slice where that cannot be done."""
    whole = n // chunk
    count = min(parts, whole // 2)
    if count < 2:
        return [slice(0, n)]
    bounds = [round(i * whole / count) * chunk for i in range(count)] + [n]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _simulate_shard(blob: bytes, x: np.ndarray, timesteps: list[int], engine: str,
                    device: str | None, batch_size: int
                    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """On a worker: the network from its artifact bytes (kept for the next shards), run on
    its shard."""
    key = hashlib.sha256(blob).hexdigest()
    net = _LOADED.get(key)
    if net is None:
        with tempfile.TemporaryDirectory(prefix="snnc-") as tmp:
            path = Path(tmp) / "network.snn"
            path.write_bytes(blob)
            net = load(path)
        if len(_LOADED) >= _KEEP_LOADED:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = net
    sim = net.simulate(x, timesteps, batch_size, engine=engine, device=device)
    return sim.outputs, sim.spikes, sim.payload


def require_dask() -> None:
    if importlib.util.find_spec("distributed") is None:
        raise UsageError(f"--scheduler/--workers need Dask, which is not installed: {INSTALL}")


class Cluster:
    """A dask.distributed client: to the scheduler at `address`, or to a LocalCluster of
    `workers` single-threaded processes on 127.0.0.1 that closes with it."""

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        if (address is None) == (workers is None):
            raise UsageError("give one of --scheduler ADDRESS (a running Dask scheduler) or "
                             "--workers N (a local cluster of N processes)")
        if workers is not None and int(workers) < 1:
            raise UsageError(f"--workers must be a positive integer, got {workers}")
        require_dask()
        from distributed import Client, LocalCluster

        self._local = None
        if workers is not None:
            # one snnc kernel thread per worker process: N processes share N cores
            self._local = LocalCluster(n_workers=int(workers), threads_per_worker=1,
                                       processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=logging.ERROR,
                                       env={"SNNC_THREADS": "1", "OMP_NUM_THREADS": "1"})
            self.client = Client(self._local)
        else:
            try:
                self.client = Client(address, timeout=_CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise UsageError(f"--scheduler {address}: cannot reach a Dask scheduler "
                                 f"({exc}); start one with `dask scheduler` and workers with "
                                 f"`dask worker {address}`") from None

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def close(self) -> None:
        self.client.close()
        if self._local is not None:
            self._local.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def simulate(self, net: CompiledNetwork, x: np.ndarray, timesteps: Sequence[int],
                 progress: Callable[[int], None] | None = None, engine: str = DEFAULT_ENGINE,
                 device: str | None = None, batch_size: int = 256) -> SimulationResult:
        """net.simulate(x, timesteps, ...) with the samples sharded over the workers."""
        from distributed import as_completed

        ts = sorted({int(t) for t in timesteps})
        size = (chunk_size(net.graph, len(x), batch_size)  # integer arithmetic: no engine
                if target_entry(net.target).fixed_point
                else chunk_size(net.graph, len(x), batch_size, engine, device))
        shards = plan_shards(len(x), size, self.workers * SHARDS_PER_WORKER)
        blob = artifact.encode(net.graph, net.target, net.options)
        [remote] = self.client.scatter([blob], broadcast=True, hash=False)
        parts = self.client.scatter([np.ascontiguousarray(x[s]) for s in shards], hash=False)
        futures = {self.client.submit(_simulate_shard, remote, part, ts, engine, device,
                                      batch_size, pure=False): k
                   for k, part in enumerate(parts)}
        done: dict[int, tuple[Any, ...]] = {}
        for future in as_completed(futures):
            k = futures[future]
            done[k] = future.result()
            if progress is not None:
                progress(shards[k].stop - shards[k].start)
        pieces = [done[k] for k in range(len(shards))]
        outputs = np.concatenate([p[0] for p in pieces], axis=1)
        spikes = {name: np.concatenate([p[1][name] for p in pieces], axis=1)
                  for name in pieces[0][1]}
        payload = {name: np.concatenate([p[2][name] for p in pieces], axis=1)
                   for name in pieces[0][2]}
        return SimulationResult(ts, outputs, spikes, payload)
