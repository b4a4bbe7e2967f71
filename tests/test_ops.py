"""Each IR kernel, reached through the ONNX importer, matches onnxruntime on small inline models
covering the settings real exports use (strides with remainders, asymmetric pads, groups,
auto_pad, ceil mode, opset-dependent forms of Clip/Softmax/Pad/Squeeze...)."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
from helpers import SeededRandom, make_model, max_rel_error, ort_run
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from snnc.compiler.executor import run
from snnc.compiler.ir.graph import Graph
from snnc.compiler.ir.printer import to_json, to_text
from snnc.frontends.onnx import import_model, prepare

rand = SeededRandom(0)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """The same random data for a test however the tests are selected or ordered."""
    rand.reset()


def check(model: onnx.ModelProto, x: np.ndarray, *, by_onnx: bool = False) -> Graph:
    """Import `model`, run it on `x` with the IR executor and with onnxruntime (or, where
    onnxruntime lacks a feature, onnx's reference evaluator), and compare."""
    graph = import_model(prepare(model))
    ours = run(graph, x)
    if by_onnx:
        ref = np.asarray(ReferenceEvaluator(model).run(None, {"x": x})[0])
    else:
        ref = ort_run(model, x)
    assert ours.shape == ref.shape
    assert ours.dtype == np.float32
    assert max_rel_error(ours, ref) <= 1e-4
    assert tuple(graph.output_node.shape) == ref.shape[1:]
    # every op prints, and its attributes are plain JSON
    assert len(to_text(graph).splitlines()) >= len(graph) + 1
    assert [n["name"] for n in json.loads(to_json(graph))["nodes"]] == [n.name for n in graph]
    return graph


def ops_of(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes]


# ---- convolution ---------------------------------------------------------------------------

CONV2D = {
    # name: (x shape, weight shape, attributes)
    "basic": ((2, 3, 7, 7), (4, 3, 3, 3), "pads = [1, 1, 1, 1]"),
    "strides_remainder": ((2, 3, 9, 10), (4, 3, 3, 3), "strides = [2, 3]"),
    "asymmetric_pads": ((2, 3, 6, 7), (4, 3, 3, 2), "pads = [0, 1, 2, 0], strides = [2, 1]"),
    "dilations": ((2, 3, 9, 8), (4, 3, 3, 3), "dilations = [2, 1], pads = [1, 2, 0, 1]"),
    "grouped": ((2, 4, 6, 6), (6, 2, 3, 3), "group = 2, pads = [1, 1, 1, 1]"),
    "depthwise": ((2, 4, 6, 6), (4, 1, 3, 3), "group = 4, strides = [2, 2]"),
    "depthwise_multiplier": ((2, 4, 6, 6), (8, 1, 3, 3), "group = 4, pads = [1, 0, 1, 0]"),
    "same_upper": ((2, 3, 7, 8), (4, 3, 3, 4), 'auto_pad = "SAME_UPPER", strides = [2, 3]'),
    "same_lower": ((2, 3, 7, 8), (4, 3, 4, 3), 'auto_pad = "SAME_LOWER", strides = [2, 2]'),
    "valid": ((2, 3, 7, 8), (4, 3, 3, 3), 'auto_pad = "VALID", strides = [2, 2]'),
    "one_by_one": ((2, 5, 4, 4), (3, 5, 1, 1), ""),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("case", sorted(CONV2D))
def test_conv2d(case: str, bias: bool) -> None:
    x_shape, w_shape, attrs = CONV2D[case]
    consts = {"w": rand(*w_shape)}
    inputs = "x, w"
    if bias:
        consts["b"] = rand(w_shape[0])
        inputs += ", b"
    model = make_model(f"y = Conv <{attrs}> ({inputs})" if attrs else f"y = Conv ({inputs})",
                       ("N", *x_shape[1:]), consts=consts)
    graph = check(model, rand(*x_shape))
    assert ops_of(graph) == ["input", "conv"]


@pytest.mark.parametrize("mode", ["SAME_UPPER", "SAME_LOWER"])
def test_conv_same_dilated(mode: str) -> None:
    """onnxruntime refuses dilation with auto_pad SAME_*: compare with onnx's evaluator."""
    model = make_model(f'y = Conv <auto_pad = "{mode}", dilations = [2, 2], strides = [2, 1]> '
                       "(x, w)", ("N", 3, 8, 7), consts={"w": rand(4, 3, 2, 3)})
    check(model, rand(2, 3, 8, 7), by_onnx=True)


@pytest.mark.parametrize("attrs", [
    "strides = [2], pads = [1, 0]",
    'auto_pad = "SAME_LOWER", strides = [2]',
    "group = 3, pads = [2, 2], dilations = [2]",
])
def test_conv1d(attrs: str) -> None:
    consts = {"w": rand(6, 1 if "group" in attrs else 3, 3), "b": rand(6)}
    model = make_model(f"y = Conv <{attrs}> (x, w, b)", ("N", 3, 11), consts=consts)
    check(model, rand(2, 3, 11))


def test_conv3d() -> None:
    consts = {"w": rand(2, 3, 2, 3, 2), "b": rand(2)}
    model = make_model("y = Conv <strides = [1, 2, 1], pads = [0, 1, 1, 1, 0, 0]> (x, w, b)",
                       ("N", 3, 4, 5, 4), consts=consts)
    check(model, rand(2, 3, 4, 5, 4))


# ---- pooling -------------------------------------------------------------------------------

MAXPOOL = [
    "kernel_shape = [3, 3], strides = [2, 2]",
    "kernel_shape = [3, 3], strides = [2, 2], ceil_mode = 1",
    "kernel_shape = [2, 2], strides = [2, 2], ceil_mode = 1",
    "kernel_shape = [3, 2], strides = [2, 3], pads = [1, 0, 1, 1], ceil_mode = 1",
    "kernel_shape = [3, 3], strides = [2, 2], pads = [1, 1, 1, 1]",
    "kernel_shape = [2, 3], pads = [0, 1, 1, 0]",
    "kernel_shape = [2, 2], dilations = [2, 2]",
    "kernel_shape = [2, 2], strides = [2, 2], dilations = [2, 1], ceil_mode = 1",
    'kernel_shape = [3, 3], strides = [2, 2], auto_pad = "SAME_UPPER"',
    'kernel_shape = [2, 2], strides = [2, 2], auto_pad = "SAME_LOWER"',
]


@pytest.mark.parametrize("attrs", MAXPOOL)
def test_maxpool(attrs: str) -> None:
    model = make_model(f"y = MaxPool <{attrs}> (x)", ("N", 3, 7, 8))
    graph = check(model, rand(2, 3, 7, 8))
    assert ops_of(graph) == ["input", "maxpool"]


AVGPOOL = [
    "kernel_shape = [3, 3], strides = [2, 2]",
    "kernel_shape = [3, 3], strides = [2, 2], ceil_mode = 1",
    "kernel_shape = [2, 2], strides = [2, 2], ceil_mode = 1",
    "kernel_shape = [3, 3], strides = [2, 2], pads = [1, 1, 1, 1]",
    "kernel_shape = [3, 2], strides = [2, 3], pads = [1, 0, 0, 1], ceil_mode = 1",
    "kernel_shape = [2, 3], pads = [0, 1, 1, 0]",
    'kernel_shape = [3, 3], strides = [2, 2], auto_pad = "SAME_UPPER"',
]


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("attrs", AVGPOOL)
def test_avgpool(attrs: str, count_include_pad: int) -> None:
    model = make_model(
        f"y = AveragePool <{attrs}, count_include_pad = {count_include_pad}> (x)",
        ("N", 3, 7, 8))
    graph = check(model, rand(2, 3, 7, 8))
    assert ops_of(graph) == ["input", "avgpool"]


def test_avgpool_dilations() -> None:
    model = make_model("y = AveragePool <kernel_shape = [2, 2], dilations = [2, 2], "
                       "pads = [1, 1, 1, 1], count_include_pad = 0> (x)",
                       ("N", 3, 7, 8), opset=19)
    check(model, rand(2, 3, 7, 8))


def test_pool_1d() -> None:
    model = make_model("m = MaxPool <kernel_shape = [3], strides = [2], ceil_mode = 1> (x)\n"
                       "y = AveragePool <kernel_shape = [2], pads = [1, 0]> (m)",
                       ("N", 3, 10))
    check(model, rand(2, 3, 10))


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(3, 5, 6), (3, 7)], ids=["2d", "1d"])
def test_global_pool(op: str, shape: tuple[int, ...]) -> None:
    model = make_model(f"y = {op} (x)", ("N", *shape))
    graph = check(model, rand(2, *shape))
    assert graph.output_node.shape == (3, *[1] * (len(shape) - 1))


