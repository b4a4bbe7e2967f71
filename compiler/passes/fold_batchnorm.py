"""fold-batchnorm: merge BatchNormalization (and per-channel affine constants, e.g. the Add
after a MatMul or BN written out as Mul/Add) into the conv/linear layer before it.

    W' = W * s[o],  b' = b * s[o] + t[o]   with s = gamma / sqrt(var + eps), t = beta - mean*s

Before:
    %conv1 : f32[N,16,8,8] = conv[k=3x3, ...](%input)
    %batchnorm1 : f32[N,16,8,8] = batchnorm[eps=1e-05](%conv1)
After:
    %conv1 : f32[N,16,8,8] = conv[k=3x3, ...](%input)      (weights and bias rescaled)

A BN that does not follow a conv/linear (or whose layer output is also used elsewhere) becomes a
standalone `affine` with per-channel scale and shift; consecutive affines merge into one.
"""

from __future__ import annotations

import numpy as np

from ..contracts import contract
from ..ir.graph import Graph, Node
from ..ops.elementwise import batchnorm_scale_shift, channel_view
from .rewrite import along_axis, channel_axis, rebuild, sole_consumer

NAME = "fold-batchnorm"
CONTRACT = contract()  # any graph: BN folds into the layer before it, ANN or SNN


def _scale_shift(node: Node) -> tuple[np.ndarray, np.ndarray]:
    """The node as full-shape (scale, shift) constants over its input."""
    if node.op == "batchnorm":
        s, t = batchnorm_scale_shift(node)
        rank = len(node.shape)
        return channel_view(s, rank), channel_view(t, rank)
    return node.params["scale"], node.params["shift"]


def _fold_into(layer: Node, scale: np.ndarray, shift: np.ndarray) -> Node | None:
    axis = channel_axis(layer)
    s = along_axis(scale, layer.shape, axis)
    t = along_axis(shift, layer.shape, axis)
    if s is None or t is None:
        return None  # varies along more than the layer's output channels
    w = layer.params["weight"]
    weight = w * s.reshape((-1,) + (1,) * (w.ndim - 1))
    bias = layer.params["bias"] * s + t
    return layer.with_params(weight=weight.astype(np.float32), bias=bias.astype(np.float32))


def _merge_affines(first: Node, scale: np.ndarray, shift: np.ndarray) -> Node:
    """(x*s1 + t1)*s2 + t2 = x*(s1*s2) + (t1*s2 + t2): e.g. BN written out as Mul then Add."""
    s1, t1 = first.params["scale"], first.params["shift"]
    return first.with_params(scale=(s1 * scale).astype(np.float32),
                             shift=(t1 * scale + shift).astype(np.float32))


def fold_batchnorm(graph: Graph) -> Graph:
    nodes = {n.name: n for n in graph.nodes}
    renames: dict[str, str] = {}
    for node in graph.nodes:
        if node.op not in ("batchnorm", "affine"):
            continue
        scale, shift = _scale_shift(node)
        src = nodes[renames.get(node.inputs[0], node.inputs[0])]
        folded = None
        if src.op in ("conv", "linear") and sole_consumer(graph, node.inputs[0]):
            folded = _fold_into(src, scale, shift)
        elif src.op == "affine" and sole_consumer(graph, node.inputs[0]):
            folded = _merge_affines(src, scale, shift)
        if folded is not None:
            nodes[src.name] = folded
            del nodes[node.name]
            renames[node.name] = src.name
        elif node.op == "batchnorm":
            nodes[node.name] = Node(node.name, "affine", node.inputs,
                                    params={"scale": scale, "shift": shift}, shape=node.shape,
                                    source=node.source, meta=node.meta)
    return rebuild(graph, list(nodes.values()), renames)
