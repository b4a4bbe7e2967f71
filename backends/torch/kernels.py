"""The torch engine's per-op kernels: one function per IR op that runs in a time step, built
once per node and device, with the node's parameters moved to the device once (and kept while
the node lives: tuning and calibration simulate many graphs sharing most of their nodes).

Each kernel computes what the op's numpy `evaluate` computes (compiler/ops), in float32:
elementwise ops with the same operations in the same order (bit-equal), convolutions, dense
layers and pooling with torch's reductions (equal to float rounding). An op or a setting torch
has no kernel for (dilated average pooling, asymmetric pads with ceil mode, 4-d convs, ops added
later) runs its numpy `evaluate` on the host: slower, never different.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from snnc.compiler.ir.graph import Node
from snnc.compiler.ops import opdef
from snnc.compiler.ops.elementwise import batchnorm_scale_shift, channel_view

Tensor = torch.Tensor
Kernel = Callable[[list[Tensor]], Tensor]

# node -> {(key, device): tensor}
_PARAMS: weakref.WeakKeyDictionary[Node, dict[tuple[str, str], Tensor]] = (
    weakref.WeakKeyDictionary())
_DENSE_SPARSE = 1 << 24  # a sparse layer up to this many weights runs as a dense product
_OFFSET_WINDOWS = 9  # pooling windows up to 3x3 are summed as strided views


def param(node: Node, key: str, device: torch.device,
          make: Callable[[], np.ndarray] | None = None) -> Tensor:
    """node.params[key] (or make()) as a float32 tensor on `device`, cached per node."""
    cache = _PARAMS.setdefault(node, {})
    slot = (key, str(device))
    if slot not in cache:
        value = make() if make is not None else node.params[key]
        cache[slot] = torch.from_numpy(np.array(value, dtype=np.float32)).to(device)
    return cache[slot]


def _torch_pads(begin: Sequence[int], end: Sequence[int]) -> list[int]:
    """F.pad's order: the last axis first, (begin, end) for each."""
    out: list[int] = []
    for b, e in zip(reversed(list(begin)), reversed(list(end)), strict=True):
        out += [int(b), int(e)]
    return out


def _numpy(node: Node, device: torch.device) -> Kernel:
    evaluate = opdef(node.op).evaluate

    def run(inputs: list[Tensor]) -> Tensor:
        values = [np.ascontiguousarray(t.cpu().numpy()) for t in inputs]
        out = np.array(evaluate(node, values), dtype=np.float32)  # a fresh, writable copy
        return torch.from_numpy(out).to(device)
    return run


def _conv(node: Node, device: torch.device) -> Kernel | None:
    a = node.attrs
    w = param(node, "weight", device)
    b = param(node, "bias", device, lambda: np.asarray(node.params["bias"]).reshape(-1))
    nsp = w.dim() - 2
    if nsp not in (1, 2, 3):
        return None
    fn = (F.conv1d, F.conv2d, F.conv3d)[nsp - 1]
    begin, end = list(a["pads"][:nsp]), list(a["pads"][nsp:])
    stride, dilation, groups = list(a["strides"]), list(a["dilations"]), int(a["groups"])
    if begin == end:
        return lambda i: fn(i[0], w, b, stride, begin, dilation, groups)
    pads = _torch_pads(begin, end)
    return lambda i: fn(F.pad(i[0], pads), w, b, stride, 0, dilation, groups)


def _linear(node: Node, device: torch.device) -> Kernel:
    wt = param(node, "weight.T", device, lambda: np.asarray(node.params["weight"]).T)
    b = param(node, "bias", device)
    # x @ W.T + b as two operations, the reference's (not addmm's fused bias)
    return lambda i: torch.matmul(i[0], wt).add_(b)


def _sparse(node: Node, device: torch.device) -> Kernel | None:
    from snnc.compiler.ops.sparse import csr

    n_out, n_in = int(np.prod(node.shape)), int(node.attrs["n_in"])
    if n_out * n_in > _DENSE_SPARSE:
        return None
    wt = param(node, "dense.T", device, lambda: csr(node).toarray().T)
    b = param(node, "bias", device, lambda: np.asarray(node.params["bias"]).reshape(-1))
    shape = tuple(node.shape)
    return lambda i: torch.matmul(i[0].reshape(len(i[0]), -1), wt).add_(b).reshape(
        len(i[0]), *shape)


