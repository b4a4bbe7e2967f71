"""Sink buffers read back through a memory-mapped file instead of Lava's `Var.get()`.

Lava 0.10's `get()` sends an array one element per message, through its runtime service
(model.py: "FIXME: send a whole vector"): reading the recording sinks of 2 samples of a small
32x32 net took 15 of its 19 s, and `snnc run --compare` on larger nets scales with it. The
sinks stay Lava's stock RingBuffer processes (they are host processes on a chip too); only the
CPU model that runs them writes each step's input to a file as well, which this process reads
once the run is done. The file's rows are time steps: (buffer, *shape), float64 like `get()`.

LavaSession (runner.py) makes one for the sinks it is given and reads them for its caller.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from lava.proc.io.sink import (
    AbstractPyReceiveModel,
    PyReceiveModelFixed,
    PyReceiveModelFloat,
    RingBuffer,
)

PARAM = "snnc_readout"  # the sink's process parameter naming its file


def _rows(model: Any) -> np.ndarray:
    """The model's file as (buffer, *shape), mapped on first use (in the worker)."""
    rows = getattr(model, "_snnc_rows", None)
    if rows is None:
        shape = model.data.shape
        rows = np.memmap(model.proc_params[PARAM], np.float64, "r+",
                         shape=(shape[-1], *shape[:-1]))
        model._snnc_rows = rows
    return rows


def _run_spk(model: Any) -> None:
    if model.proc_params.get(PARAM) is None:  # a sink nobody asked to read this way
        AbstractPyReceiveModel.run_spk(model)
        return
    rows = _rows(model)
    rows[(model.time_step - 1) % len(rows)] = model.a_in.recv()


class FileReceiveFloat(PyReceiveModelFloat):
    """The stock float RingBuffer model, writing to the file instead of its `data` Var."""

    run_spk = _run_spk


class FileReceiveFixed(PyReceiveModelFixed):
    """The stock fixed-point RingBuffer model, writing to the file instead of its `data` Var."""

    run_spk = _run_spk


def _folder() -> str | None:
    shm = Path("/dev/shm")  # memory, not disk, where there is one
    return str(shm) if shm.is_dir() else None


class Readout:
    """Files for the RingBuffer sinks `sinks` (key -> sink), removed by close()."""

    def __init__(self, sinks: Mapping[str, Any], fixed: bool) -> None:
        self._sinks = dict(sinks)
        self.models: dict[type, type] = {}  # Lava's exception_proc_model_map
        self._folder: Path | None = None
        self._paths: dict[str, Path] = {}
        if not self._sinks:
            return
        self.models[RingBuffer] = FileReceiveFixed if fixed else FileReceiveFloat
        self._folder = Path(tempfile.mkdtemp(prefix="snnc-lava-", dir=_folder()))
        for k, (key, sink) in enumerate(self._sinks.items()):
            path = self._folder / f"{k}.f64"
            shape = tuple(sink.data.shape)
            with path.open("wb") as f:  # zeros, as the stock buffer starts
                f.truncate(8 * int(np.prod(shape)))
            sink.proc_params.overwrite(PARAM, str(path))  # a sink run again: its new file
            self._paths[key] = path

    def read(self, key: str) -> np.ndarray:
        """The sink's buffer, as `sink.data.get()` gives it: (*shape, buffer) float64."""
        shape = tuple(self._sinks[key].data.shape)
        rows = np.fromfile(self._paths[key], np.float64).reshape(shape[-1], *shape[:-1])
        return np.ascontiguousarray(np.moveaxis(rows, 0, -1))

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