# ---- fully connected -----------------------------------------------------------------------

@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("c_shape", [None, (3,), (1, 3), ()],
                         ids=["no_c", "c_m", "c_1m", "c_scalar"])
@pytest.mark.parametrize("alpha_beta", [(1.0, 1.0), (0.5, 2.0)], ids=["plain", "scaled"])
def test_gemm(trans_b: int, c_shape: tuple[int, ...] | None,
              alpha_beta: tuple[float, float]) -> None:
    alpha, beta = alpha_beta
    consts = {"b": rand(3, 5) if trans_b else rand(5, 3)}
    inputs = "x, b"
    if c_shape is not None:
        consts["c"] = rand(*c_shape)
        inputs += ", c"
    model = make_model(f"y = Gemm <transB = {trans_b}, alpha = {alpha}, beta = {beta}> "
                       f"({inputs})", ("N", 5), consts=consts)
    graph = check(model, rand(4, 5))
    assert ops_of(graph) == ["input", "linear"]


def test_matmul_add() -> None:
    model = make_model("f = Flatten (x)\nm = MatMul (f, w)\ny = Add (m, b)", ("N", 2, 3, 2),
                       consts={"w": rand(12, 4), "b": rand(4)})
    check(model, rand(3, 2, 3, 2))


def test_matmul_on_last_axis() -> None:
    model = make_model("y = MatMul (x, w)", ("N", 2, 3, 6), consts={"w": rand(6, 4)})
    check(model, rand(2, 2, 3, 6))


