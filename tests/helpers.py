"""Helpers shared by the test files: ONNX models from ONNX's text format, seeded random inputs,
onnxruntime as the reference, and the relative error the tests compare against it."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def ir_version(opset: int) -> int:
    """The IR version that goes with `opset` (onnx's own table)."""
    return 7 if opset <= 12 else 8 if opset <= 18 else 9 if opset <= 20 else 10


def parse_model(text: str, opset: int = 13, consts: dict[str, np.ndarray] | None = None,
                extra_opsets: str = "") -> onnx.ModelProto:
    """A model from the body of ONNX's text format (`graph (...) => (...) {...}`); `consts`
    become initializers."""
    model = onnx.parser.parse_model(
        f'<ir_version: {ir_version(opset)}, opset_import: ["" : {opset}{extra_opsets}]>\n'
        f"{text}")
    for name, value in (consts or {}).items():
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    return model


def make_model(body: str, x_shape: tuple[int | str, ...], *, opset: int = 13,
               consts: dict[str, np.ndarray] | None = None,
               y_shape: tuple[int | str, ...] | None = None) -> onnx.ModelProto:
    """A model with input `x` and output `y` from the nodes in `body`; `consts` become
    initializers. The output's shape is `y_shape`, or what ONNX shape inference finds."""
    y_type = "float" if y_shape is None else f"float[{','.join(map(str, y_shape))}]"
    model = parse_model(f"g (float[{','.join(map(str, x_shape))}] x) => ({y_type} y) {{\n"
                        f"{body}\n}}", opset, consts)
    if y_shape is None:
        model.graph.output[0].type.tensor_type.ClearField("shape")  # not a scalar: unknown
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    return model


class SeededRandom:
    """`rand(*shape)`: standard-normal float32 arrays from one generator (`.rng`), which
    `reset()` reseeds, so that a test gets the same data however tests are selected or
    ordered (call it from an autouse fixture)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape).astype(np.float32)


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The model's first output in onnxruntime (CPU), for `x` as its first input."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def max_rel_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """max |ours - ref| / max |ref| (the denominator at least 1e-6); the shapes must agree."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.max(np.abs(ours - ref)) / max(float(np.max(np.abs(ref))), 1e-6))
