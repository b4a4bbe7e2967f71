"""ConvTranspose: the IR executor matches onnxruntime on ONNX's node conformance cases and on
generated ones (strides, pads, output_padding, output_shape, auto_pad, groups, dilations, 1-d),
and its Loihi synapse form (the adjoint conv's matrix; a window at stride 1) is the executor's
map. The decoder-style torch net of issue 19 (a 2x nearest upsample and a ConvTranspose2d) is
in test_conv_transpose_net.py."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from helpers import max_rel_error, ort_run
from onnx import TensorProto, helper, numpy_helper
from onnx_cases import node_cases

from snnc.compiler.executor import run
from snnc.compiler.ir.graph import Node
from snnc.compiler.ir.verify import infer_shape
from snnc.compiler.loihi import linear_maps as lm
from snnc.compiler.loihi import op_maps
from snnc.compiler.ops import opdef
from snnc.frontends.onnx import import_model, prepare

RNG = np.random.default_rng(1)
CASES = {name: (m, x, y) for name, m, x, y in node_cases("ConvTranspose")}


def test_the_conformance_cases_are_there() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("name", sorted(CASES))
def test_executor_matches_conformance_cases(name: str) -> None:
    model, x, shipped = CASES[name]
    ours = run(import_model(prepare(model)), x)
    assert max_rel_error(ours, ort_run(model, x)) <= 1e-5
    assert max_rel_error(ours, shipped) <= 1e-5


def _model(shape: tuple[int, ...], c_out: int, kernel: int, attrs: dict,
           bias: bool = True) -> onnx.ModelProto:
    nsp = len(shape) - 1
    groups = attrs.get("group", 1)
    w = RNG.normal(size=(shape[0], c_out // groups, *([kernel] * nsp))).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")]
    if bias:
        inits.append(numpy_helper.from_array(RNG.normal(size=c_out).astype(np.float32), "b"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, *shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, c_out] + [None] * nsp)
    node = helper.make_node("ConvTranspose", ["x", "w"] + (["b"] if bias else []), ["y"],
                            name="up", **attrs)
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


GENERATED = {
    "stride2": ((4, 5, 6), 6, 3, {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "output-padding": ((4, 5, 6), 6, 3, {"strides": [2, 2], "pads": [1, 1, 1, 1],
                                         "output_padding": [1, 1]}),
    "asymmetric": ((4, 5, 6), 4, 4, {"strides": [2, 3], "pads": [0, 1, 2, 1],
                                     "output_padding": [1, 2]}),
    "groups": ((4, 5, 6), 6, 3, {"strides": [2, 2], "group": 2}),
    "depthwise": ((4, 5, 6), 4, 3, {"strides": [2, 2], "group": 4, "pads": [1, 1, 1, 1]}),
    "dilated": ((4, 5, 6), 3, 3, {"strides": [2, 1], "dilations": [2, 3],
                                  "pads": [1, 2, 0, 1]}),
    "stride1": ((4, 5, 6), 3, 3, {"pads": [1, 1, 1, 1]}),
    "output-shape": ((4, 5, 6), 3, 3, {"strides": [2, 2], "output_shape": [12, 13]}),
    "same-upper": ((4, 5, 6), 3, 4, {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    "same-lower": ((4, 5, 6), 3, 3, {"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    "1d": ((4, 7), 5, 3, {"strides": [3], "pads": [1, 2], "output_padding": [2]}),
}


@pytest.mark.parametrize("case", sorted(GENERATED))
def test_generated_cases_match_onnxruntime(case: str) -> None:
    shape, c_out, kernel, attrs = GENERATED[case]
    for bias in (True, False):
        model = _model(shape, c_out, kernel, attrs, bias)
        x = RNG.normal(size=(2, *shape)).astype(np.float32)
        assert max_rel_error(run(import_model(prepare(model)), x), ort_run(model, x)) <= 1e-5


def _node(in_shape: tuple[int, ...], c_out: int, k: int, strides: int, pads: list[int],
          extra: int, dilation: int, groups: int) -> Node:
    nsp = len(in_shape) - 1
    w = RNG.normal(size=(in_shape[0], c_out // groups, *([k] * nsp))).astype(np.float32)
    node = Node("t", "conv_transpose", ("s",), attrs={
        "strides": [strides] * nsp, "pads": pads, "dilations": [dilation] * nsp,
        "groups": groups, "output_padding": [extra] * nsp},
        params={"weight": w, "bias": RNG.normal(size=c_out).astype(np.float32)})
    return node.replace(shape=infer_shape(node, [in_shape]))


MAPS = [  # strides, pad, output_padding, dilation, groups, kernel
    (1, 0, 0, 1, 1, 3), (1, 1, 0, 1, 2, 3), (1, 1, 1, 2, 1, 3), (2, 1, 1, 1, 2, 3),
    (2, 0, 0, 1, 1, 2), (3, 2, 1, 2, 1, 3), (1, 3, 0, 1, 1, 3),
]


@pytest.mark.parametrize("strides, pad, extra, dilation, groups, k", MAPS)
def test_synapse_form_is_the_executors_map(strides: int, pad: int, extra: int, dilation: int,
                                           groups: int, k: int) -> None:
    """lower-synapses' form of a transposed conv computes what the executor computes (the
    bias is the constant term it reads off a run on zero input); at stride 1 with pads a
    flipped kernel can absorb, it is a conv window."""
    for in_shape in ((4, 5, 6), (4, 7)):
        nsp = len(in_shape) - 1
        node = _node(in_shape, 6, k, strides, [pad] * nsp + [pad + (nsp == 1)] * nsp, extra,
                     dilation, groups)
        x = RNG.normal(size=(2, *in_shape)).astype(np.float32)
        ref = opdef("conv_transpose").evaluate(node, [x]).reshape(2, -1)
        zero = opdef("conv_transpose").evaluate(node, [np.zeros_like(x)]).reshape(2, -1)
        m = op_maps.node_form(node, [{"s": lm.identity(in_shape)}], [in_shape])["s"]
        window = strides == 1 and dilation * (k - 1) >= pad
        assert isinstance(m, lm.ConvMap) == window
        ours = (lm.to_csr(m) @ x.reshape(2, -1).T.astype(np.float64)).T + zero
        np.testing.assert_allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_synapse_count_is_every_input_unit_times_its_scatter(name: str) -> None:
    """The compute budget and the energy model count C_in*H_in*W_in * C_out/g * kH*kW
    multiply-adds per step (each input unit scatters into that many taps)."""
    from snnc.compiler.cost import synapses

    shape, c_out, kernel, attrs = GENERATED[name]
    graph = import_model(prepare(_model(shape, c_out, kernel, attrs)))
    node = next(n for n in graph.nodes if n.op == "conv_transpose")
    groups = attrs.get("group", 1)
    assert synapses(node) == int(np.prod(shape)) * (c_out // groups) * kernel ** (len(shape) - 1)