# ---- normalisation and activations ---------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 4, 5), (6,), (3, 7)], ids=["2d", "features", "1d"])
def test_batchnorm(shape: tuple[int, ...]) -> None:
    c = shape[0]
    consts = {"g": rand(c), "b": rand(c), "m": rand(c),
              "v": rand.rng.uniform(0.5, 2.0, c).astype(np.float32)}
    model = make_model("y = BatchNormalization <epsilon = 0.001> (x, g, b, m, v)", ("N", *shape),
                       consts=consts)
    check(model, rand(2, *shape))


def test_relu() -> None:
    check(make_model("y = Relu (x)", ("N", 3, 4, 4)), rand(2, 3, 4, 4))


CLIP = {
    "min_max": (13, "y = Clip (x, lo, hi)"),
    "min_max_shape_1": (13, "y = Clip (x, lo1, hi1)"),  # onnxruntime accepts [1] bounds
    "min_only": (13, "y = Clip (x, lo)"),
    "max_only": (13, 'y = Clip (x, "", hi)'),
    "none": (11, "y = Clip (x)"),
    "attr_min_max": (9, "y = Clip <min = -0.5, max = 0.75> (x)"),
    "attr_max_only": (9, "y = Clip <max = 0.75> (x)"),
}


@pytest.mark.parametrize("case", sorted(CLIP))
def test_clip(case: str) -> None:
    opset, body = CLIP[case]
    bounds = {"lo": np.float32(-0.5), "hi": np.float32(0.75),
              "lo1": np.array([-0.25], np.float32), "hi1": np.array([0.5], np.float32)}
    consts = {k: np.asarray(v) for k, v in bounds.items() if re.search(rf"\b{k}\b", body)}
    check(make_model(body, ("N", 3, 4, 4), opset=opset, consts=consts), rand(2, 3, 4, 4))


