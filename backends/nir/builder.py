"""The NIR graph under construction, and the factors still owed to the values in it.

NIR has no edge weights: a node's input is the plain sum of the nodes feeding it. Our spikes
have amplitude theta, average pooling divides by k^2 and a neuron compares against theta, so
the exporter carries such factors as *terms*: a value is sum_k scale_k * out(source_k). A
factor is paid where it costs nothing, in the weights of the next synapse (its input
channels) or of the synapse that made the source (its output channels, when nothing else
reads that synapse). Where neither has weights, an identity synapse (a 1x1 convolution or a
diagonal Affine, which every consumer reads) pays it: never a `Scale` node, which Sinabs,
Norse, snnTorch and Rockpool do not read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from snnc.compiler.errors import ModelError
from snnc.compiler.ir.graph import Node


@dataclass(frozen=True)
class Term:
    """scale * (output of NIR node `source`); scale None is 1, else broadcastable to the
    value's shape (per channel: (C, 1, ...)). `exclusive`: nothing else reads `source`, so its
    weights may absorb the scale."""

    source: str
    scale: np.ndarray | None = None
    exclusive: bool = False


@dataclass
class Builder:
    nir: Any
    nodes: dict[str, Any] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    synapses: set[str] = field(default_factory=set)  # nodes with weight and bias

    def add(self, name: str, node: Any, terms: list[Term], synapse: bool = False) -> str:
        """Add `node` fed by `terms`, whose scales must have been paid (all None)."""
        if any(t.scale is not None for t in terms):
            raise AssertionError(f"unpaid scale into {name}")  # a bug in the exporter
        self.nodes[name] = node
        self.edges += [(t.source, name) for t in terms]
        if synapse:
            self.synapses.add(name)
        return name

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.nodes:
            name, k = f"{base}_{k}", k + 1
        return name

    def pay(self, ir: Node, term: Term, shape: tuple[int, ...],
            bias: np.ndarray | None = None) -> Term:
        """The same value with its scale (and an added constant `bias`, per channel) paid by a
        synapse: the source's own when it is exclusive, else a new identity synapse."""
        if term.scale is not None and np.all(term.scale == 1):
            term = replace(term, scale=None)
        if term.scale is None and bias is None:
            return term
        factor = _channel_vector(ir, term.scale, shape)
        extra = None if bias is None else _channel_vector(ir, bias, shape, one=False)
        if term.exclusive and term.source in self.synapses:
            node = self.nodes[term.source]
            w = node.weight * factor.reshape(-1, *([1] * (node.weight.ndim - 1)))
            b = node.bias * factor + (0 if extra is None else extra)
            self.nodes[term.source] = _with(node, w.astype(np.float32), b.astype(np.float32))
            return replace(term, scale=None)
        name = self.fresh(f"{ir.name}_{term.source}_gain")
        b = np.zeros(shape[0], np.float32) if extra is None else extra
        self.add(name, identity(self.nir, shape, factor, b), [replace(term, scale=None)],
                 synapse=True)
        return Term(name, None, exclusive=True)

    def pay_relative(self, ir: Node, terms: list[Term],
                     shape: tuple[int, ...]) -> tuple[list[Term], np.ndarray | None]:
        """Terms that all carry one common scale, which is returned for the caller to fold
        (into its weights, or forward): the first term's; the others pay their ratio to it."""
        common = terms[0].scale
        if all(_same(t.scale, common) for t in terms):
            return [replace(t, scale=None) for t in terms], common
        base = np.ones(1, np.float32) if common is None else common
        out = [replace(terms[0], scale=None)]
        for t in terms[1:]:
            own = np.ones(1, np.float32) if t.scale is None else t.scale
            ratio = np.broadcast_to(own, shape) / np.broadcast_to(base, shape)
            out.append(self.pay(ir, replace(t, scale=ratio.astype(np.float32)), shape))
        return out, common


def identity(nir: Any, shape: tuple[int, ...], factor: np.ndarray, bias: np.ndarray) -> Any:
    """y = factor * x + bias, per channel, as the synapse every consumer reads."""
    c = shape[0]
    if len(shape) == 1:
        return nir.Affine(weight=np.diag(factor).astype(np.float32), bias=bias)
    w = np.zeros((c, c, *([1] * (len(shape) - 1))), np.float32)
    w[np.arange(c), np.arange(c)] = factor.reshape(c, *([1] * (len(shape) - 1)))
    if len(shape) == 2:
        return nir.Conv1d(input_shape=shape[1], weight=w, stride=1, padding=0, dilation=1,
                          groups=1, bias=bias)
    return nir.Conv2d(input_shape=tuple(shape[1:]), weight=w, stride=(1, 1), padding=(0, 0),
                      dilation=(1, 1), groups=1, bias=bias)


def _with(node: Any, weight: np.ndarray, bias: np.ndarray) -> Any:
    """The synapse with new weight and bias (a new NIR node: its types follow its weight)."""
    kind = type(node).__name__
    if kind == "Affine":
        return type(node)(weight=weight, bias=bias)
    kwargs = {k: getattr(node, k) for k in ("input_shape", "stride", "padding", "dilation",
                                            "groups")}
    return type(node)(weight=weight, bias=bias, **kwargs)


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.shape == b.shape and np.array_equal(a, b)


def _channel_vector(ir: Node, scale: np.ndarray | None, shape: tuple[int, ...],
                    one: bool = True) -> np.ndarray:
    """One value per channel (axis 0) of a factor broadcast to `shape`; vectors (1-d shapes)
    keep one per element."""
    if scale is None:
        return np.full(shape[0], 1.0 if one else 0.0, np.float32)
    flat = np.broadcast_to(scale, shape).reshape(shape[0], -1)
    if not np.all(flat == flat[:, :1]):
        raise ModelError.at(ir, "a factor that varies within a channel (e.g. per-neuron "
                                "thresholds on a feature map) has no NIR synapse to carry it; "
                                "compile with per-channel or per-layer thresholds")
    return flat[:, 0].astype(np.float32)
