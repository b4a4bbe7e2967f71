"""Resize (opsets 10-19+) and Upsample (opsets 7-9) on the spatial axes, modes nearest and
linear, as the IR's `resize` (compiler/ops/resize.py): the output size and scale per spatial
axis, the coordinate transformation and the nearest rounding, all fixed at import."""

from __future__ import annotations

import numpy as np
import onnx

from snnc.compiler.ops.resize import TRANSFORMS

from ..context import ImportContext
from .registry import handles

_ROUNDINGS = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
_POLICIES = ("stretch", "not_larger", "not_smaller")


def _mode(ctx: ImportContext, mode: str) -> str:
    mode = {"bilinear": "linear", "trilinear": "linear"}.get(mode, mode)
    if mode not in ("nearest", "linear"):
        raise ctx.fail(f"mode '{mode}' is not supported (nearest and linear are); export "
                       "the interpolation with mode='nearest' or 'bilinear'")
    return mode


def _full(ctx: ImportContext, values: np.ndarray, axes: list[int], rank: int, what: str,
          fill: list[float]) -> list[float]:
    """`values` for `axes` spread over all `rank` axes (batch included), others `fill`."""
    values = values.reshape(-1)
    if len(values) != len(axes):
        raise ctx.fail(f"{what} has {len(values)} entries for {len(axes)} axes")
    full = list(fill)
    for a, v in zip(axes, values, strict=True):
        full[a] = float(v)
    return full


def _axes(ctx: ImportContext, rank: int) -> list[int]:
    axes = ctx.attr("axes")
    if axes is None:
        return list(range(rank))
    axes = [a + rank if a < 0 else a for a in axes]
    if sorted(set(axes)) != sorted(axes) or min(axes) < 0 or max(axes) >= rank:
        raise ctx.fail(f"axes {ctx.attr('axes')} are not distinct axes of a rank-{rank} input")
    return axes


def _geometry(ctx: ImportContext, shape: tuple[int, ...], scales: np.ndarray | None,
              sizes: np.ndarray | None) -> tuple[list[float], list[int]]:
    """Per spatial axis: the scale the coordinates use and the output size (ONNX's rules in
    onnxruntime's float32 arithmetic)."""
    rank = len(shape) + 1
    dims = [1, *shape]  # the batch: any size, scale 1
    axes = _axes(ctx, rank)
    f = np.float32
    if scales is not None and scales.size:
        full = _full(ctx, scales, axes, rank, "scales", [1.0] * rank)
        out = [int(f(s) * f(d)) for s, d in zip(full, dims, strict=True)]
    elif sizes is not None and sizes.size:
        full_sizes = _full(ctx, sizes, axes, rank, "sizes", [float(d) for d in dims])
        full_sizes[0] = 1.0  # the batch entry (often folded from Shape as 1) is not ours
        full = [float(f(s) / f(d)) for s, d in zip(full_sizes, dims, strict=True)]
        policy = ctx.attr("keep_aspect_ratio_policy", "stretch")
        if policy not in _POLICIES:
            raise ctx.fail(f"keep_aspect_ratio_policy '{policy}' is not one of "
                           f"{', '.join(_POLICIES)}")
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            scale = pick(full[a] for a in axes if a > 0)
            for a in axes:
                full[a] = scale
            out = [int(np.floor(f(s) * f(d) + f(0.5))) if a in axes else int(d)
                   for a, (s, d) in enumerate(zip(full, dims, strict=True))]
            full[0] = 1.0
        else:
            out = [int(s) for s in full_sizes]
    else:
        raise ctx.fail("neither scales nor sizes is given")
    if full[0] != 1.0 or full[1] != 1.0 or out[1] != shape[0]:
        raise ctx.fail(f"resizing the batch or channel axis (scales {full[:2]}) is not "
                       "supported; only the spatial axes may change")
    if len(shape) < 2:
        raise ctx.fail(f"input [N, {', '.join(map(str, shape))}] has no spatial axes")
    if min(out[2:]) < 1:
        raise ctx.fail(f"output size {out[2:]} is empty")
    return full[2:], out[2:]


@handles("Resize")
def resize(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.value(node.input[0])
    shape = ctx.shape(node.input[0])
    mode = _mode(ctx, ctx.attr("mode", "nearest"))
    if ctx.opset < 11:  # Resize-10: (X, scales); onnxruntime rounds as for Upsample
        transform, rounding = "asymmetric", "simple"
        scales, sizes = ctx.const(node.input[1], "scales"), None
    else:
        transform = ctx.attr("coordinate_transformation_mode", "half_pixel")
        rounding = ctx.attr("nearest_mode", "round_prefer_floor")
        scales = ctx.optional_const(2, "scales")
        sizes = ctx.optional_const(3, "sizes")
    if transform == "tf_crop_and_resize":
        raise ctx.fail("coordinate_transformation_mode 'tf_crop_and_resize' crops by a region "
                       "of interest, which is not supported; supported: "
                       f"{', '.join(TRANSFORMS)}")
    if transform not in TRANSFORMS:
        raise ctx.fail(f"coordinate_transformation_mode '{transform}' is not one of "
                       f"{', '.join(TRANSFORMS)}")
    if mode == "nearest" and rounding not in (*_ROUNDINGS, "simple"):
        raise ctx.fail(f"nearest_mode '{rounding}' is not one of {', '.join(_ROUNDINGS)}")
    scale, size = _geometry(ctx, shape, scales, sizes)
    if ctx.attr("antialias", 0) and mode == "linear" and min(scale) < 1:
        raise ctx.fail("antialias=1 on a downscaling linear resize is not supported; export "
                       "with antialias=False")
    ctx.emit("resize", [x], attrs={"mode": mode, "transform": transform,
                                   "nearest_mode": rounding, "scales": scale, "size": size})


@handles("Upsample")
def upsample(ctx: ImportContext, node: onnx.NodeProto) -> None:
    """Upsample (deprecated from opset 10): scales as an attribute (opset 7) or an input
    (opset 9), asymmetric coordinates, nearest rounding down as onnxruntime runs it."""
    x = ctx.value(node.input[0])
    shape = ctx.shape(node.input[0])
    mode = _mode(ctx, ctx.attr("mode", "nearest"))
    attr = ctx.attr("scales")
    scales = (np.asarray(attr, np.float32) if attr is not None
              else ctx.const(node.input[1], "scales"))
    if scales.size and float(np.min(scales)) < 1:
        raise ctx.fail(f"Upsample scales {scales.reshape(-1).tolist()} must be >= 1")
    scale, size = _geometry(ctx, shape, scales, None)
    ctx.emit("resize", [x], attrs={"mode": mode, "transform": "asymmetric",
                                   "nearest_mode": "simple", "scales": scale, "size": size})
