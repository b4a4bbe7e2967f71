"""lower-synapses: replace the linear ops between spiking populations by one synapse layer per
(source, target) pair, in the structure Loihi and Lava hold them:

    conv    a 2-d (or 1-d) convolution: every conv / average pooling / zero padding / per-channel
            scale on the way composed into one window (compiler/loihi/linear_maps.py)
    dense   flatten -> linear: a fully connected layer (and what a dense matrix feeds)
    sparse  a CSR matrix for the rest (concat placements that feed a neuron, shuffles, crops)

A population is an IF node or the graph output (the non-spiking readout). Its input current is

    z_P = sum_j M_j(out_j) + b,   b = the cone run on zero input (per neuron)

No step allocates n_in x n_out for a convolution; dense matrices above MAX_WEIGHTS entries and
sparse ones above MAX_NNZ are refused. Every lowered cone is checked against the original ops
on one random input. Populations fed only by the graph input keep their (static,
direct-encoded) subgraph; a max pooling that reads an IF node directly stays a population of
its own (compiler/loihi/populations.py), any other is refused.
Sigma-delta graphs (`sd` neurons) lower the input's cone too: the input becomes a source
like a population (Lava's input source feeds the first synapse layer), and max pooling is
refused there (the lower-maxpool pass rewrites it into ReLU layers first).

Before:  %relu2 = if(%conv2);  %avgpool1 = avgpool[k=2x2, s=2](%relu2)
         %conv3 = conv[3x3, p=1](%avgpool1);  %relu3 = if(%conv3)
After:   %relu3_syn0 = conv[6x6, s=2, p=2](%relu2)   (meta synapse_from=relu2)
         %relu3_bias = affine[scale=1, shift=b](%relu3_syn0);  %relu3 = if(%relu3_bias)
"""

from __future__ import annotations

import math

import numpy as np

from ..contracts import CONVERTED, SYNAPSES, contract, require
from ..errors import InternalError, ModelError, ResourceError
from ..executor import evaluate_nodes
from ..ir.graph import Graph, Node
from ..ops import opdef
from . import linear_maps as lm
from .op_maps import Form, node_form
from .stages import SYNAPSES_STRUCTURED

NAME = "lower-synapses"
CONTRACT = contract(requires={CONVERTED}, produces={SYNAPSES})
MAX_WEIGHTS = 1 << 26  # dense matrices above 64M entries: refuse rather than exhaust memory
MAX_NNZ = 1 << 27
DENSE_FILL = 0.25  # a matrix at least this full is held dense
POPULATION_OPS = ("if", "sd", "input", "maxpool")
NEURON_OPS = ("if", "sd")


def cone(graph: Graph, start: str) -> tuple[list[Node], list[str]]:
    """The linear nodes computing `start` (topological order) and the populations they read."""
    nodes: dict[str, Node] = {}
    sources: set[str] = set()
    stack = [start]
    while stack:
        name = stack.pop()
        node = graph.node(name)
        if node.op in POPULATION_OPS:
            sources.add(name)
            continue
        if name in nodes:
            continue
        if not opdef(node.op).linear:
            raise ModelError.at(node, f"op '{node.op}' between spiking layers cannot be "
                                "lowered to synapses for the lava/loihi targets")
        nodes[name] = node
        stack.extend(node.inputs)
    order = [n for n in graph.nodes if n.name in nodes]
    return order, [n.name for n in graph.nodes if n.name in sources]


def cone_forms(graph: Graph, cone_nodes: list[Node], sources: list[str], out: str) -> Form:
    env: dict[str, Form] = {s: {s: lm.identity(graph.node(s).shape)} for s in sources}
    for node in cone_nodes:
        env[node.name] = node_form(node, [env[i] for i in node.inputs],
                                   [graph.node(i).shape for i in node.inputs])
    return env[out]


def _evaluate(cone_nodes: list[Node], env: dict[str, np.ndarray], out: str) -> np.ndarray:
    return evaluate_nodes(cone_nodes, env)[out]


def _per_channel(value: np.ndarray, shape: tuple[int, ...]) -> bool:
    full = np.broadcast_to(np.asarray(value), shape).reshape(shape[0], -1)
    return bool(np.all(full == full[:, :1]))


