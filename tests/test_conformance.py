"""The IR executor matches onnxruntime on every supported-op case of ONNX's own backend test
data (the pytorch-converted models shipped in the onnx wheel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import max_rel_error
from onnx import numpy_helper

from snnc.compiler.errors import ModelError, UnsupportedOpsError
from snnc.compiler.executor import run
from snnc.frontends.onnx import load_onnx, prepare, read_model

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data" / "pytorch-converted"
CASES = sorted(p.name for p in DATA.iterdir() if (p / "model.onnx").exists())

# cases snnc must refuse with a clear error
UNSUPPORTED = {
    "test_ELU", "test_Embedding",
    "test_Embedding_sparse", "test_GLU", "test_GLU_dim", "test_LeakyReLU",
    "test_LeakyReLU_with_negval", "test_PReLU_1d", "test_PReLU_1d_multiparam", "test_PReLU_2d",
    "test_PReLU_2d_multiparam", "test_PReLU_3d", "test_PReLU_3d_multiparam",
    "test_PoissonNLLLLoss_no_reduce", "test_SELU", "test_Sigmoid",
    "test_Softplus", "test_Softsign", "test_Tanh", "test_ReflectionPad2d",
    "test_ReplicationPad2d",
}


def _inputs(case: Path) -> np.ndarray:
    return numpy_helper.to_array(onnx.load_tensor(str(case / "test_data_set_0" / "input_0.pb")))


def test_the_data_is_there() -> None:
    assert len(CASES) > 70


@pytest.mark.parametrize("name", [c for c in CASES if c not in UNSUPPORTED])
def test_executor_matches_onnxruntime(name: str) -> None:
    case = DATA / name
    x = _inputs(case)
    graph = load_onnx(case / "model.onnx")
    # onnxruntime no longer runs opset-6 files: it runs the same model upgraded by onnx
    model = prepare(read_model(case / "model.onnx"))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (ref,) = session.run(None, {session.get_inputs()[0].name: x})
    shipped = numpy_helper.to_array(
        onnx.load_tensor(str(case / "test_data_set_0" / "output_0.pb")))
    ours = run(graph, x)
    assert ours.shape == ref.shape
    assert max_rel_error(ours, ref) <= 1e-4
    assert max_rel_error(ours, shipped) <= 1e-4


@pytest.mark.parametrize("name", sorted(UNSUPPORTED & set(CASES)))
def test_unsupported_cases_fail_clearly(name: str) -> None:
    """Ops without a spiking equivalent, integer inputs, per-row constants, reflect padding:
    each is refused by our own error, naming the node (or input) it is about."""
    with pytest.raises(ModelError) as info:
        load_onnx(DATA / name / "model.onnx")
    message = str(info.value)
    assert "node '" in message or "input '" in message
    if isinstance(info.value, UnsupportedOpsError):
        assert "Supported ONNX ops" in message


LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


@pytest.mark.parametrize("name", ["vgg19", "squeezenet"])
def test_zoo_dropout_masks_nothing_reads_are_identities(name: str) -> None:
    """The zoo's classic files (opset 9) give every Dropout a mask output that nothing reads:
    each imports as the identity."""
    path = LIGHT / f"light_{name}.onnx"
    model = read_model(path)
    masks = [n.output[1] for n in model.graph.node if n.op_type == "Dropout"
             and len(n.output) > 1 and n.output[1]]
    assert masks  # what this test is about
    graph = load_onnx(path)
    assert {n.op for n in graph.nodes} >= {"conv", "relu", "softmax"}
    if name == "squeezenet":  # VGG-19 at 224x224 is 20 GMAC: too slow for the IR executor here
        x = np.random.default_rng(0).random((1, 3, 224, 224), np.float32)
        session = ort.InferenceSession(prepare(model).SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        (ref,) = session.run(None, {session.get_inputs()[0].name: x})
        assert max_rel_error(run(graph, x), ref) <= 1e-4