def _pool(node: Node, device: torch.device) -> Kernel | None:
    """Max or average pooling where torch's windows are snnc's (symmetric pads within half a
    window, which is also where torch's ceil-mode rule and divisors are ONNX's)."""
    a = node.attrs
    kernel, nsp = list(a["kernel"]), len(a["kernel"])
    begin, end = list(a["pads"][:nsp]), list(a["pads"][nsp:])
    stride, dilation, ceil = list(a["strides"]), list(a["dilations"]), bool(a["ceil_mode"])
    if not any(begin + end) and not ceil and int(np.prod(kernel)) <= _OFFSET_WINDOWS:
        return _offsets(node.op, kernel, stride, dilation, list(node.shape[1:]))
    if nsp not in (1, 2, 3) or begin != end or any(
            2 * p > d * (k - 1) + 1 for p, k, d in zip(begin, kernel, dilation, strict=True)):
        return None
    if node.op == "maxpool":
        fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[nsp - 1]
        return lambda i: fn(i[0], kernel, stride, begin, dilation, ceil)
    if any(d != 1 for d in dilation):
        return None
    fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[nsp - 1]
    include = bool(a["count_include_pad"])
    return lambda i: fn(i[0], kernel, stride, begin, ceil, include)


def _offsets(op: str, kernel: list[int], stride: list[int], dilation: list[int],
             out: list[int]) -> Kernel:
    """A small unpadded window as one strided view per kernel offset, combined in the
    reference's order (compiler/ops/windows.reduce_windows): bit-equal to it, and 3-5x faster
    than torch's CPU pooling on these maps."""
    index = [tuple(slice(d * dil, d * dil + s * (m - 1) + 1, s)
                   for d, dil, s, m in zip(offset, dilation, stride, out, strict=True))
             for offset in np.ndindex(*kernel)]
    size = np.float32(np.prod(kernel))

    def run(i: list[Tensor]) -> Tensor:
        x = i[0]
        acc = x[(slice(None), slice(None), *index[0])].clone()
        for view in index[1:]:
            if op == "maxpool":
                torch.maximum(acc, x[(slice(None), slice(None), *view)], out=acc)
            else:
                acc += x[(slice(None), slice(None), *view)]
        return acc if op == "maxpool" else acc.div_(float(size))
    return run


def _layout(node: Node) -> Kernel | None:
    a = node.attrs
    if node.op == "flatten":
        return lambda i: i[0].reshape(len(i[0]), -1)
    if node.op == "reshape":
        shape = tuple(a["shape"])
        return lambda i: i[0].reshape(len(i[0]), *shape)
    if node.op == "transpose":
        perm = [0, *[p + 1 for p in a["perm"]]]
        return lambda i: i[0].permute(*perm).contiguous()
    if node.op == "concat":
        axis = int(a["axis"]) + 1
        return lambda i: torch.cat(i, dim=axis)
    if node.op == "pad":
        pads, value = _torch_pads(a["begin"], a["end"]), float(a["value"])
        return lambda i: F.pad(i[0], pads, value=value)
    if node.op == "slice" and all(s > 0 for s in a["steps"]):
        from snnc.compiler.ops.layout import _slices

        index = (slice(None), *_slices(node))
        return lambda i: i[0][index].contiguous()
    return None


def _elementwise(node: Node, device: torch.device) -> Kernel | None:
    a = node.attrs
    if node.op == "add":
        def add(i: list[Tensor]) -> Tensor:
            out = i[0] + i[1] if len(i) > 1 else i[0].clone()
            for x in i[2:]:
                out += x
            return out
        return add
    if node.op == "affine":
        scale, shift = param(node, "scale", device), param(node, "shift", device)
        return lambda i: i[0] * scale + shift
    if node.op == "batchnorm":
        rank = len(node.shape)
        scale = param(node, "bn.scale", device,
                      lambda: channel_view(batchnorm_scale_shift(node)[0], rank))
        shift = param(node, "bn.shift", device,
                      lambda: channel_view(batchnorm_scale_shift(node)[1], rank))
        return lambda i: i[0] * scale + shift
    if node.op == "global_avgpool":
        return lambda i: i[0].mean(dim=tuple(range(2, i[0].dim())), keepdim=True)
    if node.op == "relu":
        return lambda i: torch.clamp_min(i[0], 0.0)
    if node.op == "clip":
        lo, hi = a.get("min"), a.get("max")
        return lambda i: torch.clamp(i[0], lo, hi)
    return None


def build(node: Node, device: torch.device) -> Kernel:
    """The kernel computing `node` from its inputs' values on `device`."""
    made: Kernel | None
    if node.op == "conv":
        made = _conv(node, device)
    elif node.op == "linear":
        made = _linear(node, device)
    elif node.op == "sparse":
        made = _sparse(node, device)
    elif node.op in ("maxpool", "avgpool"):
        made = _pool(node, device)
    else:
        made = _layout(node) or _elementwise(node, device)
    return made if made is not None else _numpy(node, device)
