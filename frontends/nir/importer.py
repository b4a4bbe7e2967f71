"""Read a NIR graph written by another tool (Sinabs, snnTorch, Norse, snnc, ...) into snnc's IR.

The result is a converted (stage "snn") graph: it simulates, inspects, saves and compiles
for Lava/Loihi like a network compiled from ONNX.

    NIR                         IR
    Affine / Linear             linear (Linear: zero bias)
    Conv1d / Conv2d             conv (padding "same"/"valid" resolved)
    IF(r, v_threshold, v_reset) if, theta = v_threshold / r, reset to zero (v_reset = 0 only)
    LIF without leak            if, the same, with input gain r*dt/tau (snnTorch's reading;
                                dt/tau below 1e-6 counts as no leak: snnc's neurons have none)
    SumPool2d / AvgPool2d       avgpool (the sum's k^2 goes into the next weights)
    Flatten                     flatten (over the whole sample)
    Scale                       folded into the next weights
    several edges into a node   add

NIR's spikes are 1, ours theta: the factor 1/theta (and k^2, Scale) rides along as a pending
scale and is folded into the next synapse's input weights; where no synapse follows (an add
of differently scaled branches, the output) an `affine` node applies it.

Semantics: NIR's IF resets to v_reset and starts at 0. A file snnc wrote carries
metadata reset=subtract and v_initial, honoured unless `metadata=False`; `reset="subtract"`
reads every IF as resetting by subtraction (what Sinabs' IAF does with the IF it exports).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from snnc.compiler.errors import InputFileError, ModelError, UsageError
from snnc.compiler.ir.graph import Graph, Node
from snnc.compiler.ir.verify import infer_shape, verify

RESETS = ("zero", "subtract")
NO_LEAK = 1e-6  # dt/tau below this is taken as no leak
SUPPORTED = ("Input", "Output", "Affine", "Linear", "Conv1d", "Conv2d", "IF", "LIF",
             "SumPool2d", "AvgPool2d", "Flatten", "Scale")


def _nir() -> Any:
    try:
        import nir
    except ImportError:
        raise UsageError("reading NIR needs the 'nir' package: pip install nir "
                         "(or `make install`, which installs it)") from None
    return nir


def _f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


class _Reader:
    def __init__(self, reset: str | None, metadata: bool, dt: float) -> None:
        self.nodes: list[Node] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.value: dict[str, tuple[str, np.ndarray | None]] = {}  # NIR name -> IR, scale
        self.reset, self.metadata, self.dt = reset, metadata, dt

    def emit(self, name: str, op: str, inputs: list[str], attrs: dict[str, Any] | None = None,
             **params: Any) -> str:
        node = Node(name, op, tuple(inputs), attrs or {},
                    {k: _f32(v) for k, v in params.items()}, source=(name, op))
        try:
            shape = infer_shape(node, [self.shapes[i] for i in inputs])
        except ValueError as exc:
            raise ModelError(f"{exc}", node=name, op=op) from None
        self.nodes.append(node.replace(shape=tuple(shape)))
        self.shapes[name] = tuple(shape)
        return name

    def scaled(self, name: str, ir: str, scale: np.ndarray | None) -> str:
        """`ir` times `scale` as an IR value (an affine node where scale is not 1)."""
        if scale is None or np.all(scale == 1):
            return ir
        shape = self.shapes[ir]
        return self.emit(f"{name}_scale", "affine", [ir], scale=np.broadcast_to(scale, shape),
                         shift=np.zeros(shape, np.float32))

    def gather(self, name: str, sources: list[str]) -> tuple[str, np.ndarray | None]:
        """The sum of the sources' values: one IR value and the scale it still owes."""
        vals = [self.value[s] for s in sources]
        if len(vals) == 1:
            return vals[0]
        common = vals[0][1]
        same = all((s is None and common is None) or (s is not None and common is not None
               and s.shape == common.shape and np.array_equal(s, common)) for _, s in vals)
        if same:
            return self.emit(f"{name}_sum", "add", [v for v, _ in vals]), common
        parts = [self.scaled(f"{name}_in{k}", v, s) for k, (v, s) in enumerate(vals)]
        return self.emit(f"{name}_sum", "add", parts), None


