"""The ONNX model zoo's classic models as shipped (weights stripped, ConstantOfShape fills) in
the onnx wheel (onnx/backend/test/data/light/, 224x224 ImageNet nets from old exporters, opset 9,
Dropout with mask outputs): those with only supported ops compile on random calibration data;
the LRN ones are refused naming every LRN node.

To keep the suite fast, all of them compile with the fixed-threshold preset `rate-p99.99` (no
simulation: 0.1-5 s each here) and SqueezeNet also with the default preset on 2 calibration
samples (about 9 s here; 4 or 8 take the same paths at 2-4x the time: one scoring block, all
of them calibrated as fewer than calibration's minimum). The others take 3-60 s each with the
default preset, measured when this test was written: ShuffleNet 20 s, ResNet-50 2.6 s (compute
budget: nothing simulated), Inception-v2 57 s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import snnc
from snnc.compiler.errors import UnsupportedOpsError

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
SUPPORTED = ["squeezenet", "shufflenet", "resnet50", "inception_v2", "densenet121", "vgg19"]
LRN = {"bvlc_alexnet": ["n2", "n6"], "zfnet512": ["n2", "n6"], "inception_v1": ["n3", "n8"]}


def _calib(n: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (n, 3, 224, 224)).astype(np.float32)


def test_the_models_are_there() -> None:
    names = {p.name[len("light_"):-len(".onnx")] for p in LIGHT.glob("light_*.onnx")}
    assert names == set(SUPPORTED) | set(LRN)


@pytest.mark.parametrize("name", SUPPORTED)
def test_supported_models_compile(name: str) -> None:
    net = snnc.compile(LIGHT / f"light_{name}.onnx", calib=_calib(2), timesteps=32,
                       preset="rate-p99.99")
    assert sum(n.op == "if" for n in net.graph.nodes) > 10
    assert np.prod(net.graph.output_node.shape) == 1000  # (1000,) or (1000, 1, 1)


def test_squeezenet_compiles_with_the_default_preset() -> None:
    net = snnc.compile(LIGHT / "light_squeezenet.onnx", calib=_calib(2), timesteps=32)
    assert sum(n.op == "if" for n in net.graph.nodes) == 26


@pytest.mark.parametrize("name", sorted(LRN))
def test_lrn_models_are_refused_naming_the_lrn_nodes(name: str) -> None:
    with pytest.raises(UnsupportedOpsError) as err:
        snnc.compile(LIGHT / f"light_{name}.onnx", calib=_calib(2), timesteps=32)
    assert {op for _, op in err.value.offenders} == {"LRN"}
    for node in LRN[name]:
        assert f"node '{node}' (LRN)" in str(err.value)