class _Emitter:
    """Builds the synapse nodes of one target population."""

    def __init__(self, graph: Graph, target: Node) -> None:
        self.graph, self.target = graph, target
        self.nodes: list[Node] = []

    def _name(self, suffix: str) -> str:
        return f"{self.target.name}_{suffix}"

    def _node(self, suffix: str, op: str, inputs: tuple[str, ...], shape: tuple[int, ...],
              **kw: object) -> str:
        name = self._name(suffix)
        self.nodes.append(Node(name, op, inputs, shape=tuple(shape), source=self.target.source,
                               **kw))  # type: ignore[arg-type]
        return name

    def _reshape(self, suffix: str, value: str, have: tuple[int, ...],
                 want: tuple[int, ...]) -> str:
        if tuple(have) == tuple(want):
            return value
        return self._node(suffix, "reshape", (value,), want, attrs={"shape": list(want)})

    def _conv(self, k: int, source: str, m: lm.ConvMap) -> str | None:
        ends = m.end_pads()
        ends = (max(ends[0], 0), max(ends[1], 0))
        kh, kw = m.kernel.shape[2:]
        for a, kk in enumerate((kh, kw)):
            span = m.dilations[a] * (kk - 1) + 1
            size = m.in_chw[1 + a] + m.pads[a] + ends[a] - span
            if size // m.strides[a] + 1 != m.out_chw[1 + a]:
                return None
        src = self._reshape(f"view{k}", source, self.graph.node(source).shape, m.in_chw)
        attrs = {"strides": list(m.strides), "pads": [*m.pads, *ends],
                 "dilations": list(m.dilations), "groups": int(m.groups)}
        params = {"weight": m.kernel.astype(np.float32),
                  "bias": np.zeros(m.out_chw[0], np.float32)}
        name = self._node(f"syn{k}", "conv", (src,), m.out_chw, attrs=attrs, params=params,
                          meta={"synapse_from": source, "synapse": "conv"})
        return self._reshape(f"syn{k}_view", name, m.out_chw, m.shape)

    def _matrix(self, k: int, source: str, m: lm.MatrixMap) -> str:
        n_in, n_out = m.n_in, m.n_out
        meta = {"synapse_from": source}
        matrix = m.matrix
        fill = (np.count_nonzero(matrix) if m.dense else matrix.nnz) / max(1, n_in * n_out)
        if m.dense or fill >= DENSE_FILL:
            if n_in * n_out > MAX_WEIGHTS:
                raise ResourceError(f"{self.target.origin}: the synapses from '{source}' "
                                    f"would be a dense {n_out}x{n_in} matrix, above the "
                                    f"{MAX_WEIGHTS} entries this lowering supports")
            dense = np.asarray(matrix.todense() if not m.dense else matrix, np.float32)
            flat = self._node(f"flat{k}", "flatten", (source,), (n_in,))
            name = self._node(f"syn{k}", "linear", (flat,), (n_out,),
                              params={"weight": dense, "bias": np.zeros(n_out, np.float32)},
                              meta={**meta, "synapse": "dense"})
            return self._reshape(f"syn{k}_view", name, (n_out,), m.shape)
        if matrix.nnz > MAX_NNZ:
            raise ResourceError(f"{self.target.origin}: the synapses from '{source}' would "
                                f"have {matrix.nnz} entries, above the {MAX_NNZ} this "
                                "lowering supports")
        matrix = matrix.tocsr()
        matrix.sort_indices()
        params = {"weight": matrix.data.astype(np.float32),
                  "indices": matrix.indices.astype(np.int32),
                  "indptr": matrix.indptr.astype(np.int32),
                  "bias": np.zeros(n_out, np.float32)}
        return self._node(f"syn{k}", "sparse", (source,), m.shape, attrs={"n_in": n_in},
                          params=params, meta={**meta, "synapse": "sparse"})

    def synapse(self, k: int, source: str, m: lm.LinearMap, foldable: bool) -> str:
        if isinstance(m, lm.ConvMap) and foldable:
            made = self._conv(k, source, m)
            if made is not None:
                return made
        return self._matrix(k, source, lm.as_matrix(m))

    def finish(self, terms: list[str], bias: np.ndarray, shape: tuple[int, ...]) -> str:
        last = terms[0]
        if len(terms) > 1:
            last = self._node("sum", "add", tuple(terms), shape)
        return self._node("bias", "affine", (last,), shape,
                          params={"scale": np.ones((), np.float32),
                                  "shift": bias.reshape(shape).astype(np.float32)},
                          meta={"synapse_bias": True})


def _theta_foldable(graph: Graph, source: str, target: Node) -> bool:
    """Whether the source's spike amplitude and the target's threshold gain are per channel,
    so that quantize-weights can fold them into a kernel."""
    if _sigma_delta(graph):  # one activation unit per layer: any kernel carries it
        return True
    src = graph.node(source)
    if src.op == "maxpool":
        src = graph.node(src.inputs[0])
    ok = len(src.shape) >= 2 and _per_channel(src.params["theta"], src.shape)
    if target.op == "if" and target.attrs.get("reset") == "zero" and len(target.shape) >= 2:
        ok = ok and _per_channel(target.params["theta"], target.shape)
    return ok