SOFTMAX = {
    "opset13_default_2d": (13, "", (10,)),
    "opset13_axis1_4d": (13, "<axis = 1>", (3, 4, 5)),
    "opset13_last_4d": (13, "<axis = -1>", (3, 4, 5)),
    "opset13_axis2_4d": (13, "<axis = 2>", (3, 4, 5)),
    "opset11_default_4d": (11, "", (3, 4, 5)),  # coerced to 2-d: over C, H, W together
    "opset11_axis2_4d": (11, "<axis = 2>", (3, 4, 5)),  # over H, W together
    "opset11_axis_neg1_4d": (11, "<axis = -1>", (3, 4, 5)),
}


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("case", sorted(SOFTMAX))
def test_softmax(case: str, op: str) -> None:
    opset, attrs, shape = SOFTMAX[case]
    model = make_model(f"y = {op} {attrs} (x)", ("N", *shape), opset=opset)
    check(model, 3 * rand(2, *shape))


# ---- arithmetic ----------------------------------------------------------------------------

CONSTANTS = {
    "scalar": (),
    "scalar_1": (1,),
    "per_channel": (1, 3, 1, 1),
    "channel_3d": (3, 1, 1),
    "full": (3, 4, 5),
    "full_4d": (1, 3, 4, 5),
    "last_axis": (5,),
}


# c / x is refused (see test_frontend)
BINARY = [(op, first) for op in ("Add", "Sub", "Mul", "Div") for first in (False, True)
          if (op, first) != ("Div", True)]


@pytest.mark.parametrize("op, const_first", BINARY,
                         ids=[f"{'c_' if first else 'x_'}{op}" for op, first in BINARY])
@pytest.mark.parametrize("kind", sorted(CONSTANTS))
def test_binary_with_constant(op: str, const_first: bool, kind: str) -> None:
    c = rand(*CONSTANTS[kind])
    c = np.where(np.abs(c) < 0.2, np.float32(0.5), c).astype(np.float32)  # a sane divisor
    args = "c, x" if const_first else "x, c"
    graph = check(make_model(f"y = {op} ({args})", ("N", 3, 4, 5), consts={"c": c}),
                  rand(2, 3, 4, 5))
    assert ops_of(graph) == ["input", "affine"]


@pytest.mark.parametrize("op", ["Add", "Sub"])
def test_binary_of_two_activations(op: str) -> None:
    model = make_model(f"r = Relu (x)\ny = {op} (r, x)", ("N", 3, 4, 4))
    graph = check(model, rand(2, 3, 4, 4))
    assert "add" in ops_of(graph)


def test_sub_of_activations_order() -> None:
    # x - relu(x) = min(x, 0): checks which side is negated
    model = make_model("r = Relu (x)\ny = Sub (x, r)", ("N", 6))
    check(model, rand(3, 6))


@pytest.mark.parametrize("body", [
    "r = Relu (x)\ny = Sum (x, r)",
    "r = Relu (x)\ny = Sum (x, r, c)",
    "y = Sum (x, c)",
    "s = Sum (x)\ny = Relu (s)",
    "r = Relu (x)\nn = Neg (c)\ny = Sum (r, c, x, n, c)",
], ids=["two", "two_const", "one_const", "one", "many"])
def test_sum(body: str) -> None:
    consts = {"c": rand(1, 3, 1, 1)}  # unused by some bodies, which is fine
    check(make_model(body, ("N", 3, 4, 4), consts=consts), rand(2, 3, 4, 4))


