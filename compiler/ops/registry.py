"""The op registry: for each IR op, how to infer its output shape, how to evaluate it in numpy
(the reference ANN semantics), and how to summarise its settings in one line of text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..ir.graph import Node

Shape = tuple[int, ...]
ShapeFn = Callable[[Node, Sequence[Shape]], Shape]
EvalFn = Callable[[Node, Sequence[np.ndarray]], np.ndarray]
DescribeFn = Callable[[Node], str]


@dataclass(frozen=True)
class OpDef:
    name: str
    infer_shape: ShapeFn
    evaluate: EvalFn
    describe: DescribeFn = lambda node: ""
    arity: int | None = 1  # number of inputs, None for variadic
    linear: bool = False  # a linear map of its inputs (plus a constant), so it commutes with time
    # same result as `evaluate`, written into inputs[0] (the executor calls it only when no
    # one else needs that array): saves a full-size allocation per elementwise op
    inplace: EvalFn | None = None


OPS: dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    OPS[opdef.name] = opdef
    return opdef


def opdef(op: str) -> OpDef:
    try:
        return OPS[op]
    except KeyError:
        raise KeyError(f"unknown IR op '{op}'; known: {', '.join(sorted(OPS))}") from None


def fmt_number(x: float) -> str:
    return f"{x:.4g}"


def fmt_array(a: np.ndarray) -> str:
    """A scalar, or a short summary of an array's range."""
    a = np.asarray(a)
    if a.size == 1:
        return fmt_number(float(a.reshape(-1)[0]))
    return f"[{fmt_number(float(a.min()))}..{fmt_number(float(a.max()))}]x{a.size}"