def _sigma_delta(graph: Graph) -> bool:
    """Sigma-delta graphs lower the cone from the input too: Lava's input source sends the
    input to the first synapse layer, which runs on chip."""
    return graph.meta.get("neuron") == "sigma-delta"


def _check(graph: Graph, target: Node, cone_nodes: list[Node], sources: list[str],
           emitted: list[Node], feed: str, out: str) -> None:
    """The lowered synapses against the original ops on one random input."""
    rng = np.random.default_rng(0)
    x = {s: rng.random((1, *graph.node(s).shape)).astype(np.float32) for s in sources}
    want = _evaluate(cone_nodes, dict(x), feed).astype(np.float64)
    got = _evaluate(emitted, dict(x), out).astype(np.float64)
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    if not np.allclose(got, want, rtol=1e-4, atol=1e-4 * scale):
        raise InternalError(f"{target.origin}: the lowered synapses differ from the network "
                            f"by {float(np.abs(got - want).max()):.3g}")


def lower_population(graph: Graph, target: Node, feed: str) -> tuple[list[Node], str] | None:
    """The synapse nodes of `target` (whose input current is the value `feed`) and the name
    of its new input; None for a population fed by the network input."""
    cone_nodes, sources = cone(graph, feed)
    if graph.input.name in sources and not _sigma_delta(graph):
        if len(sources) > 1:
            raise ModelError.at(target, "mixes the analog network input with spikes; the "
                                "lava/loihi targets need the input to feed only the first "
                                "spiking layer")
        return None
    forms = cone_forms(graph, cone_nodes, sources, feed)
    shape = tuple(graph.node(feed).shape)
    zeros = {s: np.zeros((1, *graph.node(s).shape), np.float32) for s in sources}
    bias = _evaluate(cone_nodes, zeros, feed).reshape(-1).astype(np.float64) \
        if cone_nodes else np.zeros(math.prod(shape))
    emit = _Emitter(graph, target)
    terms = [emit.synapse(k, s, forms[s], _theta_foldable(graph, s, target))
             for k, s in enumerate(sources)]
    out = emit.finish(terms, bias, shape)
    _check(graph, target, cone_nodes, sources, emit.nodes, feed, out)
    return emit.nodes, out


def lower_synapses(graph: Graph) -> Graph:
    require(graph, NAME, CONTRACT)
    # signed neurons ride on signed graded payloads; ternary ones (Clip(-a, a)) have no
    # Lava process yet
    ternary = [n for n in graph.nodes if n.op == "if" and n.attrs.get("ternary")]
    if ternary:
        raise ModelError.at(ternary[0], "a ternary neuron (Clip(-a, a), Hardtanh: spikes at "
                            "+-theta) is not supported by the lava/loihi targets; compile it "
                            "for --target numpy, or retrain with ReLU or Clip(0, a)")
    for node in graph.nodes:
        if node.op == "maxpool" and _sigma_delta(graph):
            raise ModelError.at(node, "max pooling has no sigma-delta form on Loihi (Lava's "
                                "SigmaDelta sends graded changes, not spikes to count); the "
                                "default pipeline rewrites it into ReLU layers (lower-maxpool "
                                "pass): compile without a custom --passes list, or use average "
                                "pooling")
        if node.op == "maxpool" and graph.node(node.inputs[0]).op != "if":
            raise ModelError.at(node, "max pooling must read a spiking layer directly for the "
                                "lava/loihi targets")
    out_node = graph.output_node
    result: list[Node] = []
    output = graph.output
    for node in graph.nodes:
        if node.op in NEURON_OPS:
            lowered = lower_population(graph, node, node.inputs[0])
            if lowered is not None:
                result.extend(lowered[0])
                node = node.replace(inputs=(lowered[1],))
        result.append(node)
    if out_node.op not in NEURON_OPS:  # the non-spiking readout: a pseudo-population
        readout = Node(f"{out_node.name}_readout", "identity", (out_node.name,),
                       shape=out_node.shape, source=out_node.source)
        lowered = lower_population(graph, readout, out_node.name)
        if lowered is None:
            raise ModelError.at(out_node, "the output reads the network input directly")
        result.extend(lowered[0])
        output = lowered[1]
    return graph.replace(result, output=output).with_meta(synapses=SYNAPSES_STRUCTURED)
