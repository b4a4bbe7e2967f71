"""Slice and Split of activations against onnxruntime, across opsets and bound conventions."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import parser

from snnc.compiler.errors import ModelError
from snnc.compiler.executor import run
from snnc.frontends.onnx import import_model, prepare


def _check(text: str, x: np.ndarray) -> None:
    model = parser.parse_model(text)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (ref,) = session.run(None, {"x": x})
    ours = run(import_model(prepare(model)), x)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


X = np.arange(2 * 6 * 5 * 4, dtype=np.float32).reshape(2, 6, 5, 4)


@pytest.mark.parametrize("starts, ends, axes, steps", [
    ([1], [4], [1], [1]),
    ([0, 1], [3, -1], [2, 3], [1, 1]),
    ([-2], [100], [-1], [1]),
    ([5], [0], [1], [-2]),
    ([4], [-100], [2], [-1]),
    ([0], [6], [1], [2]),
])
def test_slice_opset13(starts: list, ends: list, axes: list, steps: list) -> None:
    def ints(name: str, v: list) -> str:
        return f"int64[{len(v)}] {name} = {{{', '.join(map(str, v))}}}"
    _check(f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 6, 5, 4] x) => (float[N, ?, ?, ?] y)
        <{ints("s", starts)}, {ints("e", ends)}, {ints("a", axes)}, {ints("t", steps)}>
        {{ y = Slice(x, s, e, a, t) }}""", X)


def test_slice_opset9_attributes() -> None:
    _check("""<ir_version: 4, opset_import: ["" : 9]>
        g (float[N, 6, 5, 4] x) => (float[N, ?, ?, ?] y)
        { y = Slice <starts = [1, 2], ends = [3, 5], axes = [1, 3]> (x) }""", X)


@pytest.mark.parametrize("opset, split", [(11, "<axis = 1, split = [2, 4]>"),
                                          (13, "<axis = 1>"), (18, "<axis = 1, num_outputs = 2>")])
def test_split_then_concat_swapped(opset: int, split: str) -> None:
    parts = "(x, sp)" if opset == 13 else "(x)"
    init = "<int64[2] sp = {2, 4}>" if opset == 13 else ""
    _check(f"""<ir_version: 8, opset_import: ["" : {opset}]>
        g (float[N, 6, 5, 4] x) => (float[N, 6, 5, 4] y) {init}
        {{ a, b = Split {split} {parts}
           y = Concat <axis = 1> (b, a) }}""", X)


def test_slicing_the_batch_axis_is_refused() -> None:
    model = parser.parse_model("""<ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 6] x) => (float[?, 6] y) <int64[1] s = {0}, int64[1] e = {1},
        int64[1] a = {0}> { y = Slice(x, s, e, a) }""")
    with pytest.raises(ModelError, match="batch axis"):
        import_model(prepare(model))
