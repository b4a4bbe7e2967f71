"""Run a netx SDNN file (`snnc compile --target netx --neuron sigma-delta`, a `.net`): with
NumPy, bit-exact to what lava-dl's netx reader builds in Lava's fixed_pt CPU simulation
(backends/netx/fixed_point.py), or with lava-dl itself (runtime/netx_lava_dl.py).

Each sample starts from a fresh network: its quantized input, round(x / snnc_input_unit), is
sent as graded messages at the first step and 0 after, and the output is read after
snnc_settle_steps steps (when a static sample has settled): output = Sigma *
snnc_output_unit + snnc_output_bias.
"""

from __future__ import annotations

import os

import numpy as np

from snnc.backends.netx.export import NetxNetwork
from snnc.backends.netx.fixed_point import (
    SdnnRun,
    decode,
    input_messages,
    settle_steps,
    simulate_sdnn,
)
from snnc.backends.netx.reader import read_netx
from snnc.compiler.errors import InputFileError, UsageError
from snnc.compiler.targets import RUN_BACKENDS as BACKENDS  # NumPy, or lava-dl in Lava


def _open_sdnn(path: str | os.PathLike[str]) -> NetxNetwork:
    """The file's layers, or the error saying why snnc does not run it."""
    if not os.path.isfile(path):
        raise InputFileError(f"{path}: no such file")
    file = read_netx(path)
    if file.attrs.get("snnc_neuron") != "sigma-delta" or "snnc_input_unit" not in file.attrs:
        raise UsageError(f"{path}: not a netx SDNN file written by snnc (compile with --target "
                         "netx --neuron sigma-delta); snnc runs those only, since a CUBA "
                         "file's input is the first layer's bias, which needs the compiled "
                         "network (snnc.backends.netx.input_bias)")
    return file


def simulate_netx_file(path: str | os.PathLike[str], x: np.ndarray, steps: int | None = None
                       ) -> tuple[np.ndarray, SdnnRun]:
    """The decoded outputs (N, *output shape) of the file's network for samples x and the
    NumPy run behind them (the output Sigma's integers, messages per layer)."""
    file = _open_sdnn(path)
    steps = settle_steps(file) if steps is None else int(steps)
    run = simulate_sdnn(file, input_messages(file, x), steps)
    return decode(file, run.sigma), run


def run_netx_numpy(path: str | os.PathLike[str], x: np.ndarray, steps: int | None = None
                   ) -> np.ndarray:
    """The outputs (N, *output shape) float64 of a netx SDNN file for samples x (N, *input),
    simulated in NumPy as lava-dl's reader and Lava's fixed_pt run it (equal to
    runtime.netx_lava_dl.run_sdnn, integer for integer); steps per sample default to the
    file's snnc_settle_steps."""
    return simulate_netx_file(path, x, steps)[0]


def run_netx(path: str | os.PathLike[str], x: np.ndarray, *, backend: str = "numpy",
             steps: int | None = None) -> np.ndarray:
    """`snnc run NET.net`: the outputs of a netx SDNN file for samples x, simulated in NumPy
    (bit-exact, fast) or in Lava with lava-dl's own reader (backend "lava")."""
    if backend not in BACKENDS:
        raise UsageError(f"a netx file runs with backend numpy or lava, not '{backend}'")
    if backend == "numpy":
        return run_netx_numpy(path, x, steps)
    from .netx_lava_dl import sdnn_sigma

    return decode(_open_sdnn(path), sdnn_sigma(path, x, steps))
