"""recognise-activations: the exporters' ways of writing QCFS and clipped-ReLU activations are
each found, read off (theta, L, phi) and replaced by an equivalent qclip node; anything else
is left alone or refused with the reason."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import snnc
from snnc.compiler.errors import ModelError
from snnc.compiler.executor import run
from snnc.compiler.passes.recognise_activations import recognise_activations
from snnc.frontends.onnx.importer import import_model
from snnc.frontends.onnx.loader import prepare

C = 4
RNG = np.random.default_rng(0)


def _model(chain: list[tuple[str, list, dict]], consts: dict[str, np.ndarray],
           opset: int = 13) -> onnx.ModelProto:
    """Conv(1->C, 3x3) followed by `chain`: (op, extra inputs after the running value, attrs);
    an extra input named "<x>" stands for the running value in that position."""
    w = RNG.normal(size=(C, 1, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(C, np.float32),
                                                                      "b")]
    inits += [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in consts.items()]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["h0"], pads=[1, 1, 1, 1])]
    for k, (op, extra, attrs) in enumerate(chain):
        ins = [f"h{k}" if e == "<x>" else e for e in extra] if "<x>" in extra else \
            [f"h{k}", *extra]
        nodes.append(helper.make_node(op, ins, [f"h{k + 1}"], **attrs))
    nodes.append(helper.make_node("Flatten", [f"h{len(chain)}"], ["y"]))
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C * 36])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _import(model: onnx.ModelProto):
    return import_model(prepare(model))


def _recognised(model: onnx.ModelProto):
    graph = _import(model)
    after = recognise_activations(graph)
    x = RNG.normal(scale=3.0, size=(64, 1, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(run(after, x), run(graph, x), atol=1e-5)
    return [n for n in after.nodes if n.op == "qclip"], after


LAM, L = 2.5, 4
QCFS_OLD = [("Div", ["lam"], {}), ("Mul", ["L"], {}), ("Add", ["half"], {}), ("Floor", [], {}),
            ("Div", ["L"], {}), ("Clip", ["zero", "one"], {}), ("Mul", ["lam"], {})]
QCFS_NEW = [("Div", ["lam"], {}), ("Clip", ["zero", "one"], {}), ("Mul", ["L"], {}),
            ("Add", ["half"], {}), ("Floor", [], {}), ("Div", ["L"], {}), ("Mul", ["lam"], {})]
CONSTS = {"lam": np.array([LAM]), "L": np.array(L), "half": np.array(0.5),
          "zero": np.array(0.0), "one": np.array(1.0)}


@pytest.mark.parametrize("lam", [LAM, 8.0, 0.3])  # 8: steps of width 2, flat over [0.5, 1]
@pytest.mark.parametrize("chain", [QCFS_OLD, QCFS_NEW], ids=["old-qcfs", "new-qcfs"])
def test_qcfs_chains_become_one_activation(chain, lam):
    (q,), graph = _recognised(_model(chain, {**CONSTS, "lam": np.array([lam])}))
    assert q.attrs["levels"] == L
    np.testing.assert_allclose(q.params["theta"], lam, rtol=1e-6)
    np.testing.assert_allclose(q.params["phi"], 0.5, atol=1e-6)
    assert not any(n.op in ("round", "affine", "clip") for n in graph.nodes)
    assert "Floor" in " ".join(q.meta["recognised_from"]) or q.meta["recognised_from"]


def test_channel_wise_lambda_and_merged_constants():
    lam = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, C, 1, 1)
    # a simplifier merged Div(lam) and Mul(L) into one Mul(L/lam)
    chain = [("Mul", ["scale"], {}), ("Add", ["half"], {}), ("Floor", [], {}),
             ("Div", ["L"], {}), ("Clip", ["zero", "one"], {}), ("Mul", ["lam"], {})]
    (q,), _ = _recognised(_model(chain, {**CONSTS, "lam": lam, "scale": L / lam}))
    np.testing.assert_allclose(q.params["theta"].reshape(-1), lam.reshape(-1), rtol=1e-6)


def test_fast_snn_round_chain():
    alpha = 1.7
    chain = [("Relu", [], {}), ("Div", ["alpha"], {}), ("Clip", ["zero", "one"], {}),
             ("Mul", ["three"], {}), ("Round", [], {}), ("Div", ["three"], {}),
             ("Mul", ["alpha"], {})]
    (q,), _ = _recognised(_model(chain, {**CONSTS, "alpha": np.array(alpha),
                                         "three": np.array(3.0)}))
    assert q.attrs["levels"] == 3
    np.testing.assert_allclose(q.params["theta"], alpha, rtol=1e-6)
    np.testing.assert_allclose(q.params["phi"], 0.5, atol=1e-6)


def test_clip_floor_without_shift_has_phi_zero():
    chain = [("Div", ["lam"], {}), ("Mul", ["L"], {}), ("Floor", [], {}), ("Div", ["L"], {}),
             ("Clip", ["zero", "one"], {}), ("Mul", ["lam"], {})]
    (q,), _ = _recognised(_model(chain, CONSTS))
    np.testing.assert_allclose(q.params["phi"], 0.0, atol=1e-6)


@pytest.mark.parametrize("chain,theta", [
    ([("Relu", [], {}), ("Min", ["a"], {})], 3.0),
    ([("Relu", [], {}), ("Sub", ["a", "<x>"], {}), ("Relu", [], {}), ("Sub", ["a", "<x>"], {})],
     3.0),
    ([("Div", ["a"], {}), ("Clip", ["zero", "one"], {}), ("Mul", ["a"], {})], 3.0),
], ids=["relu-min", "tcl", "div-clip-mul"])
def test_clipped_relu_chains(chain, theta):
    (q,), _ = _recognised(_model(chain, {**CONSTS, "a": np.array(theta)}))
    assert q.attrs["levels"] == 0
    np.testing.assert_allclose(q.params["theta"], theta, rtol=1e-5)


def test_unbounded_or_negative_chains_are_left_alone():
    relu_scale = [("Relu", [], {}), ("Mul", ["two"], {})]
    _, graph = _recognised(_model(relu_scale, {"two": np.array(2.0)}))
    assert [n.op for n in graph.nodes].count("qclip") == 0


def test_unrecognisable_floor_is_refused_with_the_reason():
    # floor without any clip: unbounded staircase, no threshold to fire at
    chain = [("Mul", ["L"], {}), ("Floor", [], {})]
    model = _model(chain, CONSTS)
    with pytest.raises(ModelError, match="not bounded above"):
        snnc.compile(_import(model), calib=np.zeros((4, 1, 6, 6), np.float32))


def test_qcfs_model_converts_losslessly_at_t_equal_l_for_constant_input():
    """One QCFS layer: with V(0) = phi*theta, T = L steps reproduce the staircase exactly."""
    model = _model(QCFS_OLD, CONSTS)
    net = snnc.compile(_import(model), timesteps=L, preset="qcfs")
    x = RNG.normal(scale=3.0, size=(32, 1, 6, 6)).astype(np.float32)
    snn = net.simulate(x, [L]).outputs[0]
    # the model's output is the activation itself: compare with the ANN
    np.testing.assert_allclose(snn, run(_import(model), x), atol=1e-5)


def test_a_chain_met_again_reuses_its_fit_or_its_refusal(monkeypatch: pytest.MonkeyPatch):
    """A compile recognises the same chains several times: each function is fitted once, and
    the graph (or the refusal's reason) is what a fresh fit gives."""
    from snnc.compiler.passes import recognise_activations as module
    from snnc.compiler.tuning import graph_digest

    monkeypatch.setattr(module, "_FITS", {})
    fits: list[int] = []
    fit_chain = module.fit_chain

    def counting(*args):
        fits.append(1)
        return fit_chain(*args)

    monkeypatch.setattr(module, "fit_chain", counting)
    lams = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, C, 1, 1)
    qcfs = _import(_model(QCFS_OLD, {**CONSTS, "lam": lams}))
    floor = _import(_model([("Mul", ["L"], {}), ("Floor", [], {})], CONSTS))
    first = [recognise_activations(g) for g in (qcfs, floor)]
    assert len(fits) == 2
    again = [recognise_activations(g) for g in (qcfs, floor)]
    assert len(fits) == 2  # nothing fitted again
    monkeypatch.setattr(module, "_FITS", {})
    fresh = [recognise_activations(g) for g in (qcfs, floor)]
    assert len(fits) == 4
    for a, b, c in zip(first, again, fresh, strict=True):
        assert graph_digest(a) == graph_digest(b) == graph_digest(c)
        assert [n.meta for n in a.nodes] == [n.meta for n in b.nodes] == [n.meta for n in c.nodes]
    assert any("not bounded above" in n.meta.get("unrecognised", "") for n in again[1].nodes)
    assert sum(n.op == "qclip" for n in again[0].nodes) == 1