# ---- layout --------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [1, -3])
def test_concat_channels(axis: int) -> None:
    model = make_model(f"r = Relu (x)\nm = MaxPool <kernel_shape = [1, 1]> (x)\n"
                       f"y = Concat <axis = {axis}> (r, x, m)", ("N", 3, 4, 4))
    graph = check(model, rand(2, 3, 4, 4))
    assert graph.output_node.shape == (9, 4, 4)


def test_concat_spatial() -> None:
    model = make_model("r = Relu (x)\ny = Concat <axis = 3> (x, r)", ("N", 3, 4, 4))
    check(model, rand(2, 3, 4, 4))


PAD = {
    "opset11": (11, "y = Pad (x, p)", {"p": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)}),
    "opset11_value": (11, "y = Pad (x, p, v)",
                      {"p": np.array([0, 1, 0, 1, 0, 0, 1, 0], np.int64),
                       "v": np.array(0.5, np.float32)}),
    "opset18_axes": (18, 'y = Pad (x, p, v, a)',
                     {"p": np.array([1, 0, 2, 3], np.int64), "v": np.array(-1.5, np.float32),
                      "a": np.array([2, 3], np.int64)}),
    "opset18_negative_axes": (18, 'y = Pad (x, p, "", a)',
                              {"p": np.array([1, 2], np.int64), "a": np.array([-1], np.int64)}),
    "opset10_attr": (10, "y = Pad <pads = [0, 0, 1, 0, 0, 0, 0, 2], value = 0.25> (x)", {}),
}


@pytest.mark.parametrize("case", sorted(PAD))
def test_pad(case: str) -> None:
    opset, body, consts = PAD[case]
    graph = check(make_model(body, ("N", 3, 4, 5), opset=opset, consts=consts),
                  rand(2, 3, 4, 5))
    assert ops_of(graph) == ["input", "pad"]


@pytest.mark.parametrize("axis", [1, -3])
def test_flatten(axis: int) -> None:
    graph = check(make_model(f"y = Flatten <axis = {axis}> (x)", ("N", 3, 4, 5)),
                  rand(2, 3, 4, 5))
    assert graph.output_node.shape == (60,)


def test_reshape_shape_chain() -> None:
    """torch's `x.view(x.size(0), -1)`: the batch size read from Shape at run time."""
    body = """
        r = Relu (x)
        s = Shape (r)
        i = Constant <value = int64 {0}> ()
        n = Gather <axis = 0> (s, i)
        nn = Unsqueeze (n, zero)
        t = Concat <axis = 0> (nn, minus_one)
        y = Reshape (r, t)
    """
    consts = {"zero": np.array([0], np.int64), "minus_one": np.array([-1], np.int64)}
    graph = check(make_model(body, ("N", 3, 4, 5), consts=consts, y_shape=("N", 60)),
                  rand(3, 3, 4, 5))
    assert graph.output_node.shape == (60,)


def test_reshape_shape_slice() -> None:
    """Shape with start=1 (opset 15+) gives the sample's dims: their product flattens."""
    body = """
        s = Shape <start = 1> (x)
        p = ReduceProd <keepdims = 1> (s)
        t = Concat <axis = 0> (minus_one, p)
        y = Reshape (x, t)
    """
    model = make_model(body, ("N", 3, 4, 5), opset=18, y_shape=("N", 60),
                       consts={"minus_one": np.array([-1], np.int64)})
    check(model, rand(2, 3, 4, 5))


def test_reshape_static_batch() -> None:
    """A model exported with a fixed batch writes that batch into the target."""
    model = make_model("y = Reshape (x, t)", (4, 3, 4, 5),
                       consts={"t": np.array([4, 60], np.int64)})
    graph = check(model, rand(4, 3, 4, 5))
    assert graph.output_node.shape == (60,)


