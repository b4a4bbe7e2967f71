"""ONNX ModelProto -> snnc IR.

Walks the nodes in order. A node whose inputs are all constants is folded with onnx's reference
evaluator (Constant, ConstantOfShape, shape arithmetic feeding Reshape, transposed weights...);
any other node goes to the handler for its op type, except a Transpose that moves the batch
axis, which starts the gather dynamo writes for adaptive average pooling (adaptive_pool.py).
Nodes without a handler are collected, and one error lists every one of them.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from snnc.compiler.errors import ModelError, UnsupportedOpsError
from snnc.compiler.ir.graph import Graph, Node
from snnc.compiler.ir.verify import verify

from . import adaptive_pool
from .context import ImportContext, first_output, label
from .handlers import HANDLERS
from .loader import default_opset
from .reference import NONDETERMINISTIC, evaluate_node

# ops that, after an unsupported node, are most likely computing a shape from its output (old
# exporters' Flatten: Shape -> Gather -> Unsqueeze -> Concat -> Reshape); they would fold once
# the unsupported node is replaced, so they are not reported
_SHAPE_ARITHMETIC = {"Gather", "Cast", "ConstantOfShape", "Range", "Expand", "Equal", "Where",
                     "ReduceProd", "Size", "Constant"}


def supported_ops() -> list[str]:
    return sorted(HANDLERS)


def import_model(model: onnx.ModelProto, input_shape: tuple[int, ...] | None = None,
                 name: str = "model") -> Graph:
    """Convert a checked, shape-inferred model to an IR graph (see loader.prepare)."""
    graph = model.graph
    ctx = ImportContext(default_opset(model), _element_types(graph), _used(graph))
    for init in graph.initializer:
        ctx.set_const(init.name, _initializer(init))
    _add_input(ctx, graph, input_shape)
    offenders: list[tuple[str, str]] = []
    outputs: list[str | None] = []
    poisoned: set[str] = set()
    nodes = list(graph.node)
    done: set[int] = set()  # nodes already imported as part of a recognised pattern

    def offend(node: onnx.NodeProto, op: str) -> None:
        offenders.append((label(node), op))
        outputs.append(first_output(node))
        poisoned.update(node.output)

    for k, node in enumerate(nodes):
        if k in done:
            continue
        ctx.current = node
        if node.domain not in ("", "ai.onnx"):
            offend(node, f"{node.domain}::{node.op_type}")
        elif any(i in poisoned for i in node.input):
            poisoned.update(node.output)  # depends on an op we already reported
            if node.op_type not in HANDLERS and node.op_type not in _SHAPE_ARITHMETIC:
                offend(node, node.op_type)
        elif all(not i or ctx.is_const(i) for i in node.input) and (
            node.op_type not in NONDETERMINISTIC
        ):
            _fold(ctx, model, node)
        elif adaptive_pool.starts_here(ctx, node):
            done.update(adaptive_pool.import_region(ctx, model, nodes, k,
                                                    lambda n: _fold(ctx, model, n)))
        elif node.op_type in HANDLERS:
            HANDLERS[node.op_type](ctx, node)
        else:
            offend(node, node.op_type)
    ctx.current = None
    if offenders:
        raise UnsupportedOpsError(offenders, supported_ops(), outputs)
    return _finish(ctx, graph, name)


def _element_types(graph: onnx.GraphProto) -> dict[str, int]:
    """Element types that the model declares or shape inference found, by tensor name."""
    types = {t.name: t.data_type for t in graph.initializer}
    for value in (*graph.input, *graph.value_info, *graph.output):
        elem = value.type.tensor_type.elem_type
        if elem:
            types[value.name] = elem
    return types


def _used(graph: onnx.GraphProto) -> set[str]:
    return {i for node in graph.node for i in node.input if i} | {o.name for o in graph.output}


def _initializer(tensor: onnx.TensorProto) -> np.ndarray:
    try:
        return numpy_helper.to_array(tensor)
    except (KeyError, ValueError, TypeError) as exc:  # unknown dtype, size mismatch, ...
        raise ModelError(f"initializer '{tensor.name}' cannot be read ({type(exc).__name__}: "
                         f"{exc}); the file may be corrupted, export it again") from None


def _add_input(ctx: ImportContext, graph: onnx.GraphProto,
               input_shape: tuple[int, ...] | None) -> None:
    inputs = [i for i in graph.input if not ctx.is_const(i.name)]  # opset<9 lists weights too
    if len(inputs) != 1:
        names = ", ".join(f"'{i.name}'" for i in inputs) or "none"
        raise ModelError(f"the model has {len(inputs)} inputs ({names}); snnc compiles models "
                         "with exactly one input tensor")
    value = inputs[0]
    tensor_type = value.type.tensor_type
    if tensor_type.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                                     onnx.TensorProto.DOUBLE):
        kind = (onnx.TensorProto.DataType.Name(tensor_type.elem_type)
                if tensor_type.elem_type in onnx.TensorProto.DataType.values()
                else f"unknown ({tensor_type.elem_type})")
        raise ModelError(f"input '{value.name}' has element type {kind}; snnc compiles "
                         "models with a float input")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    if input_shape is not None:
        shape = tuple(int(d) for d in input_shape)
        if len(dims) and len(shape) != len(dims) - 1:
            raise ModelError(f"--input-shape {list(shape)} has {len(shape)} dims; input "
                             f"'{value.name}' has {len(dims) - 1} besides the batch")
        clashes = [(k, d) for k, d in enumerate(dims[1:]) if d and d != shape[k]]
        if clashes:
            k, d = clashes[0]
            raise ModelError(f"--input-shape {list(shape)} sets axis {k + 1} to {shape[k]}, but "
                             f"input '{value.name}' fixes it at {d}; only dynamic axes can be set")
    else:
        if len(dims) < 2:
            raise ModelError(f"input '{value.name}' has rank {len(dims)}; snnc expects a batch "
                             "axis followed by the sample's axes (NCHW or NF)")
        if any(d is None or d <= 0 for d in dims[1:]):
            shown = ["?" if d is None else str(d) for d in dims]
            raise ModelError(f"input '{value.name}' has dynamic size [{', '.join(shown)}]; set "
                             "the sample shape with --input-shape C,H,W (the batch axis may "
                             "stay dynamic)")
        shape = tuple(int(d) for d in dims[1:])
    ctx.batch = dims[0] if dims and dims[0] else None
    ctx.nodes.append(Node(name="input", op="input", attrs={"shape": list(shape)}, shape=shape,
                          source=(value.name, "input")))
    ctx.shapes["input"] = shape
    ctx.alias(value.name, "input")


def _fold(ctx: ImportContext, model: onnx.ModelProto, node: onnx.NodeProto) -> None:
    """Evaluate a node whose inputs are all constants, in the model's own opset."""
    try:
        results = evaluate_node(model, node, {i: ctx.consts[i] for i in node.input if i})
    except Exception as exc:  # the reference evaluator raises many exception types
        raise ctx.fail(f"could not fold this constant expression: {exc}") from None
    for out, value in zip([o for o in node.output if o], results, strict=True):
        ctx.set_const(out, value)


def _finish(ctx: ImportContext, graph: onnx.GraphProto, name: str) -> Graph:
    if len(graph.output) != 1:
        raise ModelError(f"the model has {len(graph.output)} outputs; snnc compiles models "
                         "with exactly one output")
    out = graph.output[0].name
    if out not in ctx.values:
        raise ModelError(f"output '{out}' does not depend on the model input")
    ir = Graph(tuple(ctx.nodes), ctx.values[out], {"name": name, "opset": ctx.opset,
                                                   "stage": "ann"})
    ir = ir.replace()  # drop nodes the output does not use
    _check_softmax_last(ir, {v: k for k, v in ctx.values.items()})
    verify(ir)
    return ir


def _check_softmax_last(graph: Graph, outputs: dict[str, str]) -> None:
    for node in graph.nodes:
        if node.op == "softmax" and node.name != graph.output:
            error = ModelError.at(node, "")
            raise ModelError("Softmax inside the network has no spiking equivalent; only a "
                             "final Softmax is supported", node=error.node, op=error.op,
                             output=outputs.get(node.name))
