"""Lava's fixed point for a netx SDNN file, in NumPy: the network that lava-dl 0.6.0's
`netx.hdf5.Network(net_config=PATH, skip_layers=1)` builds from the file, run as Lava's
CPU simulation (fixed_pt) runs it, integer for integer (runtime/netx_run.py runs a `.net`
file with it; tests/test_netx_lava_dl.py checks it against lava-dl).

What the reader and Lava's process models do with the file's integers (lava/lib/dl/netx/
hdf5.py, blocks/process.py, utils.py; lava/proc/sdn, conv, dense):

    conv      Lava's Conv: a = wrap24(cross-correlation of the message with the kernel as
              written), the same padding on both sides of an axis; weight_exp is ignored
    dense     netx's optimize_weight_bits shifts the weights left by k bits (weight_exp = -k);
              Lava's Dense clips them to 8 bits, truncates them to num_weight_bits and sends
              a = int32(W' @ s) >> k (floor): W @ s unless the int32 product wraps
    SigmaDelta  (vth and bias << 12: spike_exp 6 + state_exp 6, the reader's fixed values)
              sigma += a;  act_new = relu(sigma + bias << 12)
              delta = act_new - act + residue;  s = delta if |delta| >= vThMant << 12 else 0
              residue = delta - s;  act = act_new;  message = s >> 6 (floor)
    Sigma     (sigma_output) sigma += a, sent every step: the output

all in int32 as Lava's models hold them (a sigma past int32, where Lava would wrap, raises
ModelError instead; SdnnRun.peak tells how many bits each layer's state took: Loihi 2 holds
24, Lava's CPU models 32). The clock is Lava's: the source sends the sample at
step 1 (0 after), every synapse sends at step t what it computed from the messages of step
t - 1, and every neuron is live from step 1 (a layer sends relu(bias) before its input
arrives). So a chain of K synapse layers has settled after K + 1 steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from snnc.compiler.errors import InputFileError, ModelError, UsageError

from .export import Layer, NetxNetwork
from .sdnn import messages

SPIKE_EXP = 6  # hdf5.Network(spike_exp=6), the reader's default
STATE_EXP = 6  # hard-wired in the reader for SDNN neurons
CONV_BITS = 24  # Lava's fixed-point Conv wraps a_out to 24 signed bits
INT32_MAX = 2**31 - 1


def _wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap to `bits` signed bits (Lava's int32 arithmetic, signed_clamp)."""
    base = 1 << bits
    return (x + base // 2) % base - base // 2


@dataclass(frozen=True, eq=False)
class _Conv:
    weight: np.ndarray  # (C_out, C_in / groups, kH, kW) int64, torch's cross-correlation
    stride: tuple[int, int]  # (y, x)
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    out_shape: tuple[int, int, int]  # (C, H, W)

    def __call__(self, s: np.ndarray) -> np.ndarray:
        """a (N, C_out, H, W) for messages s (N, C_in, H_in, W_in)."""
        n = len(s)
        (ph, pw), (sh, sw), (dh, dw) = self.padding, self.stride, self.dilation
        o, cg, kh, kw = self.weight.shape
        x = np.pad(s.astype(np.int64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        win = sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
        win = win[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C_in, H, W, kH, kW)
        _, h, w = self.out_shape
        win = win[:, :, :h, :w].reshape(n, self.groups, cg, h, w, kh, kw)
        kernel = self.weight.reshape(self.groups, o // self.groups, cg, kh, kw)
        a = np.einsum("ngchwij,gocij->ngohw", win, kernel, optimize=True)
        return _wrap(a.reshape(n, o, h, w), CONV_BITS)  # Lava: signed_clamp(a, 24)


@dataclass(frozen=True, eq=False)
class _Dense:
    weight: np.ndarray  # (n_out, n_in) int64: netx's shifted, Lava's clipped and truncated
    shift: int  # -weight_exp

    def __call__(self, s: np.ndarray) -> np.ndarray:
        a = _wrap(s.reshape(len(s), -1).astype(np.int64) @ self.weight.T, 32)
        return a >> self.shift


@dataclass(frozen=True, eq=False)
class _Block:
    name: str
    synapse: _Conv | _Dense
    shape: tuple[int, ...]  # (C, H, W) or (n,): snnc's order
    bias: np.ndarray | None  # int32, broadcast to `shape`, already << 12; None: Sigma
    vth: int  # vThMant << 12


def _netx_weight_bits(weight: np.ndarray) -> tuple[np.ndarray, int]:
    """lava.lib.dl.netx.utils.optimize_weight_bits then Lava's Dense (clip_weights to 8
    bits, truncate_weights to num_weight_bits): the int32 weights the Dense model multiplies
    and its right shift."""
    w = weight.astype(np.int64)
    hi, lo = int(w.max(initial=0)), int(w.min(initial=0))
    if hi == lo == 0:
        return w, 0  # netx's own code divides by zero here; nothing reaches the output
    if (hi > 254 and lo < 0) or (lo < -256 and hi > 0):
        w = np.clip(w, -256, 254)
        hi, lo = int(w.max()), int(w.min())
    if hi < 0:
        signed, scale = 0, -256 / lo
    elif lo >= 0:
        signed, scale = 0, 255 / hi
    else:
        signed, scale = 1, min(127 / hi, -128 / lo)
    scale_bits = math.floor(math.log2(scale)) + signed
    n = 8
    while n > 0 and np.any(w % (1 << n)):
        n -= 1
    num_weight_bits = 8 - scale_bits - (n - signed)
    w = w << scale_bits if scale_bits >= 0 else w >> -scale_bits
    # Lava's Dense: its own sign mode, clip to 8 bits, drop the low bits past num_weight_bits
    mixed = int(w.min() < 0 < w.max())
    inhibitory = int(w.max() <= 0 < -w.min())
    w = -w if inhibitory else w
    w = np.clip(w, -256 * mixed, 255)
    drop = 8 - num_weight_bits + mixed
    w = (w >> drop) << drop if drop >= 0 else w << -drop
    return (-w if inhibitory else w), scale_bits


def _shape(data: dict) -> tuple[int, ...]:
    return tuple(int(d) for d in np.asarray(data["shape"]).reshape(-1))


def _conv(data: dict, in_shape: tuple[int, ...], name: str) -> _Conv:
    if len(in_shape) != 3:
        raise InputFileError(f"layer {name}: a conv layer reads {list(in_shape)}, but netx "
                             "convolutions read image layers (C, H, W)")
    weight = np.asarray(data["weight"]).astype(np.int64)
    weight = weight.reshape(weight.shape[:4])

    def pair(key: str, default: int) -> tuple[int, int]:
        value = np.asarray(data.get(key, default)).reshape(-1)
        return (int(value[0]), int(value[-1]))

    conv = _Conv(weight, pair("stride", 1), pair("padding", 0), pair("dilation", 1),
                 int(np.asarray(data.get("groups", 1)).reshape(-1)[0]), _shape(data))
    c, h, w = in_shape
    spans = [d * (k - 1) + 1 for d, k in zip(conv.dilation, weight.shape[2:], strict=True)]
    out = (weight.shape[0], *((size + 2 * p - span) // s + 1 for size, p, span, s in zip(
        (h, w), conv.padding, spans, conv.stride, strict=True)))
    if out != conv.out_shape or c != weight.shape[1] * conv.groups:
        raise InputFileError(f"layer {name}: a conv of kernel {list(weight.shape)} on "
                             f"{list(in_shape)} gives {list(out)}, the file says "
                             f"{list(conv.out_shape)}")
    return conv


def _bias(bias: np.ndarray, shape: tuple[int, ...], i: int) -> np.ndarray:
    """A layer's bias broadcast to its neurons, (C, H, W) or (n,), as netx's blocks do: one
    per neuron (netx's (W, H, C) order for images) or, for images, one per channel."""
    bias = bias.astype(np.int32)
    if bias.size == math.prod(shape):
        flat = bias.reshape(shape[::-1]).transpose() if len(shape) == 3 else bias
        return np.ascontiguousarray(flat.reshape(shape))
    if len(shape) == 3 and bias.size == shape[0]:
        return np.ascontiguousarray(np.broadcast_to(bias.reshape(-1, 1, 1), shape))
    raise InputFileError(f"layer {i}: a bias of {bias.size} values for neurons {list(shape)}")


def plan(net: NetxNetwork) -> list[_Block]:
    """The blocks that hdf5.Network(net_config, skip_layers=1) builds from an SDNN file."""
    layers: list[Layer] = net.layers
    if not layers or layers[0].kind != "input":
        raise InputFileError("a netx SDNN file starts with its input layer (layer 0)")
    shape = _shape(layers[0].data)
    blocks = []
    for i, layer in enumerate(layers[1:], start=1):
        if layer.kind == "flatten":
            shape = (math.prod(shape),)
            continue
        if layer.kind not in ("conv", "dense"):
            raise InputFileError(f"layer {i} is a netx '{layer.kind}' layer; the NumPy netx "
                                 "simulation runs conv, flatten and dense layers")
        neuron = layer.neuron or {}
        if layer.neuron_type != "SDNN":
            raise UsageError(f"layer {i} has {layer.neuron_type} neurons; the NumPy netx "
                             "simulation runs SDNN files (--target netx --neuron sigma-delta)")
        if layer.kind == "conv":
            synapse: _Conv | _Dense = _conv(layer.data, shape, str(i))
            out: tuple[int, ...] = synapse.out_shape
        else:
            weight = np.asarray(layer.data["weight"]).astype(np.int64)
            out = _shape(layer.data)
            weight = weight.reshape(math.prod(out), -1)
            if weight.shape[1] != math.prod(shape):
                raise InputFileError(f"layer {i}: a dense layer of {weight.shape[1]} inputs "
                                     f"reads {math.prod(shape)} values")
            synapse = _Dense(*_netx_weight_bits(weight))
        sigma = "sigma_output" in neuron
        bias = layer.data.get("bias")
        if sigma and bias is not None:
            raise InputFileError(f"layer {i}: netx's Sigma output layer takes no bias")
        scale = 1 << (SPIKE_EXP + STATE_EXP)
        if sigma:
            b = None
        elif bias is None:
            b = np.zeros(out, np.int32)
        else:  # int32 as Lava holds it (the product wraps there too)
            b = _bias(np.asarray(bias).astype(np.int64), out, i) * np.int32(scale)
        vth = 0 if sigma else int(np.asarray(neuron["vThMant"]).reshape(-1)[0]) * scale
        name = str(layer.attrs.get("snnc_layer", i))
        blocks.append(_Block(name, synapse, out, b, vth))
        shape = out
    if not blocks or blocks[-1].bias is not None:
        raise InputFileError("the last layer of a netx SDNN file run here is a Sigma output "
                             "(neuron sigma_output)")
    if any(b.bias is None for b in blocks[:-1]):
        raise InputFileError("only the last layer of the file may be a Sigma output")
    return blocks


@dataclass(frozen=True)
class SdnnRun:
    sigma: np.ndarray  # (N, *output shape) int64: the output Sigma after the last step
    messages: dict[str, np.ndarray]  # layer -> (N,) nonzero messages sent over the steps
    peak: dict[str, int]  # layer -> the largest |sigma| it reached (Loihi holds 24 bits)


def _accumulate(sigma: np.ndarray, a: np.ndarray, name: str, t: int) -> int:
    """sigma += a in place; Lava's int32 would wrap silently, which no network means:
    refuse it instead. Returns the new peak |sigma|."""
    total = sigma.astype(np.int64) + a
    peak = int(np.abs(total).max(initial=0))
    if peak > INT32_MAX:
        raise ModelError(f"layer '{name}': its sigma reached {peak} at step {t}, beyond the "
                         "int32 that Lava's fixed-point Sigma / SigmaDelta hold (Lava would "
                         "wrap it): the inputs are far beyond the calibration data's range")
    sigma[...] = total
    return peak


def input_shape(net: NetxNetwork) -> tuple[int, ...]:
    """The graded input messages' shape per sample, in netx's order: (W, H, C) or (n,)."""
    shape = _shape(net.layers[0].data)
    first = next((layer.kind for layer in net.layers[1:] if layer.kind != "flatten"), "")
    return shape[::-1] if len(shape) == 3 and first == "conv" else (math.prod(shape),)


def simulate_sdnn(net: NetxNetwork, sent: np.ndarray, steps: int) -> SdnnRun:
    """Runs the file's network on input messages `sent` (N, *input_shape(net)) int, each
    sample for `steps` Lava steps from a fresh state, its messages at step 1."""
    blocks = plan(net)
    want = input_shape(net)
    sent = np.asarray(sent)
    if tuple(sent.shape[1:]) != want or not np.issubdtype(sent.dtype, np.integer):
        raise UsageError(f"the network reads integer messages of shape {list(want)} per "
                         f"sample, got {sent.dtype} {list(sent.shape[1:])}")
    if steps < 1:
        raise UsageError(f"steps must be at least 1, got {steps}")
    n = len(sent)
    x = sent.astype(np.int32)
    first = _shape(net.layers[0].data)
    x = x.reshape(n, *first) if len(want) == 1 else x.transpose(0, 3, 2, 1)  # -> (C, H, W)
    zero_in = np.zeros_like(x)
    bufs = [np.zeros((n, *b.shape), np.int32) for b in blocks]  # what each synapse sends next
    state = [[np.zeros((n, *b.shape), np.int32) for _ in range(3)] for b in blocks[:-1]]
    sigma_out = np.zeros((n, *blocks[-1].shape), np.int32)
    counts = {b.name: np.zeros(n, np.int64) for b in blocks[:-1]}
    peak = {b.name: 0 for b in blocks}
    for t in range(1, steps + 1):
        msg = x if t == 1 else zero_in
        busy = t == 1
        for k, block in enumerate(blocks):
            a = bufs[k]
            incoming = msg.reshape(n, *_in_shape(block, msg))
            bufs[k] = (block.synapse(incoming).astype(np.int32).reshape(n, *block.shape)
                       if msg.any() else np.zeros_like(a))
            busy = busy or bool(a.any())
            if block.bias is None:  # Sigma
                peak[block.name] = max(peak[block.name], _accumulate(sigma_out, a, block.name, t))
                continue
            sigma, act, residue = state[k]
            peak[block.name] = max(peak[block.name], _accumulate(sigma, a, block.name, t))
            new = np.maximum(sigma + block.bias, 0)
            delta = new - act + residue
            s = np.where(np.abs(delta) >= block.vth, delta, 0).astype(np.int32)
            residue[...] = delta - s
            act[...] = new
            msg = s >> STATE_EXP
            counts[block.name] += np.count_nonzero(msg.reshape(n, -1), axis=1)
            busy = busy or bool(msg.any())
        if not busy and not any(b.any() for b in bufs):
            break  # settled: nothing sent, nothing in flight; later steps change nothing
    return SdnnRun(sigma_out.astype(np.int64), counts, peak)


def _in_shape(block: _Block, msg: np.ndarray) -> tuple[int, ...]:
    if isinstance(block.synapse, _Dense):
        return (-1,)  # netx flattens (C, H, W) in that order, as transpose([2, 1, 0])
    return tuple(msg.shape[1:])


def decode(net: NetxNetwork, sigma: np.ndarray) -> np.ndarray:
    """The outputs (N, *snnc_output_shape) float64 of Sigma values: the host's affine map."""
    attrs = net.attrs
    missing = [k for k in ("snnc_output_unit", "snnc_output_bias", "snnc_output_shape")
               if k not in attrs]
    if missing:
        raise InputFileError(f"the netx file has no {', '.join(missing)}: it was not written "
                             "by snnc's --target netx --neuron sigma-delta")
    n = len(sigma)
    shape = tuple(int(d) for d in np.asarray(attrs["snnc_output_shape"]).reshape(-1))
    out = np.asarray(sigma, np.float64).reshape(n, -1) * float(attrs["snnc_output_unit"]) \
        + np.asarray(attrs["snnc_output_bias"], np.float64).reshape(-1)
    return out.reshape(n, *shape)


def input_messages(file: NetxNetwork, x: np.ndarray) -> np.ndarray:
    """The graded input messages (N, *netx input shape) int32 for samples x (N, *input)."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise UsageError(f"samples are (N, *input shape), got shape {list(x.shape)}")
    shape = _shape(file.layers[0].data)
    if math.prod(x.shape[1:]) != math.prod(shape):
        raise UsageError(f"the network reads {math.prod(shape)} values per sample "
                         f"({list(shape)}), the samples have {list(x.shape[1:])}")
    return messages(x.reshape(len(x), *shape), float(file.attrs["snnc_input_unit"]),
                    bool(file.attrs.get("snnc_input_flat", 0)))


def settle_steps(net: NetxNetwork) -> int:
    """Steps after which a static sample has settled: synapse layers + 1."""
    return int(net.attrs.get("snnc_settle_steps", len(plan(net)) + 1))


__all__: Sequence[str] = ("SdnnRun", "decode", "input_messages", "input_shape", "plan",
                          "settle_steps", "simulate_sdnn")
