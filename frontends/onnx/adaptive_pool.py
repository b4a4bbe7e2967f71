"""AdaptiveAvgPool as the dynamo exporter writes it when the output size does not divide the
input (torchvision's VGG and AlexNet heads on small inputs): a gather of every window's cells,
then a masked sum and a division by each window's size.

    val_61 = Transpose <perm = [2, 3, 0, 1]> (x)          # [H, W, N, C]: spatial axes first
    val_69 = GatherND (val_61, cells)                     # [7, 4, 7, 4, N, C]
    index  = Transpose <perm = [4, 5, 0, 1, 2, 3]> (val_69)
    masked = Where (pad_mask, 0, index)                   # zero the cells past a short window
    sum    = Gather/Add ... (masked)                      # 16 Gathers and Adds
    y      = Div (sum, window_sizes)                      # [N, C, 7, 7]

match:   from a Transpose of an activation that moves the batch axis, the nodes that read only
         it, each other and constants (gathers with constant indices, Where with a constant
         condition, Add, Mul/Div by constants, reshapes...), in graph order, up to the first
         point where one tensor of shape [N, C, o...] is all that is read outside them. Such a
         region is linear in x.
check:   the region run on a random input (onnx's reference evaluator) equals adaptive average
         pooling to o: window i of an axis of size n averages cells floor(i n / o) ..
         ceil((i + 1) n / o) - 1. A linear map that agrees with it on random data is it.
rewrite: per axis, the windows in runs of equal size and equal stride; each run is a slice and
         an avgpool over that axis, and the runs are concatenated (an axis that o divides is one
         avgpool). Only IR ops every target already handles (all linear: synapses on Loihi).

    Before: the 40-node region above.
    After:  %slice1 = slice[rows 0:7](%x); %avgpool1 = avgpool[k=3x1, s=2,1](%slice1); ...
            %concat1 = concat[axis=1](...); the same along the columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import onnx

from .context import ImportContext, label
from .reference import NONDETERMINISTIC, evaluate_node

# ops a gather region may use; each is linear in the activation given the rules in _linear
_REGION_OPS = {"Transpose", "GatherND", "Gather", "GatherElements", "Where", "Add", "Sub", "Mul",
               "Div", "Sum", "Neg", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Concat",
               "Slice", "Expand", "Identity", "Cast", "CastLike", "Shape", "ReduceSum",
               "ReduceMean"}
_MAX_REGION = 4096  # nodes; a 7x7 head on any input is under 100
_MAX_PROBE = 1 << 24  # values in the random input the check runs on (64 MiB)


def starts_here(ctx: ImportContext, node: onnx.NodeProto) -> bool:
    """A Transpose of an activation that moves the batch axis: the start of a gather."""
    if node.op_type != "Transpose" or not node.input or not ctx.is_value(node.input[0]):
        return False
    perm = ctx.attr("perm")
    return perm is not None and len(perm) > 0 and perm[0] != 0 and len(
        ctx.shape(node.input[0])) >= 2


def adaptive_windows(n: int, o: int) -> list[tuple[int, int]]:
    """torch's AdaptiveAvgPool windows [start, end) on an axis of size n, o outputs."""
    return [(i * n // o, -(-(i + 1) * n // o)) for i in range(o)]


def adaptive_avgpool(x: np.ndarray, out: Sequence[int]) -> np.ndarray:
    """Reference: x [N, C, *spatial] pooled to [N, C, *out], one axis at a time."""
    y = x.astype(np.float64)
    for d, o in enumerate(out):
        axis = d + 2
        parts = [y.take(range(s, e), axis=axis).mean(axis=axis, keepdims=True)
                 for s, e in adaptive_windows(y.shape[axis], o)]
        y = np.concatenate(parts, axis=axis)
    return y


def import_region(ctx: ImportContext, model: onnx.ModelProto, nodes: Sequence[onnx.NodeProto],
                  start: int, fold: Callable[[onnx.NodeProto], None]) -> set[int]:
    """Import the gather region starting at nodes[start] as adaptive average pooling, or raise
    the Transpose's error with the reason the region is not one. Returns the indices of the
    nodes it imported (the region, and constant nodes folded on the way)."""
    entry = nodes[start]
    x = entry.input[0]
    channels, *spatial = ctx.shape(x)
    perm = list(ctx.attr("perm"))
    if 2 * math.prod(ctx.shape(x)) > _MAX_PROBE:
        raise ctx.fail(f"perm {perm} moves the batch axis; only perms that keep axis 0 first "
                       "are supported (the activation is too large to check whether the "
                       "gather it starts is an adaptive average pooling)")
    rng = np.random.default_rng(0)
    probe = rng.standard_normal((2, channels, *spatial)).astype(np.float32)
    values: dict[str, np.ndarray] = {x: probe}
    consumers = _consumers(nodes, model.graph)
    region: set[int] = set()
    done: set[int] = set()
    why = "the nodes after it do not compute one"
    for j in range(start, min(len(nodes), start + _MAX_REGION)):
        node = nodes[j]
        inputs = [i for i in node.input if i]
        if j != start and not any(i in values for i in inputs):
            if all(ctx.is_const(i) for i in inputs) and node.op_type not in NONDETERMINISTIC:
                ctx.current = node
                fold(node)  # the index arithmetic, interleaved with the gather
                done.add(j)
            continue  # an unrelated node, imported later in graph order
        reason = _linear(ctx, node, values)
        if reason:
            why = f"'{label(node)}' ({node.op_type}) {reason}"
            break
        try:
            results = evaluate_node(model, node, {i: values.get(i, ctx.consts.get(i))
                                                  for i in inputs})
        except Exception as exc:  # the reference evaluator raises many exception types
            why = f"'{label(node)}' ({node.op_type}) could not be evaluated: {exc}"
            break
        if node.op_type != "Shape" and any(
                not np.issubdtype(r.dtype, np.floating) for r in results):
            why = f"'{label(node)}' ({node.op_type}) turns the activation into integers"
            break
        values.update(zip([o for o in node.output if o], results, strict=True))
        region.add(j)
        exit_ = _single_exit(values, region, consumers, x)
        if exit_ is not None and _is_pool(values[exit_], probe):
            ctx.current = entry
            _emit(ctx, x, spatial, list(values[exit_].shape[2:]), exit_)
            return region | done
    else:
        if start + _MAX_REGION < len(nodes):
            why = f"none is found within {_MAX_REGION} nodes"
    ctx.current = entry
    raise ctx.fail(f"perm {perm} moves the batch axis; only perms that keep axis 0 first are "
                   "supported. It starts a gather that snnc imports when it is an adaptive "
                   f"average pooling, but {why}. Export with an input size that the pooling's "
                   "output size divides, or pool with nn.AvgPool2d")


def _linear(ctx: ImportContext, node: onnx.NodeProto, values: dict[str, np.ndarray]) -> str:
    """Why the node would make the region other than linear in x ('' where it is fine)."""
    if node.domain not in ("", "ai.onnx") or node.op_type not in _REGION_OPS:
        return "is not index arithmetic"
    inputs = list(node.input)
    for i in inputs:
        if i and i not in values and not ctx.is_const(i):
            return f"also reads '{i}', which is neither the gather nor a constant"
    fixed = {"GatherND": [1], "Gather": [1], "GatherElements": [1], "Where": [0]}
    if any(k < len(inputs) and inputs[k] in values for k in fixed.get(node.op_type, [])):
        return "picks its cells by values computed from the activation"
    from_x = [i in values for i in inputs]
    if (node.op_type == "Mul" and sum(from_x) != 1) or (
            node.op_type == "Div" and from_x[1:2] == [True]):
        return "multiplies or divides by the activation"
    return ""


def _consumers(nodes: Sequence[onnx.NodeProto], graph: onnx.GraphProto) -> dict[str, set[int]]:
    readers: dict[str, set[int]] = {o.name: {-1} for o in graph.output}  # -1: the graph output
    for j, node in enumerate(nodes):
        for i in node.input:
            readers.setdefault(i, set()).add(j)
    return readers


def _single_exit(values: dict[str, np.ndarray], region: set[int],
                 consumers: dict[str, set[int]], x: str) -> str | None:
    """The one region tensor read outside the region, if there is exactly one."""
    open_ = [t for t in values if t != x and consumers.get(t, set()) - region]
    return open_[0] if len(open_) == 1 else None


def _is_pool(value: np.ndarray, probe: np.ndarray) -> bool:
    if value.ndim != probe.ndim or value.shape[:2] != probe.shape[:2] or min(value.shape) < 1:
        return False
    expected = adaptive_avgpool(probe, value.shape[2:])
    return bool(np.allclose(value, expected, rtol=1e-4, atol=1e-5))


def _runs(windows: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Consecutive windows of one size at one positive stride (an output larger than the
    input repeats windows: stride 0, one run each)."""
    runs: list[list[tuple[int, int]]] = []
    for w in windows:
        run = runs[-1] if runs else None
        if run and w[1] - w[0] == run[0][1] - run[0][0] and w[0] > run[-1][0] and (
                len(run) == 1 or w[0] - run[-1][0] == run[1][0] - run[0][0]):
            run.append(w)
        else:
            runs.append([w])
    return runs


def _emit(ctx: ImportContext, x: str, spatial: Sequence[int], out: Sequence[int],
          output: str) -> None:
    current = ctx.value(x)
    nsp = len(spatial)
    for d, (n, o) in enumerate(zip(spatial, out, strict=True)):
        if n == o:
            continue
        parts = []
        runs = _runs(adaptive_windows(n, o))
        for run in runs:
            first, last = run[0][0], run[-1][1]
            source = current
            if (first, last) != (0, n):
                source = ctx.emit("slice", [current], output="", attrs={
                    "axes": [d + 1], "starts": [first], "ends": [last], "steps": [1]}).name
            size = run[0][1] - run[0][0]
            if size == 1 and len(run) == 1:  # one cell: the slice is the window's mean
                parts.append(source)
                continue
            stride = run[1][0] - run[0][0] if len(run) > 1 else 1
            kernel, strides = [1] * nsp, [1] * nsp
            kernel[d], strides[d] = size, stride
            parts.append(ctx.emit("avgpool", [source], output="", attrs={
                "kernel": kernel, "strides": strides, "pads": [0] * (2 * nsp),
                "dilations": [1] * nsp, "ceil_mode": 0, "count_include_pad": 0}).name)
        current = parts[0] if len(parts) == 1 else ctx.emit(
            "concat", parts, output="", attrs={"axis": d + 1}).name
    ctx.alias(output, current)
