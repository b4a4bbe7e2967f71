"""Kernel geometry shared by Conv and the pools: strides, dilations, and explicit pads
(resolving auto_pad SAME_UPPER / SAME_LOWER / VALID against the static input size)."""

from __future__ import annotations

from collections.abc import Sequence

from ..context import ImportContext


def geometry(ctx: ImportContext, kernel: Sequence[int], spatial: Sequence[int]
             ) -> dict[str, list[int]]:
    nsp = len(kernel)
    strides = list(ctx.attr("strides", [1] * nsp))
    dilations = list(ctx.attr("dilations", [1] * nsp))
    pads = list(ctx.attr("pads", [0] * (2 * nsp)))
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if len(strides) != nsp or len(dilations) != nsp or len(pads) != 2 * nsp:
        raise ctx.fail(f"strides/dilations/pads do not match a {nsp}-d kernel")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * nsp)
        for i in range(nsp):
            out = -(-spatial[i] // strides[i])
            span = dilations[i] * (kernel[i] - 1) + 1
            total = max(0, (out - 1) * strides[i] + span - spatial[i])
            small, big = total // 2, total - total // 2
            pads[i], pads[i + nsp] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pads = [0] * (2 * nsp)
    elif auto_pad != "NOTSET":
        raise ctx.fail(f"auto_pad '{auto_pad}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
    if min(pads) < 0:
        raise ctx.fail(f"negative pads {pads} are not supported")
    return {"strides": strides, "pads": pads, "dilations": dilations}
