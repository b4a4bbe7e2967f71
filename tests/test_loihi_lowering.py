"""lower-synapses keeps synapses structured (compiler/loihi): convolutions stay kernels through
every window geometry, fully connected layers stay matrices, the rest becomes sparse; the
lowered network computes what the original does; synapse counts come from kernels."""

from __future__ import annotations

import math
import time
import tracemalloc

import numpy as np
import pytest

from snnc.backends.numpy import simulate
from snnc.compiler.ir.builder import GraphBuilder
from snnc.compiler.loihi.lower_synapses import lower_synapses
from snnc.compiler.loihi.map_cores import map_cores
from snnc.compiler.loihi.populations import populations
from snnc.compiler.loihi.quantize_weights import quantize_weights
from snnc.compiler.loihi.synapses import counts, matrix

RNG = np.random.default_rng(0)


def _conv_attrs(stride: int = 1, pad: int = 0, dil: int = 1, groups: int = 1,
                end: int | None = None) -> dict:
    end = pad if end is None else end
    return {"strides": [stride, stride], "pads": [pad, pad, end, end],
            "dilations": [dil, dil], "groups": groups}


def _net(c_in: int, c_out: int, k: int, attrs: dict, size: int = 9,
         before: str | None = None) -> object:
    """input -> 1x1 conv -> IF -> [before] -> conv(attrs) -> IF -> GAP -> linear readout."""
    b = GraphBuilder((c_in, size, size))
    b.add("c0", "conv", ["x"], _conv_attrs(), weight=RNG.uniform(0.2, 1, (c_in, c_in, 1, 1)),
          bias=np.zeros(c_in))
    b.neuron("if0", "c0", theta=RNG.uniform(0.5, 1.5, (c_in, 1, 1)), v0=0.4)
    prev = "if0"
    if before == "avgpool":
        prev = b.add("pool", "avgpool", [prev], {"kernel": [2, 2], "strides": [2, 2],
                                                  "pads": [0] * 4, "dilations": [1, 1],
                                                  "ceil_mode": 0, "count_include_pad": 1})
    elif before == "pad":
        prev = b.add("pad", "pad", [prev], {"begin": [0, 1, 2], "end": [0, 2, 0], "value": 0.0})
    elif before == "affine":
        prev = b.add("aff", "affine", [prev], scale=RNG.uniform(0.5, 2, (c_in, 1, 1)),
                     shift=RNG.normal(0, 0.1, (c_in, 1, 1)))
    g = attrs["groups"]
    b.add("c1", "conv", [prev], attrs, weight=RNG.normal(0, 0.5, (c_out, c_in // g, k, k)),
          bias=RNG.normal(0, 0.1, c_out))
    b.neuron("if1", "c1", theta=RNG.uniform(0.5, 1.5, (c_out, 1, 1)), v0=0.3)
    b.add("gap", "global_avgpool", ["if1"])
    b.add("fl", "flatten", ["gap"])
    b.add("fc", "linear", ["fl"], weight=RNG.normal(0, 1, (3, c_out)), bias=np.zeros(3))
    return b.graph(stage="snn")


def _probe_matrix(graph: object, target: str, source: str) -> np.ndarray:
    """The dense map from `source` spikes to `target`'s input current, by unit inputs (the
    oracle the old lowering used; fine at test sizes)."""
    from snnc.compiler.loihi.lower_synapses import cone

    feed = graph.node(target).inputs[0]
    nodes, sources = cone(graph, feed)
    shape = graph.node(source).shape
    n = math.prod(shape)

    def run(x: np.ndarray) -> np.ndarray:
        env = {s: np.zeros((len(x), *graph.node(s).shape), np.float32) for s in sources}
        env[source] = x.reshape(len(x), *shape)
        for node in nodes:
            from snnc.compiler.ops import opdef
            env[node.name] = opdef(node.op).evaluate(node, [env[i] for i in node.inputs])
        return env[feed].reshape(len(x), -1).astype(np.float64)

    return (run(np.eye(n, dtype=np.float32)) - run(np.zeros((1, n), np.float32))).T


GEOMETRIES = {
    "strided": (4, 5, 3, _conv_attrs(stride=2, pad=1), None),
    "padded": (3, 4, 5, _conv_attrs(pad=2), None),
    "asymmetric": (3, 4, 3, _conv_attrs(pad=1, end=0), None),
    "dilated": (3, 4, 3, _conv_attrs(pad=2, dil=2), None),
    "grouped": (4, 6, 3, _conv_attrs(pad=1, groups=2), None),
    "depthwise": (4, 4, 3, _conv_attrs(pad=1, groups=4), None),
    "pool+conv": (3, 4, 3, _conv_attrs(pad=1), "avgpool"),
    "pad+conv": (3, 4, 3, _conv_attrs(), "pad"),
    "affine+conv": (3, 4, 3, _conv_attrs(stride=2, pad=1), "affine"),
}


@pytest.mark.parametrize("kind", list(GEOMETRIES))
def test_every_conv_geometry_stays_one_exact_kernel(kind: str) -> None:
    c_in, c_out, k, attrs, before = GEOMETRIES[kind]
    g = _net(c_in, c_out, k, attrs, size=8 if before == "avgpool" else 9, before=before)
    lowered = lower_synapses(g)
    pops = {p.name: p for p in populations(lowered)}
    (syn,) = pops["if1"].synapses
    assert syn.kind == "conv" and syn.node.op == "conv"
    if before is None:  # the geometry is the conv's own
        for key in ("strides", "dilations", "groups"):
            assert syn.node.attrs[key] == attrs[key]
    in_shape = lowered.node(syn.node.inputs[0]).shape
    want = _probe_matrix(g, "if1", "if0")
    got = matrix(syn.node, in_shape).toarray()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert counts(syn.node, in_shape)[0] == int(np.count_nonzero(want))
    x = RNG.uniform(0, 1, (8, *g.input.shape)).astype(np.float32)
    a, b = simulate(g, x, [6]), simulate(lowered, x, [6])
    np.testing.assert_allclose(a.outputs, b.outputs, rtol=1e-4, atol=1e-5)


def test_pooling_before_a_conv_composes_into_one_window() -> None:
    lowered = lower_synapses(_net(3, 4, 3, _conv_attrs(pad=1), size=8, before="avgpool"))
    (syn,) = next(p for p in populations(lowered) if p.name == "if1").synapses
    assert syn.node.params["weight"].shape[2:] == (6, 6)  # 2x2 pool + 3x3 conv
    assert syn.node.attrs["strides"] == [2, 2] and syn.node.attrs["pads"][:2] == [2, 2]


def _shuffle_net() -> object:
    """A channel shuffle (reshape -> transpose -> reshape) and a concat feeding neurons."""
    b = GraphBuilder((4, 4, 4))
    b.add("c0", "conv", ["x"], _conv_attrs(), weight=RNG.uniform(0.2, 1, (4, 4, 1, 1)),
          bias=np.zeros(4))
    b.neuron("if0", "c0", theta=1.0, v0=0.5)
    b.add("r1", "reshape", ["if0"], {"shape": [2, 2, 4, 4]})
    b.add("t", "transpose", ["r1"], {"perm": [1, 0, 2, 3]})
    b.add("r2", "reshape", ["t"], {"shape": [4, 4, 4]})
    b.neuron("if1", "r2", theta=1.0, v0=0.5)
    b.add("cat", "concat", ["if0", "if1"], {"axis": 0})
    b.neuron("if2", "cat", theta=1.0, v0=0.5)
    b.add("fl", "flatten", ["if2"])
    b.add("fc", "linear", ["fl"], weight=RNG.normal(0, 1, (3, 128)), bias=np.zeros(3))
    return b.graph(stage="snn")


def test_shuffles_are_sparse_concats_are_kernels_readouts_dense() -> None:
    g = _shuffle_net()
    lowered = lower_synapses(g)
    kinds = {p.name: [s.kind for s in p.synapses] for p in populations(lowered)}
    assert kinds["if1"] == ["sparse"]  # a permutation: one entry per neuron
    assert kinds["if2"] == ["conv", "conv"]  # each input placed by a 1x1 kernel
    assert kinds[lowered.output] == ["dense"]
    pops = {p.name: p for p in populations(lowered)}
    assert pops["if1"].synapses[0].node.params["weight"].size == 64
    x = RNG.uniform(0, 1, (8, 4, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(simulate(g, x, [5]).outputs, simulate(lowered, x, [5]).outputs,
                               rtol=1e-5, atol=1e-6)


def test_a_large_conv_never_becomes_a_matrix() -> None:
    """64 channels on 96x96: a dense matrix would have 3.5e11 entries."""
    b = GraphBuilder((8, 96, 96))
    b.add("c0", "conv", ["x"], _conv_attrs(pad=1), weight=RNG.normal(0, .3, (64, 8, 3, 3)),
          bias=np.zeros(64))
    b.neuron("if0", "c0", theta=1.0, v0=0.5)
    b.add("c1", "conv", ["if0"], _conv_attrs(pad=1), weight=RNG.normal(0, .1, (64, 64, 3, 3)),
          bias=np.zeros(64))
    b.neuron("if1", "c1", theta=1.0, v0=0.5)
    b.add("mp", "maxpool", ["if1"], {"kernel": [8, 8], "strides": [8, 8], "pads": [0] * 4,
                                     "dilations": [1, 1], "ceil_mode": 0})
    b.add("gap", "global_avgpool", ["mp"])
    b.add("fl", "flatten", ["gap"])
    b.add("fc", "linear", ["fl"], weight=RNG.normal(0, 1, (10, 64)), bias=np.zeros(10))
    g = b.graph(stage="snn")
    tracemalloc.start()
    start = time.perf_counter()
    mapped = map_cores(quantize_weights(lower_synapses(g)))
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 20 and peak < 400 * 2**20, (elapsed, peak / 2**20)
    report = {r["name"]: r for r in mapped.meta["mapping"]["populations"]}
    # C_out*H*W*C_in*9 less the taps on the zero border (4 edges of 96 per 3x3 tap row)
    assert report["if1"]["synapses"] == 64 * 64 * (96 * 96 * 9 - 4 * 96 * 3 + 4)


def test_every_preset_compiles_for_loihi(digits_model: object, digits_calib: object) -> None:
    """Including those whose max / 99.99th-percentile thresholds once overflowed the 24-bit
    state bound (the weight scale now shrinks until one step's input provably fits)."""
    import snnc
    from snnc.presets import PRESETS

    for preset in PRESETS:
        net = snnc.compile(digits_model, calib=digits_calib, target="loihi", timesteps=2,
                           preset=preset)
        assert net.graph.meta["quantized"] == "loihi2" and net.graph.meta["mapping"]["chips"]
        for pop in populations(net.graph):
            fit = pop.node.meta.get("quant", {}).get("input_fit", 1.0)
            assert 0 < fit <= 1
