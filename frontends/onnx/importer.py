"""ONNX ModelProto -> snnc IR.

Walks the nodes in order. A node whose inputs are all constants is folded with onnx's reference
evaluator (Constant, ConstantOfShape, shape arithmetic feeding Reshape, transposed weights...);
any other node goes to the handler for its op type. Nodes without a handler are collected, and
one error lists every one of them.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from snnc.compiler.errors import ModelError, UnsupportedOpsError
from snnc.compiler.ir.graph import Graph, Node
from snnc.compiler.ir.verify import verify

from .context import ImportContext, label
from .handlers import HANDLERS
from .loader import default_opset

# ops that, after an unsupported node, are most likely computing a shape from its output (old
# exporters' Flatten: Shape -> Gather -> Unsqueeze -> Concat -> Reshape); they would fold once
# the unsupported node is replaced, so they are not reported
_SHAPE_ARITHMETIC = {"Gather", "Cast", "ConstantOfShape", "Range", "Expand", "Equal", "Where",
                     "ReduceProd", "Size", "Constant"}
# ops whose value changes from run to run: never folded
_NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                     "Multinomial", "Bernoulli"}


def supported_ops() -> list[str]:
    return sorted(HANDLERS)


def import_model(model: onnx.ModelProto, input_shape: tuple[int, ...] | None = None,
                 name: str = "model") -> Graph:
    """Convert a checked, shape-inferred model to an IR graph (see loader.prepare)."""
    ctx = ImportContext(default_opset(model))
    graph = model.graph
    for init in graph.initializer:
        ctx.set_const(init.name, _initializer(init))
    _add_input(ctx, graph, input_shape)
    offenders: list[tuple[str, str]] = []
    poisoned: set[str] = set()
    for node in graph.node:
        ctx.current = node
        if node.domain not in ("", "ai.onnx"):
            offenders.append((label(node), f"{node.domain}::{node.op_type}"))
            poisoned.update(node.output)
        elif any(i in poisoned for i in node.input):
            poisoned.update(node.output)  # depends on an op we already reported
            if node.op_type not in HANDLERS and node.op_type not in _SHAPE_ARITHMETIC:
                offenders.append((label(node), node.op_type))
        elif all(not i or ctx.is_const(i) for i in node.input) and (
            node.op_type not in _NONDETERMINISTIC
        ):
            _fold(ctx, model, node)
        elif node.op_type in HANDLERS:
            HANDLERS[node.op_type](ctx, node)
        else:
            offenders.append((label(node), node.op_type))
            poisoned.update(node.output)
    ctx.current = None
    if offenders:
        raise UnsupportedOpsError(offenders, supported_ops())
    return _finish(ctx, graph, name)


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
    feeds = {i: ctx.consts[i] for i in node.input if i}
    sub = onnx.helper.make_model(
        onnx.helper.make_graph([node], "fold",
                               [onnx.helper.make_tensor_value_info(i, onnx.TensorProto.UNDEFINED,
                                                                   None) for i in feeds],
                               [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED,
                                                                   None) for o in node.output
                                if o]),
        opset_imports=list(model.opset_import),
        ir_version=model.ir_version,
    )
    try:
        results = ReferenceEvaluator(sub).run(None, feeds)
    except Exception as exc:  # the reference evaluator raises many exception types
        raise ctx.fail(f"could not fold this constant expression: {exc}") from None
    for out, value in zip([o for o in node.output if o], results, strict=True):
        ctx.set_const(out, np.asarray(value))


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
    _check_softmax_last(ir)
    verify(ir)
    return ir


def _check_softmax_last(graph: Graph) -> None:
    for node in graph.nodes:
        if node.op == "softmax" and node.name != graph.output:
            raise ModelError.at(node, "Softmax inside the network has no spiking equivalent; "
                                "only a final Softmax is supported")
