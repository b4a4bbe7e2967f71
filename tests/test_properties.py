"""Property tests over random small CNNs (tests/netgen.py), bounded in time:
the IR executor equals onnxruntime, compile never fails with anything but our own errors, and
the SNN's output approaches the ANN's as T grows."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netgen import random_cnn

import snnc
from snnc.compiler.errors import SnncError
from snnc.compiler.executor import run
from snnc.frontends.onnx import import_model, prepare

BLOCKS = ["conv", "conv_s2", "depthwise", "maxpool", "avgpool", "residual", "concat"]
nets = st.fixed_dictionaries({
    "seed": st.integers(0, 2**16),
    "blocks": st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=4),
    "channels": st.integers(1, 3),
    "size": st.integers(4, 9),
    "act": st.sampled_from(["relu", "clip"]),
    "head": st.sampled_from(["gap", "flatten"]),
})
FAST = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def _inputs(spec: dict, n: int = 16) -> np.ndarray:
    rng = np.random.default_rng(spec["seed"] + 1)
    return rng.uniform(0, 1, (n, spec["channels"], spec["size"], spec["size"])).astype(
        np.float32)


@FAST
@given(nets)
def test_executor_equals_onnxruntime(spec: dict) -> None:
    model = random_cnn(**spec)
    x = _inputs(spec)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (ref,) = session.run(None, {"input": x})
    ours = run(import_model(prepare(model)), x)
    assert np.max(np.abs(ours - ref)) <= 1e-4 * max(1.0, float(np.max(np.abs(ref))))


@FAST
@given(nets, st.sampled_from(["max", "percentile:99", "percentile"]), st.booleans(),
       st.sampled_from(["v0", "input", "none"]))
def test_compile_fails_only_with_our_errors(spec: dict, norm: str, per_channel: bool,
                                            shift: str) -> None:
    graph = import_model(prepare(random_cnn(**spec)))
    try:
        net = snnc.compile(graph, calib=_inputs(spec), norm=norm, per_channel=per_channel,
                           shift=shift, timesteps=4)
    except SnncError:
        return
    assert np.all(np.isfinite(net.run(_inputs(spec, 4), 4).outputs))


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(nets)
def test_snn_approaches_the_ann_as_t_grows(spec: dict) -> None:
    graph = import_model(prepare(random_cnn(**spec)))
    x = _inputs(spec)
    net = snnc.compile(graph, calib=x, norm="max")  # no clipping error on this data
    ann = run(graph, x)
    sim = net.simulate(x, [8, 256])
    scale = float(np.mean(np.abs(ann))) + 1e-6
    err8, err256 = (float(np.mean(np.abs(sim.at(t) - ann))) / scale for t in (8, 256))
    assert err256 <= 0.5 * err8 + 0.01
