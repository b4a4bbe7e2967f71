"""Run a netx SDNN file written by snnc with lava-dl's own reader, in Lava's CPU simulation:
`netx.hdf5.Network(net_config=PATH, skip_layers=1)` between a RingBuffer source (the graded
input messages: the whole sample at its first step, 0 after) and a RingBuffer sink on the
output layer's Sigma, as lava-dl's PilotNet SDNN tutorial wires it.

Every sample runs `snnc_settle_steps` steps, after which a static sample has settled (its
output is final and the synapses hold nothing in flight); between samples the host resets the
neurons' state Vars (Lava's stock processes have no reset of their own), so each sample starts
from zero as in a fresh network.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from snnc.backends.netx.sdnn import messages
from snnc.compiler.errors import UsageError

INSTALL_HINT = ("pip install --no-deps --ignore-requires-python lava-dl==0.6.0 (next to "
                "lava-nc 0.10.0; `make install` does this)")
_STATE_VARS = ("sigma", "act", "residue", "error")  # SigmaDelta's; Sigma has sigma only


def lava_dl_available() -> bool:
    return importlib.util.find_spec("lava") is not None and \
        importlib.util.find_spec("lava.lib.dl") is not None


def _netx() -> Any:
    if not lava_dl_available():
        raise UsageError(f"running a netx file needs lava-dl 0.6.0, which is not installed: "
                         f"{INSTALL_HINT}")
    from snnc.backends.lava import require_lava

    require_lava("lava-dl's netx")
    from lava.lib.dl import netx

    return netx


def _reset(net: Any) -> None:
    for layer in net.layers:
        for name in _STATE_VARS:
            var = getattr(layer.neuron, name, None)
            if var is not None:
                var.set(np.zeros(var.shape, np.int32))


def run_sdnn(path: str | os.PathLike[str], x: np.ndarray, select_tag: str = "fixed_pt"
             ) -> np.ndarray:
    """The outputs (N, *output shape) of the network in the file for samples x (N, *input),
    decoded as the file's snnc_decode says."""
    import h5py

    netx = _netx()
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from snnc.backends.lava.runner import LavaSession

    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
    steps = int(attrs["snnc_settle_steps"])
    sent = messages(x, float(attrs["snnc_input_unit"]), bool(attrs["snnc_input_flat"]))
    net = netx.hdf5.Network(net_config=str(path), skip_layers=1)
    if tuple(net.inp.shape) != tuple(sent.shape[1:]):
        raise UsageError(f"{path}: the network reads {tuple(net.inp.shape)}, the samples "
                         f"give {tuple(sent.shape[1:])}")
    data = np.zeros((*sent.shape[1:], steps * len(x)), np.int32)
    data[..., ::steps] = np.moveaxis(sent, 0, -1)  # each sample's first step
    source = Source(data=data)
    sink = Sink(shape=tuple(int(d) for d in net.out.shape), buffer=steps * len(x))
    source.s_out.connect(net.inp)
    net.out.connect(sink.a_in)
    with LavaSession(sink, select_tag) as lava:
        for k in range(len(x)):
            if k:
                _reset(net)
            lava.run(steps)
        sigma = np.asarray(sink.data.get(), np.float64)[..., steps - 1::steps]
    sigma = np.moveaxis(sigma, -1, 0)  # (N, *netx output shape)
    if sigma.ndim == 4:  # (N, W, H, C) -> snnc's (N, C, H, W)
        sigma = sigma.transpose(0, 3, 2, 1)
    shape = tuple(int(d) for d in attrs["snnc_output_shape"])
    out = sigma.reshape(len(x), -1) * float(attrs["snnc_output_unit"]) \
        + np.asarray(attrs["snnc_output_bias"], np.float64).reshape(-1)
    return out.reshape(len(x), *shape)
