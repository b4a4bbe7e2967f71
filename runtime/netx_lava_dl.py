"""Run a netx SDNN file written by snnc with lava-dl's own reader, in Lava's CPU simulation:
`netx.hdf5.Network(net_config=PATH, skip_layers=1)` between a RingBuffer source (the graded
input messages: the whole sample at its first step, 0 after) and a RingBuffer sink on the
output layer's Sigma, as lava-dl's PilotNet SDNN tutorial wires it.

Every sample runs `snnc_settle_steps` steps (or as many as asked), after which a static
sample has settled (its output is final and the synapses hold nothing in flight); between
samples the host zeroes the neurons' state Vars and the synapses' buffers (Lava's stock
processes have no reset of their own), so each sample starts as a fresh network.
`cuba_readout` runs a CUBA file (IF / LIF) the same way.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from snnc.backends.netx.fixed_point import decode, input_messages, settle_steps
from snnc.backends.netx.reader import read_netx
from snnc.compiler.errors import UsageError

INSTALL_HINT = ("pip install --no-deps --ignore-requires-python lava-dl==0.6.0 (next to "
                "lava-nc 0.10.0; `make install` does this)")
# SigmaDelta's (Sigma has sigma only), LIF's; the synapses' buffered output (Conv, Dense)
_STATE_VARS = ("sigma", "act", "residue", "error", "u", "v")
_SYNAPSE_VARS = ("a_buf", "a_buff")


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
    """Zero every neuron's state and every synapse's buffer: a fresh network for the next
    sample (what a sample leaves in flight would otherwise reach the next one)."""
    for layer in net.layers:
        for owner, names in ((layer.neuron, _STATE_VARS),
                             (getattr(layer, "synapse", None), _SYNAPSE_VARS)):
            for name in names:
                var = getattr(owner, name, None)
                if var is not None:
                    var.set(np.zeros(var.shape, np.int32))


def sdnn_sigma(path: str | os.PathLike[str], x: np.ndarray, steps: int | None = None,
               select_tag: str = "fixed_pt") -> np.ndarray:
    """The output Sigma's integers (N, *output shape, snnc's (C, H, W) order) after `steps`
    Lava steps per sample (default: the file's snnc_settle_steps), for samples x (N, *input)."""
    netx = _netx()
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from snnc.backends.lava.runner import LavaSession

    file = read_netx(path)
    steps = settle_steps(file) if steps is None else int(steps)
    sent = input_messages(file, x)
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
    with LavaSession(sink, select_tag, sinks={"sigma": sink}) as lava:
        for k in range(len(x)):
            if k:
                _reset(net)
            lava.run(steps)
        sigma = lava.read("sigma")[..., steps - 1::steps]
    sigma = np.moveaxis(sigma, -1, 0)  # (N, *netx output shape)
    if sigma.ndim == 4:  # (N, W, H, C) -> snnc's (N, C, H, W)
        sigma = sigma.transpose(0, 3, 2, 1)
    return np.rint(sigma).astype(np.int64)


def run_sdnn(path: str | os.PathLike[str], x: np.ndarray, select_tag: str = "fixed_pt",
             steps: int | None = None) -> np.ndarray:
    """The outputs (N, *output shape) of the network in the file for samples x (N, *input),
    decoded as the file's snnc_decode says."""
    return decode(read_netx(path), sdnn_sigma(path, x, steps, select_tag))


def cuba_readout(path: str | os.PathLike[str], bias0: np.ndarray, steps: int,
                 select_tag: str = "fixed_pt") -> np.ndarray:
    """A CUBA netx file (`--target netx`, IF / LIF) run by lava-dl's reader: per sample, layer
    0's bias_mant set to bias0[k] (snnc.backends.netx.input_bias, Lava's (W, H, C) order) and
    `steps` steps from a fresh state; returns the last layer's v summed over the steps
    (N, n_out), snnc's order. The readout decodes it: / (64 * snnc_readout_scale * T)."""
    netx = _netx()
    from lava.proc.monitor.process import Monitor

    from snnc.backends.lava.runner import LavaSession

    net = netx.hdf5.Network(net_config=str(path))
    first = net.layers[0].neuron
    if tuple(first.bias_mant.shape) != tuple(bias0.shape[1:]):
        raise UsageError(f"{path}: layer 0 has {tuple(first.bias_mant.shape)} neurons, the "
                         f"input biases are {tuple(bias0.shape[1:])}")
    first.bias_mant.init = np.asarray(bias0[0], np.int32)  # the runtime is not up yet
    monitor = Monitor()
    monitor.probe(net.layers[-1].neuron.v, steps * len(bias0))
    with LavaSession(net, select_tag) as lava:
        for k in range(len(bias0)):
            if k:
                _reset(net)
                first.bias_mant.set(np.asarray(bias0[k], np.int32))
            lava.run(steps)
        data = monitor.get_data()
    v = np.asarray(next(iter(next(iter(data.values())).values())), np.float64)
    v = v.reshape(len(bias0), steps, *v.shape[1:]).sum(axis=1)
    if v.ndim == 4:  # (N, W, H, C) -> snnc's (N, C, H, W)
        v = v.transpose(0, 3, 2, 1)
    return v.reshape(len(bias0), -1)
