"""lower-maxpool: max pooling as a tournament of pairwise maxima written as linear layers and
ReLUs, what chip neurons compute, instead of a spiking max pool (a host process on Lava).

    max(a, b) = relu(a - b) + b

The n = prod(kernel) values of each window are reduced pairwise in ceil(log2 n) levels (2x2: 2,
3x3: 4). Each level is one grouped conv (groups = channels, zero bias) and a ReLU: the first
conv has the pool's kernel, strides, pads and dilations and reads the window's taps, later ones
are 1x1 and read the previous level's ReLU channels. Every value of the tournament is a signed
sum of one level's ReLU channels, so the next conv takes the sums itself:

* input known to be >= 0 (a ReLU, Clip(0, a) or qclip output, possibly through pooling or
  layout ops; the common conv-relu-maxpool): b = relu(b), so a pair is 2 channels (a - b, b)
  and max(a, b) = ch0 + ch1; a window's odd value out is 1 channel (e).
* otherwise b = relu(b) - relu(-b): 3 channels (a - b, b, -b), max = ch0 + ch1 - ch2; an odd
  value out is 2 (e, -e). A maxpool whose only reader is a monotone activation with outputs
  >= 0 (ReLU, Clip(lo >= 0, hi), qclip) first swaps with it, f(max(x)) = max(f(x)), which makes
  its input non-negative.

The last level's sum is a 1x1 grouped conv carrying the pool's name (or the swapped
activation's): a linear op that the consumer's synapse absorbs (lower-synapses composes it).

Padding: ONNX pads max pooling with -inf. For inputs >= 0, padding with 0 (what conv does) gives
the same maximum as long as every window holds at least one input value (ceil mode's extra
trailing padding likewise); a window of padding alone is refused. A signed input whose windows
reach into padding is refused (a 0 would beat its negative values).

Runs on the ANN, after fold-batchnorm and before normalize-thresholds: the new ReLUs get their
thresholds from calibration like any other.

Before:  %relu1 : f32[8,16,16] = relu(%conv1)
         %pool1 : f32[8,8,8] = maxpool[k=2x2, s=2,2](%relu1)
After:   %pool1_max1 : f32[16,8,8] = conv[k=2x2, s=2,2, p=0,0,0,0, g=8](%relu1)
         %pool1_max1_relu : f32[16,8,8] = relu(%pool1_max1)
         %pool1_max2 : f32[16,8,8] = conv[k=1x1, s=1,1, p=0,0,0,0, g=8](%pool1_max1_relu)
         %pool1_max2_relu : f32[16,8,8] = relu(%pool1_max2)
         %pool1 : f32[8,8,8] = conv[k=1x1, s=1,1, p=0,0,0,0, g=8](%pool1_max2_relu)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..contracts import CONVERTED, contract, require
from ..errors import ModelError
from ..ir.graph import Graph, Node, unique_name
from ..ops.registry import Shape
from ..ops.windows import ceil_extra, pad_spatial, reduce_windows
from .rewrite import rebuild

NAME = "lower-maxpool"
CONTRACT = contract(forbids={CONVERTED}, hint="it rewrites the ANN's max pools into ReLU "
                    "layers: run it before normalize-thresholds and convert, right after "
                    "fold-batchnorm")
# ops whose output is >= 0 wherever all their inputs are
_KEEPS_SIGN = ("maxpool", "avgpool", "global_avgpool", "flatten", "reshape", "transpose",
               "slice", "concat")
# monotone activations with outputs >= 0 that a maxpool can swap with
_SWAPPABLE = ("relu", "clip", "qclip")


def _nonnegative(graph: Graph, name: str) -> bool:
    """Whether the value `name` is >= 0 for every input, from the ops that make it."""
    node = graph.node(name)
    if node.op in ("relu", "qclip"):
        return True
    if node.op == "clip":
        lo = node.attrs.get("min")
        return lo is not None and lo >= 0
    if node.op == "bound":
        return bool(np.all(node.params["lo"] >= 0))
    if node.op == "pad":
        return node.attrs["value"] >= 0 and _nonnegative(graph, node.inputs[0])
    if node.op in _KEEPS_SIGN:
        return all(_nonnegative(graph, i) for i in node.inputs)
    return False


def _swappable(graph: Graph, pool: Node) -> Node | None:
    """The activation that reads `pool` alone and can move in front of it, if any."""
    readers = graph.consumers(pool.name)
    if pool.name == graph.output or len(readers) != 1:
        return None
    act = readers[0]
    if act.op not in _SWAPPABLE or not _nonnegative(graph, act.name):
        return None
    before = graph.node(pool.inputs[0]).shape
    # per-channel (or scalar) constants apply the same before the pool as after it
    if any(np.broadcast_shapes(np.shape(p), before) != tuple(before)
           or np.broadcast_shapes(np.shape(p), act.shape) != tuple(act.shape)
           for p in act.params.values()):
        return None
    return act


def _window_reach(pool: Node, in_shape: Shape) -> tuple[list[int], np.ndarray]:
    """The conv pads (the end ones grown by ceil mode's extra cells) and, per output position,
    the share of its window's taps that land on the input rather than on padding."""
    a = pool.attrs
    nsp = len(a["kernel"])
    size = in_shape[1:]
    pads = list(a["pads"])
    for i in range(nsp):
        pads[i + nsp] += ceil_extra(size[i], a["kernel"][i], a["strides"][i],
                                    a["dilations"][i], pads[i] + pads[i + nsp],
                                    pool.shape[1 + i])
    mask = pad_spatial(np.ones((1, 1, *size), np.float32), pads, 0.0)
    taps = reduce_windows(mask, a["kernel"], a["strides"], a["dilations"], pool.shape[1:],
                          np.add)
    return pads, taps[0, 0] / math.prod(a["kernel"])


def _pairs(count: int, signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """One tournament level over `count` values: (rows, sums). rows (channels, count) make the
    level's pre-activations from the values; sums (next count, channels) read the new values
    back from the ReLU channels."""
    rows: list[np.ndarray] = []
    sums: list[list[tuple[int, float]]] = []
    eye = np.eye(count, dtype=np.float32)
    for j in range(0, count - 1, 2):
        a, b = eye[j], eye[j + 1]
        first = len(rows)
        rows += [a - b, b] + ([-b] if signed else [])
        sums.append([(first, 1.0), (first + 1, 1.0)] + ([(first + 2, -1.0)] if signed else []))
    if count % 2:  # the odd one out passes through this level's ReLU unchanged
        e = eye[count - 1]
        first = len(rows)
        rows += [e] + ([-e] if signed else [])
        sums.append([(first, 1.0)] + ([(first + 1, -1.0)] if signed else []))
    read = np.zeros((len(sums), len(rows)), np.float32)
    for v, terms in enumerate(sums):
        for ch, sign in terms:
            read[v, ch] = sign
    return np.stack(rows), read


def _grouped(matrix: np.ndarray, channels: int, taps: list[int]) -> np.ndarray:
    """The weight of a grouped conv (groups = channels) that applies the (out, in) matrix to
    every channel's group; the first conv's `in` are the window's taps, laid out as the
    kernel."""
    out, inp = matrix.shape
    shape = (out, inp // math.prod(taps), *taps)
    return np.tile(matrix.reshape(shape), (channels,) + (1,) * (len(shape) - 1))


def _tree(pool: Node, source: str, in_shape: Shape, signed: bool, out_name: str,
          fresh: Callable[[str], str]) -> list[Node]:
    """The nodes computing the max pool of `source` as linear layers and ReLUs, the last one
    named `out_name`."""
    a = pool.attrs
    nsp = len(a["kernel"])
    channels = in_shape[0]
    pads, share = _window_reach(pool, in_shape)
    if share.min() <= 0:
        raise ModelError.at(pool, "some of its windows lie wholly in the padding (their max "
                            "is -inf in ONNX): reduce the pads or use ceil_mode 0")
    if signed and share.min() < 1:
        raise ModelError.at(pool, "its windows reach into the padding (-inf in ONNX) and its "
                            "input may be negative, so the ReLU tree (zero padding) cannot "
                            "reproduce it: put a ReLU before the pool (or right after it: "
                            "they swap), remove the pads, or keep the spiking max pool")
    meta = {"lowered_from": pool.name}
    nodes: list[Node] = []
    x = source

    def conv(name: str, matrix: np.ndarray) -> Node:
        first = not nodes  # reads the pool's windows; the others are 1x1
        taps = list(a["kernel"]) if first else [1] * nsp
        weight = _grouped(matrix, channels, taps)
        attrs = ({"strides": list(a["strides"]), "pads": pads,
                  "dilations": list(a["dilations"])} if first else
                 {"strides": [1] * nsp, "pads": [0] * (2 * nsp), "dilations": [1] * nsp})
        return Node(name, "conv", (x,), attrs={**attrs, "groups": channels},
                    params={"weight": weight.astype(np.float32),
                            "bias": np.zeros(len(weight), np.float32)},
                    shape=(len(weight), *pool.shape[1:]), source=pool.source, meta=meta)

    # the tournament's values (rows) as signed sums of the current input's channels (columns):
    # first the window's taps themselves
    values = np.eye(math.prod(a["kernel"]), dtype=np.float32)
    level = 0
    while len(values) > 1:
        level += 1
        rows, read = _pairs(len(values), signed)
        lin = conv(fresh(f"{pool.name}_max{level}"), rows @ values)
        relu = Node(fresh(f"{lin.name}_relu"), "relu", (lin.name,), shape=lin.shape,
                    source=pool.source, meta=meta)
        nodes += [lin, relu]
        x, values = relu.name, read
    nodes.append(conv(out_name, values))
    return nodes


def lower_maxpool(graph: Graph) -> Graph:
    require(graph, NAME, CONTRACT)
    names = {n.name for n in graph.nodes}

    def fresh(base: str) -> str:
        name = unique_name(names, base)
        names.add(name)
        return name

    replaced: dict[str, list[Node]] = {}
    for pool in graph.nodes:
        if pool.op != "maxpool":
            continue
        source = pool.inputs[0]
        in_shape = graph.node(source).shape
        new: list[Node] = []
        out_name = pool.name
        signed = not _nonnegative(graph, source)
        act = _swappable(graph, pool) if signed else None
        if act is not None:  # f(max(x)) = max(f(x)): the activation first, then the tree
            moved = act.replace(name=fresh(f"{act.name}_unpooled"), inputs=(source,),
                                shape=in_shape)
            new.append(moved)
            source, out_name, signed = moved.name, act.name, False
            replaced[act.name] = []
        new += _tree(pool, source, in_shape, signed, out_name, fresh)
        replaced[pool.name] = new
    if not replaced:
        return graph
    nodes: list[Node] = []
    for node in graph.nodes:
        nodes.extend(replaced.get(node.name, [node]))
    return rebuild(graph, nodes, {})
