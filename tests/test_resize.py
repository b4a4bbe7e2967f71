"""Resize and Upsample: the IR executor matches onnxruntime on ONNX's own node conformance
cases (onnx.backend.test.case.node, generated in memory) and on generated ones (every torch
coordinate mode, scales and sizes, old opsets), unsupported forms are refused naming the node,
and the Loihi synapse form of a resize is the executor's map."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from helpers import max_rel_error, ort_run
from onnx import TensorProto, helper, numpy_helper
from onnx_cases import node_cases

from snnc.compiler.errors import ModelError
from snnc.compiler.executor import run
from snnc.compiler.ir.graph import Node
from snnc.compiler.ir.verify import infer_shape
from snnc.compiler.loihi import linear_maps as lm
from snnc.compiler.loihi import op_maps
from snnc.compiler.ops import opdef
from snnc.frontends.onnx import import_model, prepare

RNG = np.random.default_rng(0)
# onnxruntime and ONNX's reference output disagree here (onnxruntime is followed)
ORT_ONLY = {"test_resize_downsample_scales_linear_align_corners"}
REFUSED = ("cubic", "tf_crop_and_resize", "antialias")


CASES = {name: (m, x, y) for name, m, x, y in node_cases("Resize") + node_cases("Upsample")}


def test_the_conformance_cases_are_there() -> None:
    assert len(CASES) > 30


@pytest.mark.parametrize("name", sorted(n for n in CASES if not any(r in n for r in REFUSED)))
def test_executor_matches_conformance_cases(name: str) -> None:
    model, x, shipped = CASES[name]
    ours = run(import_model(prepare(model)), x)
    assert max_rel_error(ours, ort_run(model, x)) <= 1e-5
    if name not in ORT_ONLY:
        assert max_rel_error(ours, shipped) <= 1e-5


@pytest.mark.parametrize("name", sorted(n for n in CASES if any(r in n for r in REFUSED)))
def test_unsupported_forms_are_refused_naming_the_node(name: str) -> None:
    model, _, _ = CASES[name]
    with pytest.raises(ModelError, match=r"node '.*' \(Resize\).*(cubic|tf_crop|antialias)"):
        import_model(prepare(model))


def _model(opset: int, op: str, inits: list, attrs: dict, shape: tuple[int, ...]
           ) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, *shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2] + [None] * len(shape))
    names = [i.name if i is not None else "" for i in inits]
    node = helper.make_node(op, ["x", *names], ["y"], name="rs", **attrs)
    graph = helper.make_graph([node], "g", [x], [y], [i for i in inits if i is not None])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _floats(name: str, v: list[float]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(v, np.float32), name)


def _ints(name: str, v: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(v, np.int64), name)


def _check(model: onnx.ModelProto, shape: tuple[int, ...]) -> None:
    x = RNG.normal(size=(2, *shape)).astype(np.float32)
    assert max_rel_error(run(import_model(prepare(model)), x), ort_run(model, x)) <= 1e-5


SHAPE = (3, 5, 7)
TORCH_TRANSFORMS = ("asymmetric", "half_pixel", "pytorch_half_pixel", "align_corners")
SCALES = ([1, 1, 2, 2], [1, 1, 1.5, 2.5], [1, 1, 3, 1.7], [1, 1, 0.5, 0.6])


@pytest.mark.parametrize("transform", (*TORCH_TRANSFORMS, "tf_half_pixel_for_nn"))
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_generated_resizes_match_onnxruntime(mode: str, transform: str) -> None:
    roundings = ("round_prefer_floor", "floor", "ceil") if mode == "nearest" else ("floor",)
    for rounding in roundings:
        attrs = {"mode": mode, "coordinate_transformation_mode": transform,
                 "nearest_mode": rounding}
        for scales in SCALES:
            _check(_model(13, "Resize", [None, _floats("s", scales)], attrs, SHAPE), SHAPE)
        for sizes in ([2, 3, 11, 4], [2, 3, 16, 9], [2, 3, 1, 2]):
            _check(_model(13, "Resize", [None, None, _ints("z", sizes)], attrs, SHAPE), SHAPE)
        _check(_model(11, "Resize", [_floats("r", []), _floats("s", SCALES[1])], attrs, SHAPE),
               SHAPE)


def test_half_pixel_symmetric_and_axes_at_opset_19() -> None:
    for mode in ("nearest", "linear"):
        attrs = {"mode": mode, "coordinate_transformation_mode": "half_pixel_symmetric"}
        _check(_model(19, "Resize", [None, _floats("s", [1, 1, 2, 1.5])], attrs, SHAPE), SHAPE)
        axes = {"mode": mode, "axes": [3, 2]}
        _check(_model(19, "Resize", [None, None, _ints("z", [9, 4])], axes, SHAPE), SHAPE)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_and_resize_10_match_onnxruntime(mode: str) -> None:
    for scales in SCALES:
        if min(scales) >= 1:
            _check(_model(9, "Upsample", [_floats("s", scales)], {"mode": mode}, SHAPE), SHAPE)
        _check(_model(10, "Resize", [_floats("s", scales)], {"mode": mode}, SHAPE), SHAPE)
    one_d = (4, 6)
    _check(_model(9, "Upsample", [_floats("s", [1, 1, 3])], {"mode": mode}, one_d), one_d)


def test_resizing_channels_is_refused() -> None:
    model = _model(13, "Resize", [None, _floats("s", [1, 2, 2, 2])], {"mode": "nearest"}, SHAPE)
    with pytest.raises(ModelError, match=r"node 'rs' \(Resize\).*resizing the batch or channel"):
        import_model(prepare(model))


def _form(node: Node, in_shape: tuple[int, ...]) -> lm.LinearMap:
    return op_maps.node_form(node, [{"s": lm.identity(in_shape)}], [in_shape])["s"]


@pytest.mark.parametrize("transform", TORCH_TRANSFORMS)
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_synapse_form_is_the_executors_map(mode: str, transform: str) -> None:
    """The CSR matrix the Loihi targets use (per channel, the Kronecker product of the axes'
    interpolation matrices) computes what the executor computes, 2-d and 1-d."""
    for in_shape, size, scales in (((3, 5, 6), [10, 9], [2.0, 1.5]), ((2, 7), [13], [13 / 7])):
        node = Node("r", "resize", ("s",), attrs={
            "mode": mode, "transform": transform, "nearest_mode": "floor", "scales": scales,
            "size": size})
        node = node.replace(shape=infer_shape(node, [in_shape]))
        x = RNG.normal(size=(2, *in_shape)).astype(np.float32)
        ref = opdef("resize").evaluate(node, [x]).reshape(2, -1)
        m = _form(node, in_shape)
        assert isinstance(m, lm.MatrixMap)
        ours = (lm.to_csr(m) @ x.reshape(2, -1).T.astype(np.float64)).T
        np.testing.assert_allclose(ours, ref, atol=1e-6)


torch = pytest.importorskip("torch")


class _Interp(torch.nn.Module):
    def __init__(self, **kwargs: object) -> None:
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, **self.kwargs)


TORCH_CASES = {
    "nearest-x2": {"scale_factor": 2, "mode": "nearest"},
    "nearest-size": {"size": (11, 6), "mode": "nearest"},
    "bilinear": {"scale_factor": 2, "mode": "bilinear", "align_corners": False},
    "bilinear-corners": {"scale_factor": 1.5, "mode": "bilinear", "align_corners": True},
    "bilinear-down": {"size": (3, 4), "mode": "bilinear", "align_corners": False},
}


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_torch_interpolations_match_onnxruntime(case: str, dynamo: bool, tmp_path) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), _Interp(**TORCH_CASES[case]))
    x = RNG.uniform(size=(2, 3, 6, 5)).astype(np.float32)
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.tensor(x),), str(path), dynamo=dynamo,
                          input_names=["input"], verbose=False)
    model = onnx.load(str(path))
    assert "Resize" in {n.op_type for n in model.graph.node}
    ours = run(import_model(prepare(model)), x)
    with torch.no_grad():
        assert max_rel_error(ours, net(torch.tensor(x)).numpy()) <= 1e-5