@pytest.mark.parametrize("target, per_sample", [
    ([0, 0, -1], (3, 20)),
    ([-1, 3, 20], (3, 20)),
    ([0, -1, 5], (12, 5)),
    ([0, 0, 5, 4], (3, 5, 4)),  # 0 copies the input dim at that position
    ([0, 3, 0, 5, 1], (3, 4, 5, 1)),
    ([1, 60], (60,)),  # a batch of 1 written out, as exporters with fixed batch do
], ids=["zero_zero_minus1", "minus1_first", "zero_minus1_k", "zero_second", "zero_third",
         "literal_1"])
def test_reshape_target(target: list[int], per_sample: tuple[int, ...]) -> None:
    batch = 1 if target[0] == 1 else 2
    model = make_model("y = Reshape (x, t)", ("N", 3, 4, 5),
                       consts={"t": np.array(target, np.int64)})
    graph = check(model, rand(batch, 3, 4, 5))
    assert graph.output_node.shape == per_sample


SQUEEZE = {
    "opset11_attr": (11, "u = Unsqueeze <axes = [2, -1]> (x)\nr = Relu (u)\n"
                         "y = Squeeze <axes = [-1, 2]> (r)", {}),
    "opset11_squeeze_all": (11, "u = Unsqueeze <axes = [2]> (x)\ny = Squeeze (u)", {}),
    "opset13_inputs": (13, "u = Unsqueeze (x, a)\nr = Relu (u)\ny = Squeeze (r, a)",
                       {"a": np.array([1, 3], np.int64)}),
    "opset13_squeeze_all": (13, "u = Unsqueeze (x, a)\ny = Squeeze (u)",
                            {"a": np.array([-1], np.int64)}),
}


@pytest.mark.parametrize("case", sorted(SQUEEZE))
def test_squeeze_unsqueeze(case: str) -> None:
    """Squeeze without axes drops every size-1 axis but the batch (which may be 1)."""
    opset, body, consts = SQUEEZE[case]
    model = make_model(body, ("N", 3, 4, 5), opset=opset, consts=consts, y_shape=("N", 3, 4, 5))
    check(model, rand(2, 3, 4, 5))


@pytest.mark.parametrize("opset", [11, 13])
def test_unsqueeze_shape(opset: int) -> None:
    body = ("y = Unsqueeze <axes = [1, 3]> (x)" if opset < 13 else "y = Unsqueeze (x, a)")
    consts = {"a": np.array([3, 1], np.int64)} if opset >= 13 else {}
    graph = check(make_model(body, ("N", 6, 5), opset=opset, consts=consts), rand(2, 6, 5))
    assert graph.output_node.shape == (1, 6, 1, 5)


@pytest.mark.parametrize("perm", [[0, 2, 3, 1], [0, 3, 1, 2], [0, 1, 3, 2], [0, 1, 2, 3]])
def test_transpose(perm: list[int]) -> None:
    graph = check(make_model(f"y = Transpose <perm = {perm}> (x)", ("N", 3, 4, 5)),
                  rand(2, 3, 4, 5))
    assert graph.output_node.shape == tuple((3, 4, 5)[p - 1] for p in perm[1:])


@pytest.mark.parametrize("body, opset", [
    ("i = Identity (x)\ny = Relu (i)", 13),
    ("d = Dropout (x)\ny = Relu (d)", 13),
    ("d = Dropout (x, ratio)\ny = Relu (d)", 13),
    ("d = Dropout <ratio = 0.3> (x)\ny = Relu (d)", 11),
], ids=["identity", "dropout", "dropout_ratio", "dropout_opset11"])
def test_passthrough(body: str, opset: int) -> None:
    consts = {"ratio": np.array(0.3, np.float32)} if "ratio)" in body else {}
    graph = check(make_model(body, ("N", 3, 4), opset=opset, consts=consts), rand(2, 3, 4))
    assert ops_of(graph) == ["input", "relu"]


