"""Run a Lava process graph so that a failure inside one of Lava's worker processes comes back
as a BackendError naming the process, instead of a hang.

Lava 0.10 runs every process in an OS process of its own. When one raises, Lava logs the
traceback at INFO level only and its runtime then joins every worker, while the healthy ones
wait forever for data from the failed one. So we build Lava's own Runtime step by step (the
steps of `Runtime.initialize`), start each run without blocking and wait for it ourselves,
watching the workers: on the first exception (each worker reports it on its queue) or the
first worker that dies, we end the other workers by their ids and raise.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from snnc.compiler.errors import BackendError, SnncError

POLL_SECONDS = 0.002  # how often to look for the runtime's answer
WATCH_SECONDS = 0.05  # how often to look at the workers
STALL_SECONDS = 600.0  # one run (a sample) answering later than this is stuck
REPORT_SECONDS = 5.0  # how long a failed worker gets to report its exception


@dataclass(frozen=True)
class _Worker:
    name: str  # "relu2 (PyIFSubFixed)"
    actor: Any  # lava's SystemProcess (a multiprocessing.Process)
    errors: Any  # its multiprocessing.Queue: None once built, or the exception it raised


@contextlib.contextmanager
def lava_errors(what: str) -> Iterator[None]:
    """Lava's own exceptions (while it builds processes, runs, reads back) as a BackendError
    saying `what` ("refused the network", ...); our errors pass through."""
    try:
        yield
    except SnncError:
        raise
    except Exception as exc:
        raise BackendError(f"Lava {what}: {type(exc).__name__}: {exc}") from exc


class LavaSession:
    """One Lava runtime for the process graph around `root`:

        with LavaSession(root, "fixed_pt", sinks={"out": sink}) as lava:
            lava.run(steps)          # as often as needed; the state carries over
            value = some_proc.var.get()
            data = lava.read("out")  # == sink.data.get(), without its cost (host_readout)
    """

    def __init__(self, root: Any, select_tag: str, stall_seconds: float = STALL_SECONDS,
                 sinks: Mapping[str, Any] | None = None) -> None:
        self.root = root
        self.select_tag = select_tag
        self.stall_seconds = stall_seconds
        self.sinks = dict(sinks or {})  # RingBuffer sinks to read with read(), by key
        self.readout: Any = None
        self.runtime: Any = None
        self.workers: list[_Worker] = []

    def __enter__(self) -> LavaSession:
        from lava.magma.core.run_configs import Loihi2SimCfg

        from .host_readout import Readout

        self.readout = Readout(self.sinks, self.select_tag == "fixed_pt")
        try:
            try:
                executable = self.root.compile(Loihi2SimCfg(
                    select_tag=self.select_tag, exception_proc_model_map=self.readout.models))
            except Exception as exc:  # Lava's compiler runs here, in this process
                raise BackendError(f"Lava could not compile the network: "
                                   f"{type(exc).__name__}: {exc}") from exc
            try:
                self._start(executable)
            except BaseException:
                self._kill()
                raise
        except BaseException:
            self.readout.close()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self._stop()
            else:
                self._kill()
        finally:
            self.readout.close()

    def read(self, key: str) -> np.ndarray:
        """What `sinks[key].data.get()` would give, read from the sink's file."""
        return self.readout.read(key)  # type: ignore[no-any-return]

    def run(self, steps: int) -> None:
        """Run `steps` more time steps; BackendError if a worker fails."""
        from lava.magma.core.run_conditions import RunSteps

        self.runtime.start(RunSteps(num_steps=int(steps), blocking=False))
        self._await("DONE", f"running {steps} steps")
        self.runtime._is_running = False

    def _start(self, executable: Any) -> None:
        from lava.magma.compiler.builders.py_builder import PyProcessBuilder
        from lava.magma.core.process.message_interface_enum import ActorType
        from lava.magma.runtime.runtime import Runtime

        rt = Runtime(executable, ActorType.MultiProcessing, loglevel=logging.WARNING)
        executable.assign_runtime_to_all_processes(rt)
        self.runtime = rt
        # Runtime.initialize, minus its wait on the workers' build reports (done below)
        rt._build_watchdog_manager()
        rt._build_message_infrastructure()
        rt._build_channels()
        rt._build_sync_channels()
        rt._build_processes()
        rt._build_runtime_services()
        rt._start_ports()
        # workers start in this order: the Python processes, then the runtime services
        names = [f"{p.name} ({b.proc_model.__name__})"
                 for p, b in executable.proc_builders.items() if isinstance(b, PyProcessBuilder)]
        names += ["Lava's runtime service"] * len(executable.runtime_service_builders)
        actors = rt._messaging_infrastructure.actors
        self.workers = [_Worker(n, a, q) for n, a, q in
                        zip(names, actors, rt.exception_q, strict=True)]
        for worker in self.workers:
            self._await_build(worker)
        rt._is_initialized = True

    def _await_build(self, worker: _Worker) -> None:
        deadline = time.monotonic() + self.stall_seconds
        while True:
            try:
                report = worker.errors.get(timeout=0.05)
            except queue.Empty:
                if not worker.actor.is_alive() or time.monotonic() > deadline:
                    self._fail(worker, None, "while building it")
                continue
            if report is not None:
                self._fail(worker, report, "while building it")
            return

    def _await(self, answer: str, what: str) -> None:
        """Wait for every runtime service to send `answer`, watching the workers."""
        from lava.magma.runtime.mgmt_token_enums import MGMT_RESPONSE, enum_equal

        expected = getattr(MGMT_RESPONSE, answer)
        pending = list(self.runtime.service_to_runtime)
        deadline = time.monotonic() + self.stall_seconds
        watched = 0.0
        while pending:
            for port in [p for p in pending if p.probe()]:
                data = port.recv()
                if not enum_equal(data, expected):
                    self._fail(None, None, f"while {what} (Lava's runtime got {data})")
                pending.remove(port)
            if not pending:
                return
            now = time.monotonic()
            if now - watched > WATCH_SECONDS:
                self._check_workers(what, stopping=answer == "TERMINATED")
                watched = now
            if now > deadline:
                self._fail(None, None, f"while {what}: no answer after "
                           f"{self.stall_seconds:.0f} s")
            time.sleep(POLL_SECONDS)

    def _check_workers(self, what: str, stopping: bool) -> None:
        for worker in self.workers:
            report = _poll(worker.errors)
            if report is not None:
                self._fail(worker, report, f"while {what}")
            if not stopping and worker.actor.exitcode is not None:
                self._fail(worker, None, f"while {what}")

    def _fail(self, worker: _Worker | None, report: Any, when: str) -> None:
        """Find the worker that failed and what it raised, end all workers, raise."""
        if worker is not None and report is None:  # it died: its report, if any, is sent
            report = _poll(worker.errors, timeout=0.5)
        deadline = time.monotonic() + REPORT_SECONDS
        while worker is None and time.monotonic() < deadline:
            for w in self.workers:
                report = _poll(w.errors)
                if report is not None:
                    worker = w
                    break
            else:
                time.sleep(0.05)
        if worker is None:  # no report: name a worker that died, if one did
            worker = next((w for w in self.workers if w.actor.exitcode is not None), None)
        code = worker.actor.exitcode if worker is not None else None
        self._kill()
        if worker is None:
            raise BackendError(f"Lava failed {when}; no worker process reported an "
                               "exception")
        if report is None:
            raise BackendError(f"Lava failed in process {worker.name} {when}: the worker "
                               f"exited with code {code} without an exception")
        raise BackendError(f"Lava failed in process {worker.name} {when}: "
                           f"{type(report).__name__}: {report}\n"
                           f"{_last_frames(getattr(report, 'trace', ''))}")

    def _stop(self) -> None:
        from lava.magma.runtime.mgmt_token_enums import MGMT_COMMAND

        rt = self.runtime
        for port in rt.runtime_to_service:
            port.send(MGMT_COMMAND.STOP)
        self._await("TERMINATED", "stopping")
        rt.join()
        self._release()

    def _kill(self) -> None:
        """End every worker still alive (by its process id) and free Lava's shared memory."""
        for worker in self.workers:
            with contextlib.suppress(Exception):
                if worker.actor.is_alive():
                    worker.actor.terminate()
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.actor.join(timeout=5)
                if worker.actor.is_alive():
                    worker.actor.kill()
        if self.runtime is not None and self.runtime._messaging_infrastructure is not None:
            self._release()

    def _release(self) -> None:
        rt = self.runtime
        rt._is_running = rt._is_started = False  # or Runtime.__del__ would try to stop it
        with contextlib.suppress(Exception):
            rt._messaging_infrastructure.stop()
        with contextlib.suppress(Exception):
            rt._watchdog_manager.stop()


def _poll(errors: Any, timeout: float = 0.0) -> Any:
    try:
        return errors.get(timeout=timeout) if timeout else errors.get_nowait()
    except (queue.Empty, OSError, ValueError):
        return None


def _last_frames(trace: str, lines: int = 6) -> str:
    """The end of a worker's traceback: where in the model it failed."""
    return "\n".join(trace.strip().splitlines()[-lines:]) if trace else ""
