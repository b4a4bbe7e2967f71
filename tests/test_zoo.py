"""Model-zoo-style graphs (tests/zoo.py), as older and newer exporters write them, import and
run like onnxruntime, and compile to spiking networks that track the ANN."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from zoo import ARCHS, with_ops, zoo_model

import snnc
from snnc.compiler.errors import ModelError, UnsupportedOpsError
from snnc.compiler.executor import run
from snnc.frontends.onnx import import_model, prepare

CASES = [(arch, style) for arch in ARCHS for style in ("old", "new")]


def _x(n: int = 8, size: int = 16) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 1, (n, 3, size, size)).astype(np.float32)


@pytest.mark.parametrize("arch, style", CASES)
def test_executor_matches_onnxruntime(arch: str, style: str) -> None:
    model = zoo_model(arch, style)
    x = _x()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (ref,) = session.run(None, {"input": x})
    ours = run(import_model(prepare(model)), x)
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))


@pytest.mark.parametrize("arch", list(ARCHS))
def test_old_style_batchnorm_is_folded(arch: str) -> None:
    """BN written out as Mul/Add after a conv ends up inside the conv (unless the conv's
    output is used elsewhere too, as in DenseNet's concatenations)."""
    g = snnc.compile(import_model(prepare(zoo_model(arch, "old"))), calib=_x(), norm="max").graph
    foldable = [n.name for n in g.nodes if n.op == "affine" and g.node(n.inputs[0]).op == "conv"
                and len(g.consumers(n.inputs[0])) == 1]
    assert not foldable
    chained = [n.name for n in g.nodes if n.op == "affine" and g.node(n.inputs[0]).op == "affine"]
    assert not chained  # Mul then Add merged into one affine
    assert sum(n.op == "affine" for n in g.nodes) == (5 if arch == "densenet" else 0)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_snn_tracks_the_ann(arch: str) -> None:
    graph = import_model(prepare(zoo_model(arch, "new")))
    x = _x()
    net = snnc.compile(graph, calib=x, norm="max")
    ann = run(graph, x)
    sim = net.simulate(x, [16, 256])
    err = [float(np.mean(np.abs(sim.at(t) - ann))) for t in (16, 256)]
    assert err[1] < 0.5 * err[0] + 1e-3 * float(np.mean(np.abs(ann)))


@pytest.mark.parametrize("style", ["old", "new"])
def test_ops_without_spiking_equivalent_are_all_listed(style: str) -> None:
    """LRN and an inner Sigmoid are listed together, by node name; the shape arithmetic of the
    old-style Flatten after them is not blamed."""
    with pytest.raises(UnsupportedOpsError) as err:
        import_model(prepare(with_ops(style)))
    assert [op for _, op in err.value.offenders] == ["LRN", "Sigmoid"]
    assert "node 'lrn4' (LRN)" in str(err.value)


def test_softmax_inside_the_net_is_refused() -> None:
    with pytest.raises(ModelError, match="Softmax inside the network"):
        import_model(prepare(with_ops("new", ("Softmax",))))


def test_reduce_mean_head_is_a_global_pool() -> None:
    """ShuffleNet's `x.mean([2, 3])` (ReduceMean, keepdims=0) imports as a global average
    pool and a reshape (checked against onnxruntime above)."""
    g = import_model(prepare(zoo_model("shufflenet", "new")))
    assert [n.op for n in g.nodes[-3:]] == ["global_avgpool", "reshape", "linear"]