@pytest.mark.parametrize("dtype", ["double", "float16"])
def test_other_float_inputs(dtype: str) -> None:
    """The executor computes in float32 whatever float type the model uses."""
    np_type = {"double": np.float64, "float16": np.float16}[dtype]
    model = onnx.parser.parse_model(f"""<ir_version: 8, opset_import: ["" : 13]>
        g ({dtype}[N, 2, 5, 5] x) => ({dtype}[N, 3] y) {{
            f = Flatten (x)
            g = Gemm <transB = 1> (f, w, b)
            y = Relu (g)
        }}""")
    for name, value in {"w": rand(3, 50), "b": rand(3)}.items():
        model.graph.initializer.append(numpy_helper.from_array(value.astype(np_type), name))
    x = rand(2, 2, 5, 5).astype(np_type)
    ours = run(import_model(prepare(model)), x)
    ref = ort_run(model, x).astype(np.float32)
    assert max_rel_error(ours, ref) <= (1e-4 if dtype == "double" else 1e-2)


def test_constant_nodes_feed_weights() -> None:
    """Weights written as Constant nodes, one transposed by a constant expression."""
    w = rand(2, 3, 1, 1)
    wt = rand(4, 2)
    body = f"""
        w = Constant <value = float[2, 3, 1, 1] {{{", ".join(map(str, w.reshape(-1)))}}}> ()
        c = Conv (x, w)
        f = Flatten (c)
        wt = Constant <value = float[4, 2] {{{", ".join(map(str, wt.reshape(-1)))}}}> ()
        wtt = Transpose (wt)
        y = MatMul (f, wtt)
    """
    graph = check(make_model(body, ("N", 3, 1, 1)), rand(2, 3, 1, 1))
    assert ops_of(graph) == ["input", "conv", "flatten", "linear"]


@pytest.mark.parametrize("shape_of", ["constant", "activation"])
def test_constant_of_shape(shape_of: str) -> None:
    """A fill of a fixed shape, or of the activation's shape (torch's full_like), whose batch
    size the importer writes as 1."""
    source = ("s = Constant <value = int64[4] {1, 3, 1, 1}> ()" if shape_of == "constant"
              else "s = Shape (x)")
    body = f"""
        {source}
        c = ConstantOfShape <value = float[1] {{0.5}}> (s)
        y = Add (x, c)
    """
    graph = check(make_model(body, ("N", 3, 4, 4), y_shape=("N", 3, 4, 4)), rand(2, 3, 4, 4))
    assert ops_of(graph) == ["input", "affine"]


def test_small_cnn() -> None:
    """Several ops chained, as an exporter writes them."""
    body = """
        c = Conv <pads = [1, 1, 1, 1]> (x, w1, b1)
        n = BatchNormalization (c, g, be, m, v)
        r = Relu (n)
        p = MaxPool <kernel_shape = [2, 2], strides = [2, 2], ceil_mode = 1> (r)
        d = Conv <group = 4> (p, w2)
        k = Clip (d, lo, hi)
        a = GlobalAveragePool (k)
        f = Flatten (a)
        l = Gemm <transB = 1> (f, w3, b3)
        y = Softmax (l)
    """
    consts = {"w1": rand(4, 2, 3, 3), "b1": rand(4), "g": rand(4), "be": rand(4), "m": rand(4),
              "v": rand.rng.uniform(0.5, 2, 4).astype(np.float32), "w2": rand(4, 1, 2, 2),
              "lo": np.array(0, np.float32), "hi": np.array(6, np.float32),
              "w3": rand(5, 4), "b3": rand(5)}
    graph = check(make_model(body, ("N", 2, 7, 7), consts=consts), rand(3, 2, 7, 7))
    assert ops_of(graph) == ["input", "conv", "batchnorm", "relu", "maxpool", "conv", "clip",
                             "global_avgpool", "flatten", "linear", "softmax"]
