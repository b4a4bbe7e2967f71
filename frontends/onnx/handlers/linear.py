"""Gemm and MatMul with constant weights become `linear` (y = x W^T + b on the last axis)."""

from __future__ import annotations

import numpy as np
import onnx

from ..context import ImportContext
from .registry import handles


@handles("Gemm")
def gemm(ctx: ImportContext, node: onnx.NodeProto) -> None:
    """Y = alpha * A' B' + beta * C with A the activation and B, C constants."""
    if ctx.attr("transA", 0):
        raise ctx.fail("transA=1 on the activation input would mix samples; "
                       "export the layer as nn.Linear (transA=0)")
    x = ctx.value(node.input[0])
    b = ctx.const(node.input[1], "B (the weight)")
    if len(ctx.shape(node.input[0])) != 1:
        raise ctx.fail(f"Gemm needs a 2-d input, got [N, {ctx.shape(node.input[0])}]")
    b_eff = b.T if ctx.attr("transB", 0) else b  # (K, M)
    alpha = np.float32(ctx.attr("alpha", 1.0))
    weight = b_eff.T if alpha == 1 else alpha * b_eff.T  # (M, K); VGG's fc6 is 400 MB
    c = ctx.optional_const(2, "C (the bias)")
    bias = np.zeros(weight.shape[0], dtype=np.float32)
    if c is not None:
        # C broadcasts against (N, M): only shapes that broadcast to (1, M) are the same for
        # every row; an (M, 1) C, say, has as many entries but varies by row
        if c.ndim > 2 or c.size not in (1, bias.size) or (c.ndim == 2 and c.shape[0] != 1):
            raise ctx.fail(f"bias C of shape {list(c.shape)} depends on the batch row; "
                           "only a per-output bias is supported")
        bias = np.float32(ctx.attr("beta", 1.0)) * np.broadcast_to(c.reshape(-1), bias.shape)
    ctx.emit("linear", [x], params={"weight": weight, "bias": bias})


@handles("MatMul")
def matmul(ctx: ImportContext, node: onnx.NodeProto) -> None:
    """activation (N, ..., K) @ constant (K, M); a following Add becomes an affine the
    fold-batchnorm pass merges into this layer's bias."""
    x = ctx.value(node.input[0])
    w = ctx.const(node.input[1], "the right-hand matrix (the weight)")
    if w.ndim != 2:
        raise ctx.fail(f"only a 2-d constant right-hand side is supported, got {list(w.shape)}")
    ctx.emit("linear", [x], params={"weight": w.T, "bias": np.zeros(w.shape[1], np.float32)})
