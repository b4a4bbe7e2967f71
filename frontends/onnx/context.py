"""State of one ONNX import: which tensors are constants, which are activations (and which IR
node produces them), and the IR nodes emitted so far. Handlers talk to the model only through
this object, so every error they raise names the ONNX node and op being imported."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper

from snnc.compiler.errors import ModelError
from snnc.compiler.ir.graph import Node, unique_name
from snnc.compiler.ir.verify import infer_shape


def _text(name: str | bytes) -> str:
    """Protobuf hands back bytes for names that are not valid UTF-8 (corrupted files); show
    those escaped."""
    return name.decode("utf-8", errors="backslashreplace") if isinstance(name, bytes) else name


def label(node: onnx.NodeProto) -> str:
    """How a user knows the node: its name, else its first output."""
    return _text(node.name or (node.output[0] if node.output else "?"))


def first_output(node: onnx.NodeProto) -> str | None:
    """The tensor the node defines, which errors show beside its name (see node_label)."""
    return _text(node.output[0]) if node.output and node.output[0] else None


class ImportContext:
    def __init__(self, opset: int, types: Mapping[str, int] | None = None,
                 used: set[str] | None = None) -> None:
        self.opset = opset
        self.types = dict(types or {})  # ONNX tensor name -> element type, where inferred
        self.used = used  # tensors some node or the graph output reads (None: not known)
        self.batch: int | None = None  # the input's batch size where the model fixes it
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, str] = {}  # ONNX tensor name -> IR node name
        self.nodes: list[Node] = []
        self.shapes: dict[str, tuple[int, ...]] = {}  # IR node name -> per-sample shape
        self.current: onnx.NodeProto | None = None
        self._counters: dict[str, int] = {}

    # ---- errors -----------------------------------------------------------------------------
    def fail(self, message: str) -> ModelError:
        node = self.current
        if node is None:
            return ModelError(message)
        return ModelError(message, node=label(node), op=node.op_type, output=first_output(node))

    # ---- attributes -------------------------------------------------------------------------
    def attr(self, name: str, default: Any = None) -> Any:
        assert self.current is not None
        for a in self.current.attribute:
            if a.name == name:
                self._check_attr_type(a)
                value = helper.get_attribute_value(a)
                if isinstance(value, bytes):
                    try:
                        return value.decode()
                    except UnicodeDecodeError:
                        raise self.fail(f"attribute '{name}' is not valid text") from None
                return value
        return default

    def _check_attr_type(self, a: onnx.AttributeProto) -> None:
        """The checker does not always catch an attribute of the wrong type (say, strings
        where the spec wants ints); the op's schema says what it must be."""
        node = self.current
        assert node is not None
        try:
            schema = onnx.defs.get_schema(node.op_type, self.opset, node.domain)
        except onnx.defs.SchemaError:
            return
        spec = schema.attributes.get(a.name)
        if spec is not None and a.type != spec.type:
            expected = onnx.AttributeProto.AttributeType.Name(spec.type)
            found = onnx.AttributeProto.AttributeType.Name(a.type)
            raise self.fail(f"attribute '{a.name}' is {found}; the ONNX spec says {expected}")

    # ---- inputs -----------------------------------------------------------------------------
    def is_const(self, name: str) -> bool:
        return name in self.consts

    def is_value(self, name: str) -> bool:
        return name in self.values

    def const(self, name: str, what: str = "this input") -> np.ndarray:
        if name not in self.consts:
            raise self.fail(f"{what} ('{name}') must be a constant (an initializer or Constant), "
                            "but it is computed from the model input; snnc needs fixed weights")
        return self.consts[name]

    def is_used(self, name: str) -> bool:
        return self.used is None or name in self.used

    def optional_input(self, index: int) -> str | None:
        assert self.current is not None
        inputs = self.current.input
        return inputs[index] if index < len(inputs) and inputs[index] else None

    def optional_const(self, index: int, what: str) -> np.ndarray | None:
        name = self.optional_input(index)
        return None if name is None else self.const(name, what)

    def value(self, name: str) -> str:
        if name not in self.values:
            raise self.fail(f"input '{name}' is a constant where snnc expects the activation")
        return self.values[name]

    def shape(self, name: str) -> tuple[int, ...]:
        """Per-sample shape of an activation tensor."""
        return self.shapes[self.value(name)]

    # ---- outputs ----------------------------------------------------------------------------
    def set_const(self, name: str, value: np.ndarray) -> None:
        self.consts[name] = np.asarray(value)

    def alias(self, onnx_name: str, ir_name: str) -> None:
        self.values[onnx_name] = ir_name

    def emit(self, op: str, inputs: Sequence[str], *, attrs: Mapping[str, Any] | None = None,
             params: Mapping[str, np.ndarray] | None = None, output: str | None = None) -> Node:
        """Add an IR node. `inputs` are IR node names; `output` the ONNX tensor it defines
        (default: the current node's first output)."""
        k = self._counters.get(op, 0) + 1
        self._counters[op] = k
        name = unique_name(self.shapes, f"{op}{k}")
        src = self.current
        source = None if src is None else (label(src), src.op_type)
        node = Node(
            name=name,
            op=op,
            inputs=tuple(inputs),
            attrs=dict(attrs or {}),
            params={k: np.asarray(v, dtype=np.float32) for k, v in (params or {}).items()},
            source=source,
        )
        try:
            shape = infer_shape(node, [self.shapes[i] for i in node.inputs])
        except ModelError as exc:  # name the ONNX node with its output, as fail() does
            raise self.fail(exc.detail) if src is not None else exc from None
        node = node.replace(shape=shape)
        self.nodes.append(node)
        self.shapes[name] = shape
        if output is None and src is not None:
            output = src.output[0]
        if output:  # "" marks an intermediate node that defines no ONNX tensor
            self.values[output] = name
        return node