def _order(graph: Any) -> list[str]:
    """Nodes in topological order (Kahn); a cycle is refused."""
    preds: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for a, b in graph.edges:
        preds[b].append(a)
    done: list[str] = []
    ready = [k for k, p in preds.items() if not p]
    left = {k: len(p) for k, p in preds.items()}
    succ: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for a, b in graph.edges:
        succ[a].append(b)
    while ready:
        k = ready.pop(0)
        done.append(k)
        for s in succ[k]:
            left[s] -= 1
            if left[s] == 0:
                ready.append(s)
    if len(done) != len(graph.nodes):
        cyc = sorted(set(graph.nodes) - set(done))
        raise ModelError(f"the NIR graph has a cycle through {cyc} (recurrent networks); "
                         "snnc reads feed-forward graphs only")
    return done


def _shape(t: Any) -> tuple[int, ...]:
    v = list(t.values())[0] if isinstance(t, dict) else t
    return tuple(int(d) for d in np.asarray(v).reshape(-1))


def _pads(name: str, node: Any, nd: int, in_shape: tuple[int, ...]) -> list[int]:
    pad = node.padding
    k = np.asarray(node.weight).shape[2:]
    if isinstance(pad, str):
        if pad == "valid":
            return [0] * (2 * nd)
        stride = np.broadcast_to(np.asarray(node.stride), (nd,))
        if pad != "same" or np.any(stride != 1):
            raise ModelError(f"padding '{pad}' with stride {list(stride)} is not supported",
                             node=name, op=type(node).__name__)
        dil = np.broadcast_to(np.asarray(node.dilation), (nd,))
        total = [int(d * (kk - 1)) for d, kk in zip(dil, k, strict=True)]
        return [t // 2 for t in total] + [t - t // 2 for t in total]
    p = [int(v) for v in np.broadcast_to(np.asarray(pad), (nd,))]
    return p + p


def _conv(r: _Reader, name: str, node: Any, x: str, scale: np.ndarray | None) -> tuple:
    w = _f32(node.weight)
    nd = w.ndim - 2
    in_shape = r.shapes[x]
    groups = int(node.groups)
    if scale is not None:  # per input channel; conv weight[o, c] reads channel g*Cg + c
        per = np.broadcast_to(scale, in_shape).reshape(in_shape[0], -1)
        if not np.all(per == per[:, :1]):
            x, scale = r.scaled(name, x, scale), None
        else:
            o, cg = w.shape[:2]
            chan = (np.arange(o)[:, None] // (o // groups)) * cg + np.arange(cg)
            w = w * per[:, 0][chan].reshape(o, cg, *([1] * nd))
    attrs = {"strides": [int(v) for v in np.broadcast_to(np.asarray(node.stride), (nd,))],
             "pads": _pads(name, node, nd, in_shape),
             "dilations": [int(v) for v in np.broadcast_to(np.asarray(node.dilation), (nd,))],
             "groups": groups}
    bias = np.zeros(w.shape[0]) if node.bias is None else _f32(node.bias).reshape(-1)
    return r.emit(name, "conv", [x], attrs, weight=w, bias=bias), None


def _linear(r: _Reader, name: str, node: Any, x: str, scale: np.ndarray | None) -> tuple:
    w = _f32(node.weight)
    if len(r.shapes[x]) != 1:
        x = r.emit(f"{name}_flatten", "flatten", [x])
        scale = None if scale is None else np.broadcast_to(scale, r.shapes[x]).reshape(-1)
    if scale is not None:
        w = w * np.broadcast_to(scale, r.shapes[x])[None, :]
    bias = _f32(getattr(node, "bias", None) if getattr(node, "bias", None) is not None
                else np.zeros(w.shape[0]))
    return r.emit(name, "linear", [x], weight=w, bias=bias.reshape(-1)), None


def _gain(r: _Reader, name: str, node: Any) -> np.ndarray:
    """The factor between the input current and dv per step: r for IF; r*dt/tau for a LIF
    without leak (snnTorch writes tau = dt/(1-beta), r = tau/dt: gain 1)."""
    if type(node).__name__ == "IF":
        return _f32(node.r)
    tau, res = np.asarray(node.tau, np.float64), np.asarray(node.r, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        leak = r.dt / tau
        gain = np.where(np.isfinite(res * leak), res * leak, 1.0)
    if np.any(np.abs(leak) > NO_LEAK):
        raise ModelError(f"a leak of dt/tau = {float(np.max(np.abs(leak))):.3g} per step "
                         f"(dt = {r.dt:g}); snnc's neurons integrate without leak (give the "
                         "dt the file was written for, or retrain with beta = 1)",
                         node=name, op="LIF")
    if np.any(np.asarray(node.v_leak) != 0):
        raise ModelError("v_leak != 0 is not supported", node=name, op="LIF")
    return _f32(gain)


def _neuron(r: _Reader, name: str, node: Any, x: str, scale: np.ndarray | None) -> tuple:
    shape = r.shapes[x]
    gain = _gain(r, name, node)
    if scale is not None:  # integrating scale*z against theta = z against theta/scale
        gain = gain * np.broadcast_to(scale, shape)
    if np.any(gain <= 0):
        raise ModelError("a non-positive input gain r is not supported", node=name,
                         op=type(node).__name__)
    theta = np.broadcast_to(_f32(node.v_threshold) / gain, shape)
    meta = getattr(node, "metadata", None) or {}
    reset = r.reset or (meta.get("reset") if r.metadata else None) or "zero"
    reset = str(reset.decode() if isinstance(reset, bytes) else reset)
    v_reset = getattr(node, "v_reset", None)
    if reset == "zero" and v_reset is not None and np.any(np.asarray(v_reset) != 0):
        raise ModelError("v_reset != 0 has no snnc equivalent (snnc resets to zero or "
                         "subtracts the threshold)", node=name, op=type(node).__name__)
    v0 = np.zeros(shape, np.float32)
    if r.metadata and "v_initial" in meta:
        v0 = np.broadcast_to(_f32(meta["v_initial"]) / gain, shape)
    if np.all(theta == theta.flat[0]) and np.all(v0 == v0.flat[0]):  # keep scalars scalar
        theta_p, v0_p = _f32(theta.flat[0]), _f32(v0.flat[0])
    else:
        theta_p, v0_p = _f32(theta), _f32(v0)
    out = r.emit(name, "if", [x], {"reset": reset}, theta=theta_p, v0=v0_p,
                 phi=np.full(theta_p.shape, 0.5, np.float32))
    return out, (1.0 / theta).astype(np.float32)  # NIR spikes are 1, ours theta


def _pool(r: _Reader, name: str, node: Any, x: str, scale: np.ndarray | None) -> tuple:
    kernel = [int(v) for v in np.broadcast_to(np.asarray(node.kernel_size), (2,))]
    stride = [int(v) for v in np.broadcast_to(np.asarray(node.stride), (2,))]
    pad = [int(v) for v in np.broadcast_to(np.asarray(node.padding), (2,))]
    if scale is not None:
        per = np.broadcast_to(scale, r.shapes[x]).reshape(r.shapes[x][0], -1)
        if not np.all(per == per[:, :1]):
            x, scale = r.scaled(name, x, scale), None
        else:
            scale = per[:, 0].reshape(-1, 1, 1)
    attrs = {"kernel": kernel, "strides": stride, "pads": pad + pad, "dilations": [1, 1],
             "ceil_mode": 0, "count_include_pad": 1}
    out = r.emit(name, "avgpool", [x], attrs)
    if type(node).__name__ == "SumPool2d":  # a sum is k^2 times the average
        k2 = np.float32(np.prod(kernel))
        scale = k2 * (np.ones((1, 1, 1), np.float32) if scale is None else scale)
    return out, scale


def _flatten(r: _Reader, name: str, node: Any, x: str, scale: np.ndarray | None) -> tuple:
    shape = r.shapes[x]
    start, end = int(node.start_dim), int(node.end_dim)
    if start not in (0, -len(shape)) or end not in (-1, len(shape) - 1):
        raise ModelError(f"flattening dims {start}..{end} of {list(shape)}: snnc flattens "
                         "whole samples only", node=name, op="Flatten")
    out = r.emit(name, "flatten", [x])
    return out, None if scale is None else np.broadcast_to(scale, shape).reshape(-1)


def _scale(r: _Reader, name: str, node: Any, x: str, scale: np.ndarray | None) -> tuple:
    s = np.broadcast_to(_f32(node.scale), r.shapes[x])
    return x, s if scale is None else (np.broadcast_to(scale, r.shapes[x]) * s)


_MAP = {"Affine": _linear, "Linear": _linear, "Conv1d": _conv, "Conv2d": _conv, "IF": _neuron,
        "LIF": _neuron, "SumPool2d": _pool, "AvgPool2d": _pool, "Flatten": _flatten,
        "Scale": _scale}


def read_graph(path: str | os.PathLike[str]) -> Any:
    nir = _nir()
    try:
        return nir.read(path)
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputFileError(f"{path}: not a readable NIR file ({exc})") from None


def from_nir(graph: Any, reset: str | None = None, metadata: bool = True,
             dt: float = 1e-4, name: str = "nir") -> Graph:
    """The IR of a NIR graph (nir.NIRGraph or a path); one error lists every node snnc
    cannot read."""
    if isinstance(graph, (str, os.PathLike)):
        name = os.path.basename(os.fspath(graph))
        graph = read_graph(graph)
    if reset is not None and reset not in RESETS:
        raise UsageError(f"--reset '{reset}' is not one of: {', '.join(RESETS)}")
    kinds = {k: type(n).__name__ for k, n in graph.nodes.items()}
    bad = [f"  - '{k}': {t}" for k, t in kinds.items() if t not in SUPPORTED]
    if bad:
        raise ModelError(f"{len(bad)} NIR node(s) snnc cannot read:\n" + "\n".join(bad)
                         + f"\nsnnc reads: {', '.join(SUPPORTED)}")
    inputs = [k for k, t in kinds.items() if t == "Input"]
    outputs = [k for k, t in kinds.items() if t == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"snnc reads graphs with one Input and one Output node; this one has "
                         f"{len(inputs)} and {len(outputs)}")
    preds: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for a, b in graph.edges:
        preds[b].append(a)
    r = _Reader(reset, metadata, dt)
    for key in _order(graph):
        node, kind = graph.nodes[key], kinds[key]
        if kind == "Input":
            shape = _shape(node.input_type)
            r.nodes.append(Node("input", "input", (), {"shape": list(shape)}, shape=shape))
            r.shapes["input"] = shape
            r.value[key] = ("input", None)
            continue
        if not preds[key]:
            raise ModelError(f"node '{key}' ({kind}) has no input edge")
        x, scale = r.gather(key, preds[key])
        if kind == "Output":
            output = r.scaled(key, x, scale)
            want = tuple(int(d) for d in np.asarray(
                (graph.metadata or {}).get("output_shape", ())).reshape(-1))
            if len(want) == 1 and r.shapes[output] != want:  # snnc writes vectors as (O, 1, 1)
                output = r.emit(f"{key}_flatten", "flatten", [output])
            continue
        r.value[key] = _MAP[kind](r, _ir_name(key), node, x, scale)
    ir = Graph(tuple(r.nodes), output, {"name": name, "stage": "snn", "source": "nir",
                                        "neuron": "if", "output_softmax": False})
    verify(ir)
    return ir


def _ir_name(key: str) -> str:
    return key.replace(".", "_") if key != "input" else "input_"
