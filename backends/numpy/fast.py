"""The simulator's fast engine (`engine="fast"`): the same time steps as the reference, with the
two costs that dominate a step moved to compiled kernels.

* Convolutions and pooling windows run in onnxruntime (one single-node session per layer): its
  blocked direct kernels were 2-3x faster than numpy's im2col products on these layers, and
  its pooling 2-5x faster than numpy's strided reductions.
* The IF update runs in one pass over memory (kernels.fire, numba) instead of 4-5 numpy ufunc
  passes; without numba the numpy form is used.

The IF kernel does the reference's float operations in the reference's order (bit-equal);
onnxruntime's convolutions and average pools add in another order, so a potential that lands
within rounding of a threshold may fire a step earlier or later: outputs agree with the
reference to float tolerance, not bit for bit (tests/test_fast_engine.py measures both).
"""

from __future__ import annotations

import weakref

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from snnc.compiler.ir.graph import Graph, Node
from snnc.compiler.ops.neuron import max_count

from . import kernels

_OPSET = 17
# node -> its session (None: left to numpy), kept while the node lives: tuning and layer-wise
# calibration simulate many graphs that share most of their nodes
_SESSIONS: weakref.WeakKeyDictionary[Node, ort.InferenceSession | None] = (
    weakref.WeakKeyDictionary())


def _onnx_node(node: Node) -> tuple[onnx.NodeProto, list[onnx.TensorProto]] | None:
    """The ONNX op computing `node`'s window op, or None where only the reference has the
    semantics (ceil-mode or dilated pooling: ONNX and snnc count padded cells differently)."""
    a = node.attrs
    if node.op == "conv":
        weights = [numpy_helper.from_array(np.asarray(node.params["weight"], np.float32), "w"),
                   numpy_helper.from_array(np.asarray(node.params["bias"], np.float32)
                                           .reshape(-1), "b")]
        return helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=list(a["strides"]),
                                pads=list(a["pads"]), dilations=list(a["dilations"]),
                                group=int(a["groups"])), weights
    if node.op not in ("avgpool", "maxpool") or a["ceil_mode"] or any(
            d != 1 for d in a["dilations"]):
        return None
    window = {"kernel_shape": list(a["kernel"]), "strides": list(a["strides"]),
              "pads": list(a["pads"])}
    if node.op == "maxpool":
        return helper.make_node("MaxPool", ["x"], ["y"], **window), []
    return helper.make_node("AveragePool", ["x"], ["y"], **window,
                            count_include_pad=int(bool(a["count_include_pad"]))), []


def _session(node: Node, sample: tuple[int, ...]) -> ort.InferenceSession | None:
    made = _onnx_node(node)
    if made is None:
        return None
    graph = helper.make_graph(
        [made[0]], node.name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", *sample])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", *node.shape])], made[1])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
    model.ir_version = 8
    options = ort.SessionOptions()
    # the simulator runs batch chunks on its own threads; each conv call stays on one
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model.SerializeToString(), options,
                                    providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - a layer onnxruntime will not take runs in numpy
        return None


class FastKernels:
    """Per-graph state of the fast engine: onnxruntime sessions for the window ops run every
    step, and per-neuron IF constants."""

    def __init__(self, graph: Graph, dynamic: set[str]) -> None:
        shapes = {node.name: node.shape for node in graph.nodes}
        self.sessions = {}
        for node in graph.nodes:
            if node.name in dynamic and node.op in ("conv", "avgpool", "maxpool"):
                if node not in _SESSIONS:
                    _SESSIONS[node] = _session(node, shapes[node.inputs[0]])
                if _SESSIONS[node] is not None:
                    self.sessions[node.name] = _SESSIONS[node]
        self.theta: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if kernels.AVAILABLE:
            for node in graph.nodes:
                if node.op == "if" and not node.attrs.get("ternary"):  # ternary: numpy
                    shift = (_per_neuron(node.params["i_shift"], node.shape)
                             if "i_shift" in node.params else np.zeros(0, np.float32))
                    self.theta[node.name] = (_per_neuron(node.params["theta"], node.shape),
                                             shift)

    def window(self, node: Node, x: np.ndarray) -> np.ndarray:
        """A conv or pooling layer's output (for maxpool: the windows' max of x)."""
        return self.sessions[node.name].run(None, {"x": np.ascontiguousarray(x, np.float32)})[0]

    def fire(self, node: Node, v: np.ndarray, z: np.ndarray, net: np.ndarray | None,
             hits: np.ndarray, amount: np.ndarray | None = None) -> np.ndarray:
        """One IF step of the layer, in place on v, net, hits and (graded layers) amount
        (see kernels.fire and kernels.fire_graded)."""
        n = len(v)
        theta, shift = self.theta[node.name]
        out = np.empty_like(v)
        k = max_count(node)
        if k > 1:
            flat = net.reshape(n, -1) if net is not None else np.zeros((0, 0), np.float32)
            kernels.fire_graded(v.reshape(n, -1),
                                np.ascontiguousarray(z, np.float32).reshape(n, -1), theta,
                                shift, flat, hits.reshape(n, -1), amount.reshape(n, -1),
                                out.reshape(n, -1), np.float32(k),
                                bool(node.attrs.get("signed")), net is not None)
            return out
        kernels.fire(v.reshape(n, -1), np.ascontiguousarray(z, np.float32).reshape(n, -1),
                     theta, shift,
                     net.reshape(n, -1) if net is not None else np.zeros((0, 0), np.float32),
                     hits.reshape(n, -1), out.reshape(n, -1), bool(node.attrs.get("signed")),
                     net is not None, node.attrs.get("reset") == "zero")
        return out


def _per_neuron(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(value, np.float32), shape)).reshape(-1)
