"""Loihi 2 lowering without Lava: lower-synapses, quantize-weights, the NumPy bit-exact `loihi`
mode (held to a direct integer model of the Lava timeline written here) and the plain-data
Lava plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import snnc
from snnc.backends.numpy import loihi as loihi_mode
from snnc.backends.numpy import simulate
from snnc.backends.numpy.loihi import simulate_loihi
from snnc.compiler.errors import InternalError, ModelError, UsageError
from snnc.compiler.ir.builder import GraphBuilder
from snnc.compiler.loihi.formats import VTH_MAX, mantissa
from snnc.compiler.loihi.lower_synapses import lower_synapses
from snnc.compiler.loihi.populations import input_currents, populations
from snnc.compiler.loihi.quantize_weights import quantize_weights
from snnc.compiler.ops.sparse import csr

DATA = Path(__file__).parent / "data"


def tiny_chain(w2: float = 0.5) -> object:
    """input(4) -> linear -> IF -> linear -> IF -> linear (readout)."""
    b = GraphBuilder((4,))
    b.add("fc1", "linear", ["x"], weight=np.eye(4) * 0.8, bias=np.zeros(4))
    b.neuron("if1", "fc1", theta=1.0, v0=0.5)
    b.add("fc2", "linear", ["if1"], weight=np.full((3, 4), w2), bias=[0.1, -0.2, 0.0])
    b.neuron("if2", "fc2", theta=2.0, v0=1.0)
    b.add("fc3", "linear", ["if2"], weight=[[1.0, -1.0, 0.5], [0.2, 0.3, -0.4]],
          bias=[0.0, 0.1])
    return b.graph(stage="snn")


def reset_zero(graph: object) -> object:
    """The same SNN with every IF neuron reset to zero (what --neuron lif produces)."""
    return graph.replace([n.with_attrs(reset="zero") if n.op == "if" else n
                          for n in graph.nodes])


# --- a direct integer model of the Lava timeline ----------------------------------------------

def _int_conv(s: np.ndarray, node: object) -> np.ndarray:
    """A conv synapse on int64 spikes (n, C, H, W), tap by tap from the integer kernel."""
    w = np.asarray(node.params["q_weight"], np.int64)
    a = node.attrs
    (sh, sw), (dh, dw), groups = a["strides"], a["dilations"], a["groups"]
    top, left, bottom, right = a["pads"]
    co, cg, kh, kw = w.shape
    _, ho, wo = node.shape
    xp = np.pad(s, ((0, 0), (0, 0), (top, bottom), (left, right)))
    y = np.zeros((len(s), co, ho, wo), np.int64)
    og = co // groups
    for g in range(groups):
        for ky in range(kh):
            for kx in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg, ky * dh:ky * dh + sh * (ho - 1) + 1:sh,
                           kx * dw:kx * dw + sw * (wo - 1) + 1:sw]
                y[:, g * og:(g + 1) * og] += np.einsum(
                    "oc,nchw->nohw", w[g * og:(g + 1) * og, :, ky, kx], patch)
    return y.reshape(len(s), -1)


def _int_synapse(graph: object, syn: object, s: np.ndarray) -> np.ndarray:
    node = syn.node
    if syn.kind == "conv":
        shape = graph.node(node.inputs[0]).shape
        total = _int_conv(s.reshape(len(s), *shape), node)
    elif syn.kind == "dense":
        total = s @ np.asarray(node.params["q_weight"], np.int64).T
    else:
        total = (csr(node, "q_weight").astype(np.int64) @ s.T).T
    return np.left_shift(total, int(node.attrs["q_weight_exp"]))


def _int_pool(graph: object, node: object, counts: np.ndarray) -> np.ndarray:
    a = node.attrs
    c, h, w = graph.node(node.inputs[0]).shape
    (kh, kw), (sh, sw), (top, left, bottom, right) = a["kernel"], a["strides"], a["pads"]
    xp = np.pad(counts.reshape(len(counts), c, h, w),
                ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=-1)
    _, ho, wo = node.shape
    best = np.full((len(counts), c, ho, wo), -1, np.int64)
    for ky in range(kh):
        for kx in range(kw):
            best = np.maximum(best, xp[:, :, ky:ky + sh * (ho - 1) + 1:sh,
                                       kx:kx + sw * (wo - 1) + 1:sw])
    return best.reshape(len(counts), -1)


def lava_timeline(q: object, x: np.ndarray, steps: int) -> tuple[dict, np.ndarray]:
    """Rasters (N, T, n) on the reference clock and the readout's accumulator, computed the
    way Lava runs the network: Lava steps 1 .. T + depth(readout) - 1, each population from
    its depth on, every synapse reading its source `delay` Lava steps back (full history)."""
    pops = populations(q)
    readout = pops[-1]
    total = steps + readout.depth - 1
    n = len(x)
    static = input_currents(q, x, fixed=True)
    hist = {p.name: np.zeros((total + 1, n, p.size), np.int64) for p in pops[:-1]}
    v, best, counts = {}, {}, {}
    for p in pops[:-1]:
        if p.pool_of is None:
            v[p.name] = np.repeat(p.node.params["q_v0"].astype(np.int64)[None], n, axis=0)
        else:
            counts[p.name] = np.zeros((n, int(np.prod(q.node(p.pool_of).shape))), np.int64)
            best[p.name] = np.zeros((n, p.size), np.int64)
    acc = np.zeros((n, readout.size), np.int64)

    def current(p: object, t: int) -> np.ndarray:
        a = np.zeros((n, p.size), np.int64)
        for syn in p.synapses:
            a += _int_synapse(q, syn, hist[syn.source][t - syn.delay])
        return a

    for t in range(1, total + 1):
        for p in pops[:-1]:
            if t < p.depth:
                continue
            if p.pool_of is not None:
                counts[p.name] += hist[p.pool_of][t]
                now = _int_pool(q, p.node, counts[p.name])
                hist[p.name][t] = now > best[p.name]
                best[p.name] = now
                continue
            node = p.node
            vth = node.params["q_vth"].astype(np.int64)[None] * 64
            a = current(p, t)
            if p.synapses:
                bias = np.int64(node.params["q_bias_mant"].astype(np.int64)
                                << int(node.attrs["q_bias_exp"]))[None]
            else:
                bias = static[p.name].astype(np.int64) << 6  # INPUT_BIAS_EXP
            if p.reset_zero:  # Lava's LIF: u = wrap24(a << 6), v = 0 at the restart
                if not p.synapses:
                    a, bias = a + (bias >> 6), 0
                if t == p.depth:
                    v[p.name] = np.zeros_like(v[p.name])
                    a = a + (node.params["q_v0"].astype(np.int64)[None] >> 6)
                u = a * 64
                u = np.where(u > 2**23, u - 2**24, u)
                u = np.where(u <= -2**23, u + 2**24, u)
                vv = np.clip(v[p.name] + u + bias, -(2**23 - 1), 2**23 - 1)
                s = vv > vth
                v[p.name] = np.where(s, 0, vv)
            else:
                vv = np.clip(v[p.name] + a * 64 + bias, -(2**23 - 1), 2**23 - 1)
                s = vv >= vth
                v[p.name] = vv - s * vth
            hist[p.name][t] = s
        acc += current(readout, t)
    rasters = {p.name: hist[p.name][p.depth:p.depth + steps].transpose(1, 0, 2).astype(bool)
               for p in pops[:-1] if p.pool_of is None}
    return rasters, acc


# --- conv networks: every kind of window, every kind of synapse --------------------------------

def _conv_attrs(s: int = 1, p: tuple = (0, 0, 0, 0), d: int = 1, g: int = 1) -> dict:
    return {"strides": [s, s], "pads": list(p), "dilations": [d, d], "groups": g}


def conv_net() -> object:
    """Strided with asymmetric padding, dilated and grouped, depthwise plus a 1x1 skip
    (delay 2), a transpose (a sparse synapse), a dense layer into neurons, a dense readout."""
    rng = np.random.default_rng(7)
    b = GraphBuilder((2, 11, 11))

    def theta(c: int) -> np.ndarray:
        return rng.uniform(0.8, 1.5, c).reshape(-1, 1, 1)

    b.add("c1", "conv", ["x"], _conv_attrs(p=(1, 1, 1, 1)),
          weight=rng.uniform(0, 0.6, (6, 2, 3, 3)), bias=rng.uniform(0, 0.2, 6))
    b.neuron("if1", "c1", theta=theta(6), v0=0.5)
    b.add("c2", "conv", ["if1"], _conv_attrs(s=2, p=(1, 0, 1, 2)),
          weight=rng.normal(0.1, 0.4, (6, 6, 3, 3)), bias=rng.uniform(0, 0.3, 6))
    b.neuron("if2", "c2", theta=theta(6), v0=0.5)
    b.add("c3", "conv", ["if2"], _conv_attrs(p=(2, 2, 2, 2), d=2, g=2),
          weight=rng.normal(0.15, 0.4, (4, 3, 3, 3)), bias=rng.uniform(0, 0.3, 4))
    b.neuron("if3", "c3", theta=theta(4), v0=0.5)
    b.add("c4", "conv", ["if3"], _conv_attrs(p=(1, 1, 1, 1), g=4),
          weight=rng.normal(0.3, 0.5, (4, 1, 3, 3)), bias=rng.uniform(0, 0.3, 4))
    b.add("skip", "conv", ["if2"], _conv_attrs(), weight=rng.normal(0.1, 0.3, (4, 6, 1, 1)),
          bias=np.zeros(4))
    b.add("sum", "add", ["c4", "skip"])
    b.neuron("if4", "sum", theta=theta(4), v0=0.5)
    b.add("tr", "transpose", ["if4"], {"perm": [0, 2, 1]})
    b.neuron("if5", "tr", theta=theta(4), v0=0.5)
    b.add("fl", "flatten", ["if5"])
    b.add("fc1", "linear", ["fl"], weight=rng.normal(0.0, 0.15, (20, 144)),
          bias=rng.uniform(0, 0.2, 20))
    b.neuron("if6", "fc1", theta=1.0, v0=0.5)
    b.add("fc2", "linear", ["if6"], weight=rng.normal(0, 0.3, (3, 20)), bias=[0.1, 0, -0.1])
    return b.graph(stage="snn")


@pytest.fixture(scope="module")
def conv_nets() -> dict[str, tuple[object, object]]:
    """reset -> (lowered float graph, quantized graph), compiled once."""
    out = {}
    for reset in ("subtract", "zero"):
        g = conv_net() if reset == "subtract" else reset_zero(conv_net())
        lowered = lower_synapses(g)
        out[reset] = (lowered, quantize_weights(lowered))
    return out


def _conv_input(n: int = 12) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 1, (n, 2, 11, 11)).astype(np.float32)


def test_conv_net_lowers_to_every_synapse_kind(conv_nets: dict) -> None:
    _, q = conv_nets["subtract"]
    pops = {p.name: p for p in populations(q)}
    kinds = {name: [(s.source, s.kind, s.delay) for s in p.synapses]
             for name, p in pops.items()}
    assert kinds["if2"] == [("if1", "conv", 1)] and kinds["if3"] == [("if2", "conv", 1)]
    assert sorted(kinds["if4"]) == [("if2", "conv", 2), ("if3", "conv", 1)]
    assert kinds["if5"] == [("if4", "sparse", 1)] and kinds["if6"] == [("if5", "dense", 1)]
    attrs = {name: {k: p.synapses[0].node.attrs[k] for k in ("strides", "pads", "dilations",
                                                             "groups")}
             for name, p in pops.items() if name in ("if2", "if3")}
    assert attrs["if2"] == {"strides": [2, 2], "pads": [1, 0, 1, 2], "dilations": [1, 1],
                            "groups": 1}
    assert attrs["if3"] == {"strides": [1, 1], "pads": [2, 2, 2, 2], "dilations": [2, 2],
                            "groups": 2}
    depthwise = next(s for s in pops["if4"].synapses if s.source == "if3").node
    assert depthwise.attrs["groups"] == 4 and depthwise.params["q_weight"].shape == (4, 1, 3, 3)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_loihi_mode_is_bit_exact_with_the_lava_timeline(conv_nets: dict, reset: str) -> None:
    """Every raster and the readout accumulator equal the direct integer model (explicit
    delays, full history, convolutions tap by tap), in chunks of any size."""
    _, q = conv_nets[reset]
    x = _conv_input()
    want_rasters, want_acc = lava_timeline(q, x, 12)
    seen: list[int] = []
    for batch in (256, 5):
        got = simulate_loihi(q, x, [3, 12], batch_size=batch, rasters=True,
                             progress=seen.append)
        assert np.array_equal(got.acc, want_acc)
        assert set(got.rasters) == set(want_rasters)
        for name, r in want_rasters.items():
            assert np.array_equal(got.rasters[name], r), name
            assert np.array_equal(got.spikes[name][1], r.sum(axis=(1, 2)))
            assert np.array_equal(got.spikes[name][0], r[:, :3].sum(axis=(1, 2)))
    assert sum(seen) == 2 * len(x) and max(seen) <= 6  # at least two chunks each time
    assert sum(r.sum() for r in want_rasters.values()) > 1000  # the layers do fire


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_loihi_mode_conv_net_matches_the_float_simulator(conv_nets: dict, reset: str) -> None:
    lowered, q = conv_nets[reset]
    x = _conv_input(32)
    fl, lo = simulate(lowered, x, [32]), simulate_loihi(q, x, [32])
    for name, counts in fl.spikes.items():
        assert abs(lo.spikes[name].sum() / counts.sum() - 1) < 0.03, name
    # a few spikes more or less in the last layer move single outputs (the LIF most)
    assert np.abs(lo.outputs - fl.outputs).mean() < 0.08 * np.abs(fl.outputs).max()


def test_rasters_only_when_asked(conv_nets: dict) -> None:
    _, q = conv_nets["subtract"]
    x = _conv_input(4)
    plain = simulate_loihi(q, x, [6], rasters=False)
    with pytest.raises(UsageError, match="rasters=True"):
        plain.rasters  # noqa: B018
    small = simulate_loihi(q, x, [6])  # rasters=None: small runs keep them
    assert np.array_equal(small.acc, plain.acc) and small.rasters["if1"].shape == (4, 6, 726)
    net = snnc.runtime.CompiledNetwork(q, "loihi")
    result = net.simulate(x, [2, 6], batch_size=3)
    assert np.array_equal(result.outputs[1], plain.outputs[0])
    assert all(np.array_equal(result.spikes[k][1], v[0]) for k, v in plain.spikes.items())


def test_numba_and_numpy_neuron_steps_agree() -> None:
    """The compiled neuron update against its numpy form, with saturation and LIF wraps."""
    rng = np.random.default_rng(0)
    n, m = 7, 50
    for zero in (False, True):
        for first in (False, True):
            for with_static in (False, True):
                v = rng.integers(-2**23 + 1, 2**23, (n, m)).astype(np.int32)
                a = rng.integers(-2**17, 2**17, (n, m)).astype(np.float32)
                static = (rng.integers(-4095, 4096, (n, m)).astype(np.int64) << 6
                          if with_static else np.zeros((0, 0), np.int64))
                bias = rng.integers(-2**18, 2**18, m).astype(np.int64)
                vth = rng.integers(1, 2**17, m).astype(np.int64) << 6
                v0 = (rng.integers(0, 2**10, m).astype(np.int64) << 6)
                results = []
                for fn in (loihi_mode._step, loihi_mode._step_numpy):
                    vv, out, counts = v.copy(), np.zeros((n, m), np.float32), np.zeros(n, np.int64)
                    bad = fn(vv, a, 2, static, bias, vth, v0, out, counts, zero, first)
                    results.append((vv, out, counts, bad))
                for got, want in zip(results[0], results[1], strict=True):
                    assert np.array_equal(got, want)
    a = np.array([[0.5, 2.0]], np.float32)  # a sum that is no integer is counted
    args = (np.zeros((0, 0), np.int64), np.zeros(2, np.int64), np.ones(2, np.int64) << 6,
            np.zeros(2, np.int64), np.zeros((1, 2), np.float32), np.zeros(1, np.int64))
    assert loihi_mode._step(np.zeros((1, 2), np.int32), a, 0, *args, False, False) == 1


def test_synaptic_input_beyond_float32_integers_is_refused(conv_nets: dict) -> None:
    _, q = conv_nets["subtract"]
    syn = next(n for n in q.nodes if n.meta.get("synapse") == "conv")
    big = syn.with_params(q_weight=np.full(syn.params["q_weight"].shape, 2**20, np.int32))
    broken = q.replace([big if n is syn else n for n in q.nodes])
    with pytest.raises(InternalError, match="float32"):
        simulate_loihi(broken, _conv_input(2), [2])


# --- the small hand-made networks ------------------------------------------------------------

def test_mantissa_follows_lava_sign_modes() -> None:
    assert mantissa(np.array([0.4, 7.0, 300.0])).tolist() == [0, 7, 255]
    assert mantissa(np.array([-7.0, -300.0, 0.0])).tolist() == [-7, -255, 0]
    mixed = mantissa(np.array([7.0, -7.2, 300.0, -300.0]))
    assert mixed.tolist() == [8, -8, 254, -256]  # even: Lava drops the lowest bit of mixed
    assert np.all(mixed % 2 == 0)


def test_lower_synapses_keeps_the_float_network() -> None:
    g = tiny_chain()
    lowered = lower_synapses(g)
    x = np.random.default_rng(0).uniform(0, 1.5, (16, 4)).astype(np.float32)
    a, b = simulate(g, x, [8, 20]), simulate(lowered, x, [8, 20])
    np.testing.assert_allclose(a.outputs, b.outputs, rtol=1e-5, atol=1e-6)
    pops = populations(lowered)
    assert [(p.name, p.depth, p.readout) for p in pops] == [
        ("if1", 1, False), ("if2", 2, False), (lowered.output, 3, True)]
    assert [s.kind for p in pops for s in p.synapses] == ["dense", "dense"]


def _pool_net(pool_after_conv: bool) -> object:
    conv = _conv_attrs()
    b = GraphBuilder((1, 4, 4))
    b.add("c1", "conv", ["x"], conv, weight=np.ones((2, 1, 1, 1)), bias=[0, 0])
    b.neuron("if1", "c1", theta=1.0)
    src = b.add("c2", "conv", ["if1"], conv, weight=np.ones((2, 2, 1, 1)), bias=[0, 0]) \
        if pool_after_conv else "if1"
    b.add("mp", "maxpool", [src], {"kernel": [2, 2], "strides": [2, 2], "pads": [0] * 4,
                                   "dilations": [1, 1], "ceil_mode": 0})
    b.add("fl", "flatten", ["mp"])
    b.add("fc", "linear", ["fl"], weight=np.ones((2, 8)), bias=[0, 0])
    return b.graph(stage="snn")


def test_maxpool_of_spikes_is_a_population_others_are_refused() -> None:
    with pytest.raises(ModelError, match="max pooling must read a spiking layer"):
        lower_synapses(_pool_net(pool_after_conv=True))
    g = lower_synapses(_pool_net(pool_after_conv=False))
    pops = populations(g)
    assert [(p.name, p.pool_of, p.depth) for p in pops[:2]] == [("if1", None, 1), ("mp", "if1", 1)]
    assert pops[-1].synapses[0].source == "mp" and pops[-1].synapses[0].delay == 1
    x = np.random.default_rng(3).uniform(0, 1, (6, 1, 4, 4)).astype(np.float32)
    fl = simulate(g, x, [16])
    q = quantize_weights(g)
    lo = simulate_loihi(q, x, [16])
    np.testing.assert_allclose(lo.outputs[0], fl.outputs[0], atol=0.05)
    rasters, acc = lava_timeline(q, x, 16)
    assert np.array_equal(lo.acc, acc) and np.array_equal(lo.rasters["if1"], rasters["if1"])


def test_quantize_weights_formats_and_reports_errors() -> None:
    q = quantize_weights(lower_synapses(tiny_chain(w2=0.37)))
    if2 = q.node("if2")
    assert 1 <= if2.params["q_vth"].min() and if2.params["q_vth"].max() <= VTH_MAX
    assert abs(int(if2.params["q_bias_mant"][0])) <= 4095
    quant = if2.meta["quant"]
    assert 0 <= quant["weight_rel_err"] < 0.01 and quant["theta_rel_err"] < 1e-3
    syn = next(n for n in q.nodes if "q_weight" in n.params and n.meta.get("synapse_from"))
    # weight normalisation: theta of the source (1.0) folded in; scale S = vth / theta
    s = float(if2.attrs["q_scale"])
    deq = syn.params["q_weight"] * 2.0 ** syn.attrs["q_weight_exp"] / s  # (m << e) / S
    np.testing.assert_allclose(deq, 0.37, rtol=0.01)
    assert q.meta["quantized"] == "loihi2"


def test_loihi_mode_matches_a_hand_computed_raster() -> None:
    """One input-fed IF population: S = 2048/theta, input 0.3*theta -> mantissa 614 << 6."""
    b = GraphBuilder((1,))
    b.add("fc1", "linear", ["x"], weight=[[1.0]], bias=[0.0])
    b.neuron("if1", "fc1", theta=1.0, v0=0.5)
    b.add("fc2", "linear", ["if1"], weight=[[1.0]], bias=[0.0])
    q = quantize_weights(lower_synapses(b.graph(stage="snn")))
    r = simulate_loihi(q, np.array([[0.3]], np.float32), [10])
    vth, v, spikes = 2048 * 64, 1024 * 64, []
    for _ in range(10):
        v += 614 * 64
        spikes.append(v >= vth)
        v -= vth * spikes[-1]
    assert r.rasters["if1"][0, :, 0].tolist() == spikes
    assert r.spikes["if1"][0, 0] == sum(spikes) == 3


def test_loihi_mode_lines_up_with_the_float_simulator() -> None:
    g = lower_synapses(tiny_chain())
    x = np.random.default_rng(1).uniform(0, 1.2, (32, 4)).astype(np.float32)
    fl = simulate(g, x, [16])
    lo = simulate_loihi(quantize_weights(g), x, [16])
    for name in ("if1", "if2"):  # same clock despite Lava's delays: counts nearly equal
        assert np.abs(lo.spikes[name][0] - fl.spikes[name][0]).max() <= 1
    np.testing.assert_allclose(lo.outputs[0], fl.outputs[0], atol=0.15)


@pytest.mark.parametrize("model", ["examples/digits/model.onnx", "digits_cnn_seed1.onnx"])
def test_quantized_accuracy_within_one_point_of_float(model: str, digits_calib: Path,
                                                      digits_test_arrays: tuple) -> None:
    path = DATA / model if "/" not in model else Path(__file__).parents[1] / model
    x, y = digits_test_arrays
    fl = snnc.compile(path, calib=digits_calib, target="numpy", preset="rate-p99.99").run(x, 32)
    lo = snnc.compile(path, calib=digits_calib, target="loihi", preset="rate-p99.99").run(x, 32)
    assert abs(lo.accuracy(y) - fl.accuracy(y)) <= 0.01
    assert lo.accuracy(y) > 0.95


def test_lava_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import snnc.backends.lava as lava_backend

    monkeypatch.setattr(lava_backend, "lava_available", lambda: False)
    with pytest.raises(UsageError, match="pip install .*lava-nc==0.10.0"):
        lava_backend.require_lava()


@pytest.mark.parametrize("name", ["digits_vgg_maxpool.onnx", "digits_resnet.onnx"])
def test_quantized_accuracy_maxpool_and_residual(name: str, digits_calib: Path,
                                                 digits_test_arrays: tuple) -> None:
    x, y = digits_test_arrays
    fl = snnc.compile(DATA / name, calib=digits_calib, preset="rate-p99.99").run(x, 32)
    lo = snnc.compile(DATA / name, calib=digits_calib, target="loihi",
                      preset="rate-p99.99").run(x, 32)
    assert abs(lo.accuracy(y) - fl.accuracy(y)) <= 0.01 and lo.accuracy(y) > 0.95


def skip_net() -> object:
    """if1 -> if2 -> if3 plus a skip if1 -> if3: the skip needs delay 2 to line up."""
    b = GraphBuilder((3,))
    b.add("fc1", "linear", ["x"], weight=np.eye(3), bias=np.zeros(3))
    b.neuron("if1", "fc1", theta=1.0)
    b.add("fc2", "linear", ["if1"], weight=np.eye(3) * 0.5, bias=np.zeros(3))
    b.neuron("if2", "fc2", theta=1.0)
    b.add("fc3", "linear", ["if2"], weight=np.eye(3), bias=np.zeros(3))
    b.add("sum", "add", ["fc3", "if1"])
    b.neuron("if3", "sum", theta=2.0)
    b.add("fc4", "linear", ["if3"], weight=np.ones((2, 3)), bias=np.zeros(2))
    return b.graph(stage="snn")


def test_skip_connections_get_delays_and_restart_at_their_depth() -> None:
    g = lower_synapses(skip_net())
    pops = {p.name: p for p in populations(g)}
    assert {s.source: s.delay for s in pops["if3"].synapses} == {"if2": 1, "if1": 2}
    assert [pops[f"if{k}"].depth for k in (1, 2, 3)] == [1, 2, 3]  # restart steps
    x = np.random.default_rng(2).uniform(0, 1, (8, 3)).astype(np.float32)
    q = quantize_weights(g)
    lo = simulate_loihi(q, x, [20])
    fl = simulate(g, x, [20])
    assert np.abs(lo.spikes["if3"][0] - fl.spikes["if3"][0]).max() <= 2
    rasters, acc = lava_timeline(q, x, 20)  # the delays, explicitly, agree with the clock
    assert np.array_equal(lo.acc, acc)
    assert all(np.array_equal(lo.rasters[k], r) for k, r in rasters.items())


def test_cli_backend_lava_without_lava_says_what_to_install(
        tmp_path: Path, digits_model: Path, digits_calib: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import snnc.backends.lava as lava_backend
    from snnc.cli import main

    out = tmp_path / "net.snn"
    assert main(["compile", str(digits_model), "--calib", str(digits_calib), "--target",
                 "lava", "-o", str(out)]) == 0
    monkeypatch.setattr(lava_backend, "lava_available", lambda: False)
    assert main(["run", str(out), "--data", str(digits_calib), "--backend", "lava"]) == 2
    assert "lava-nc==0.10.0" in capsys.readouterr().err
    assert main(["run", str(out), "--data", str(digits_calib), "--timesteps", "4"]) == 0


def test_reset_to_zero_matches_a_hand_computed_raster() -> None:
    """Input 0.3 theta, v0 = 0.5 theta, vth = 2048: subtraction keeps the residue, the stock
    LIF (spike on v > vth, v = 0) drops it and fires every 4th step after the first."""
    b = GraphBuilder((1,))
    b.add("fc1", "linear", ["x"], weight=[[1.0]], bias=[0.0])
    b.neuron("if1", "fc1", theta=1.0, v0=0.5)
    b.add("fc2", "linear", ["if1"], weight=[[1.0]], bias=[0.0])
    x = np.array([[0.3]], np.float32)
    sub = simulate_loihi(quantize_weights(lower_synapses(b.graph(stage="snn"))), x, [10])
    zero_graph = quantize_weights(lower_synapses(reset_zero(b.graph(stage="snn"))))
    zero = simulate_loihi(zero_graph, x, [10])
    assert zero_graph.node("if1").params["q_v0"][0] == 1024 * 64  # whole weight units
    # v (in units of 64): 1638, 2252 -> spike, 0 + 614 ... subtract: residue 204 carries on
    assert np.flatnonzero(sub.rasters["if1"][0, :, 0]).tolist() == [1, 5, 8]
    assert np.flatnonzero(zero.rasters["if1"][0, :, 0]).tolist() == [1, 5, 9]
    v, spikes = 0, []
    for t in range(10):
        v += 614 * 64 + (1024 * 64 if t == 0 else 0)
        spikes.append(v > 2048 * 64)
        v = 0 if spikes[-1] else v
    assert zero.rasters["if1"][0, :, 0].tolist() == spikes


def test_reset_to_zero_gets_one_threshold_per_population() -> None:
    """Per-channel thresholds: the stock LIF has one vth, so weights, bias and v0 of each
    neuron are scaled by max(theta) / theta; the network stays close to the float one."""
    conv = _conv_attrs(p=(1, 1, 1, 1))
    rng = np.random.default_rng(5)
    b = GraphBuilder((1, 4, 4))
    b.add("c1", "conv", ["x"], conv, weight=rng.uniform(0, 1, (2, 1, 3, 3)), bias=[0, 0.1])
    b.neuron("if1", "c1", theta=np.array([1.0, 2.0]).reshape(2, 1, 1), v0=0.5)
    b.add("c2", "conv", ["if1"], conv, weight=rng.normal(0, 0.5, (3, 2, 3, 3)),
          bias=[0.05, 0, -0.05])
    b.neuron("if2", "c2", theta=np.array([1.5, 0.5, 1.0]).reshape(3, 1, 1), v0=0.25)
    b.add("fl", "flatten", ["if2"])
    b.add("fc", "linear", ["fl"], weight=rng.normal(0, 0.3, (2, 48)), bias=[0, 0])
    g = lower_synapses(reset_zero(b.graph(stage="snn")))
    q = quantize_weights(g)
    for name in ("if1", "if2"):
        assert len(set(q.node(name).params["q_vth"].tolist())) == 1
        assert np.all(q.node(name).params["q_v0"] % 64 == 0)
    x = rng.uniform(0, 1, (16, 1, 4, 4)).astype(np.float32)
    fl, lo = simulate(g, x, [64]), simulate_loihi(q, x, [64])
    for name in ("if1", "if2"):
        assert abs(lo.spikes[name].sum() / fl.spikes[name].sum() - 1) < 0.03, name
    np.testing.assert_allclose(lo.outputs[0], fl.outputs[0], atol=0.15)


def test_ternary_neurons_are_refused_for_loihi() -> None:
    """(signed ones are carried as signed payloads: tests/test_graded_lava.py)"""
    g = tiny_chain()
    g = g.replace([n.with_attrs(signed=True, ternary=True) if n.name == "if2" else n
                   for n in g.nodes])
    with pytest.raises(ModelError, match="if2.*ternary"):
        quantize_weights(lower_synapses(g))


def test_conv_windows_compose(digits_model: Path, digits_calib: Path) -> None:
    """conv -> one 3x3 window; avgpool 2x2/2 then conv 3x3 -> one 6x6 window, stride 2, pad 2;
    the readout (flatten + linear) is a dense layer. The composed window is bit-exact in the
    loihi mode (the direct integer model above convolves it tap by tap)."""
    net = snnc.compile(digits_model, calib=digits_calib, target="loihi", preset="rate-p99.99")
    q = net.graph
    syns = [s for p in populations(q) for s in p.synapses]
    assert [s.kind for s in syns] == ["conv", "conv", "dense"]
    got = [(s.node.params["q_weight"].shape[2:], s.node.attrs["strides"],
            s.node.attrs["pads"]) for s in syns[:2]]
    assert got == [((3, 3), [1, 1], [1, 1, 1, 1]), ((6, 6), [2, 2], [2, 2, 2, 2])]
    with np.load(digits_calib) as f:
        x = f["x"][:6]
    lo = simulate_loihi(q, x, [8], rasters=True)
    rasters, acc = lava_timeline(q, x, 8)
    assert np.array_equal(lo.acc, acc)
    assert all(np.array_equal(lo.rasters[k], r) for k, r in rasters.items())


# --- the plain-data Lava plan (backends/lava/plan.py) ----------------------------------------

def test_plan_is_plain_data() -> None:
    from snnc.backends.lava.plan import build_plan

    q = quantize_weights(lower_synapses(tiny_chain()))
    plan = build_plan(q, "fixed")
    kinds = [(p.name, p.kind) for p in plan.procs]
    assert kinds[0] == ("if1", "if") and ("if2", "if") in kinds
    assert [p.kind for p in plan.procs].count("dense") == 2
    assert plan.input_pops == ("if1",) and plan.lag == 2
    assert all(np.issubdtype(np.asarray(p.params.get("weights", 0)).dtype, np.integer)
               for p in plan.procs if p.kind == "dense")
    fplan = build_plan(lower_synapses(tiny_chain()), "float")
    dense = next(p for p in fplan.procs if p.kind == "dense")
    np.testing.assert_allclose(dense.params["weights"], 0.5 * 1.0)  # theta_src folded in
    with pytest.raises(UsageError, match="--target loihi"):
        build_plan(lower_synapses(tiny_chain()), "fixed")


def test_plan_delays_and_restart_steps() -> None:
    from snnc.backends.lava.plan import build_plan

    plan = build_plan(lower_synapses(skip_net()), "float")
    assert [plan.proc(f"if{k}").depth for k in (1, 2, 3)] == [1, 2, 3]  # restart steps
    assert sorted(p.params["delay"] for p in plan.procs if p.kind == "dense") == [1, 1, 1, 2]


def test_plan_uses_lava_conv_for_conv_synapses(digits_model: Path, digits_calib: Path) -> None:
    from snnc.backends.lava.plan import build_plan

    q = snnc.compile(digits_model, calib=digits_calib, target="loihi", preset="rate-p99.99").graph
    kinds = {c: [p.kind for p in build_plan(q, "fixed", conv=c).procs
                 if p.kind in ("dense", "conv")] for c in ("lava", "dense")}
    assert kinds == {"lava": ["conv", "conv", "dense"], "dense": ["dense"] * 3}
    conv = next(p for p in build_plan(q, "fixed").procs if p.kind == "conv")
    assert conv.params["weight"].shape == (32, 3, 3, 16)  # Lava: (C_out, kW, kH, C_in)
