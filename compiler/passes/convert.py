"""convert: ANN -> SNN. Every ReLU, Clip(0, a) or recognised `qclip` activation with a threshold
becomes an integrate-and-fire neuron firing at theta and emitting spikes of amplitude theta.
A final Softmax is dropped (it does not change the argmax of the decoded output).

Neuron kinds (`neuron`):
* `if`: reset by subtraction (Rueckauer 2017), the default: rates follow clip(z, 0, theta).
* `lif`: Lava's stock LIF without leak, reset to zero: what runs on Loihi 2 without custom
  microcode; it loses the residue above threshold at every spike, so rates fall below the ANN's.
* ternary (for Clip(-a, a), Hardtanh; needs `signed`): +theta at V >= theta, -theta at
  V <= -theta, reset by subtraction: rates follow clip(z, -theta, theta).
* `sigma-delta`: Lava's stock SigmaDelta neuron (compiler/ops/sigma_delta.py), ReLU only:
  graded messages carry the change of the activation when it exceeds a per-layer vth.
* `signed`: reset by subtraction, plus a negative spike that takes back an earlier spike when the
  potential falls below zero (Fast-SNN, Hu et al. 2023; SNM, Wang et al. 2022); the net count
  never goes below zero.

Graded neurons (`spike_bits` B > 1, Loihi 2-style graded spikes): one message per step carries
a count n <= K = 2^B - 1 (compiler/ops/neuron.py). The activation's clip level lambda (the
threshold normalize-thresholds set) becomes the neuron's largest rate K * theta, so the step is
theta = lambda / K and the neuron computes the same ANN activation clip(z, 0, lambda), rounded
per quantum theta (V(0) = phi * theta) instead of per lambda. Reset to zero (`lif`, Lava's stock
LIF) is binary only and refused with B > 1; signed graded neurons take back up to K counts.

The half-step shift `phi` (0.5 for ReLU/Clip; the model's own for a quantized activation) is
recorded here and applied by shift-bias.

Before:  %relu1 : f32[N,16,8,8] = relu[theta=1.734](%conv1)
After:   %relu1 : f32[N,16,8,8] = if[theta=1.734, v0=0, reset=subtract](%conv1)
"""

from __future__ import annotations

import numpy as np

from ..contracts import CONVERTED, contract
from ..errors import ModelError, UsageError
from ..ir.graph import Graph, Node
from ..ops.neuron import MAX_SPIKE_BITS, spike_levels
from .rewrite import rebuild

NAME = "convert"
CONTRACT = contract(forbids={CONVERTED}, produces={CONVERTED})
NEURONS = ("if", "lif", "signed", "sigma-delta")
DEFAULT_PHI = 0.5
# sigma-delta: vth relative to the layer's activation scale until delta-thresholds chooses it
DEFAULT_VTH_RATIO = 1 / 64


def check_spike_bits(bits: int, neuron: str = "if", flag: str = "--spike-bits") -> int:
    """B as an int in 1..MAX_SPIKE_BITS; reset to zero (lif) only with B = 1."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) \
            or not 1 <= int(bits) <= MAX_SPIKE_BITS:
        raise UsageError(f"{flag} must be an integer from 1 (binary spikes) to "
                         f"{MAX_SPIKE_BITS}, got {bits!r}")
    if int(bits) > 1 and neuron == "lif":
        raise UsageError(f"{flag} {bits}: --neuron lif is Lava's stock LIF, which resets to "
                         "zero and sends binary spikes; graded spikes need reset by "
                         "subtraction: use --neuron if or signed (or --spike-bits 1)")
    if int(bits) > 1 and neuron == "sigma-delta":
        raise UsageError(f"{flag} {bits}: sigma-delta neurons send graded messages of up to 24 "
                         "bits by design; drop --spike-bits (it sets the counts of IF neurons)")
    return int(bits)


def _neuron(node: Node, kind: str, bits: int = 1) -> Node:
    if "theta" not in node.params:
        raise ModelError.at(node, "activation has no threshold; run normalize-thresholds "
                            "before convert")
    if node.op == "clip" and node.attrs.get("min") != 0.0:
        return _ternary(node, kind, bits)
    theta = node.params["theta"]
    attrs: dict[str, object] = {"reset": "zero" if kind == "lif" else "subtract"}
    if kind == "signed":
        attrs["signed"] = True
    phi = np.full_like(theta, DEFAULT_PHI)
    if node.op == "qclip" and node.attrs["levels"]:
        attrs["levels"] = int(node.attrs["levels"])
        phi = np.broadcast_to(node.params["phi"], np.broadcast_shapes(
            theta.shape, node.params["phi"].shape)).astype(np.float32)
        theta = np.broadcast_to(theta, phi.shape).astype(np.float32)
    if bits > 1:  # the clip level is the largest rate K * theta: theta is the step
        attrs["spike_bits"] = bits
        theta = (np.asarray(theta, np.float32) / np.float32(spike_levels(bits))).astype(
            np.float32)
    return Node(node.name, "if", node.inputs, attrs=attrs,
                params={"theta": theta, "v0": np.zeros_like(theta), "phi": phi},
                shape=node.shape, source=node.source, meta=node.meta)


def _sigma_delta(node: Node) -> Node:
    """A ReLU as Lava's stock SigmaDelta neuron (compiler/ops/sigma_delta.py): one delta
    threshold per layer, relative to the layer's activation scale (the clip level
    normalize-thresholds chose; the largest if per channel)."""
    if node.op != "relu":
        raise ModelError.at(node, f"{node.op} cannot become a sigma-delta neuron: Lava's "
                            "SigmaDelta computes ReLU only (Clip(0, a), ReLU6 and quantized "
                            "activations clip at a, which it cannot); use --neuron if, or "
                            "retrain with ReLU")
    if "theta" not in node.params:
        raise ModelError.at(node, "activation has no scale; run normalize-thresholds "
                            "before convert")
    scale = np.float32(np.max(node.params["theta"]))
    return Node(node.name, "sd", node.inputs, attrs={"act": "relu"},
                params={"vth": np.array(scale * np.float32(DEFAULT_VTH_RATIO), np.float32),
                        "scale": np.array(scale, np.float32)},
                shape=node.shape, source=node.source, meta=node.meta)


def _ternary(node: Node, kind: str, bits: int) -> Node:
    """Clip(-a, a) (Hardtanh): a ternary IF neuron, +theta at V >= theta and -theta at
    V <= -theta, reset by subtraction, rate limit clip(z, -theta, theta). It starts at V(0) = 0
    (phi = 0: a half step would round the two signs differently), so rates truncate toward 0.
    Negative spikes exist only where signed neurons do (--neuron signed, the numpy target's
    default)."""
    lo, hi = node.attrs.get("min"), node.attrs.get("max")
    if lo is None or hi is None or lo >= 0 or not np.isclose(-lo, hi, rtol=1e-6):
        raise ModelError.at(node, f"Clip(min={lo}, max={hi}) cannot become a spiking neuron: "
                            "IF neurons output rates in [0, theta] (min 0) and ternary ones "
                            "in [-theta, theta] (min = -max)")
    if kind != "signed" or bits > 1:
        raise ModelError.at(node, f"Clip({lo}, {hi}) (Hardtanh) needs a ternary neuron, which "
                            "emits negative spikes: only --target numpy with signed neurons "
                            "(its default; --neuron signed) and binary spikes carries them "
                            f"(here: --neuron {kind}, spike bits {bits}); Lava, Loihi, NIR "
                            "and netx carry positive spikes only")
    theta = np.asarray(node.params["theta"], np.float32)
    return Node(node.name, "if", node.inputs, attrs={"reset": "subtract", "ternary": True},
                params={"theta": theta, "v0": np.zeros_like(theta),
                        "phi": np.zeros_like(theta)},
                shape=node.shape, source=node.source, meta=node.meta)


def _leftover(node: Node) -> ModelError:
    why = node.meta.get("unrecognised", "it is not part of a recognisable activation")
    return ModelError.at(node, "this op has no spiking equivalent on its own, and the chain of "
                         f"elementwise ops around it is not a clipped or quantized activation: "
                         f"{why}. Supported: ReLU, Clip(0, a), and chains equal to "
                         "a*clip(floor(x*L/a + phi)/L, 0, 1) (QCFS) or clip(x, 0, a)")


def convert(graph: Graph, neuron: str = "if", spike_bits: int = 1) -> Graph:
    if neuron not in NEURONS:
        raise UsageError(f"--neuron '{neuron}' is not one of: {', '.join(NEURONS)}")
    bits = check_spike_bits(spike_bits, neuron)
    leftovers = [_leftover(n) for n in graph.nodes if n.op in ("round", "bound")]
    if leftovers:
        raise leftovers[0]
    renames: dict[str, str] = {}
    nodes = []
    dropped_softmax = False
    for node in graph.nodes:
        if node.op in ("relu", "clip", "qclip"):
            node = _sigma_delta(node) if neuron == "sigma-delta" else _neuron(node, neuron, bits)
        elif node.op == "softmax" and node.name == graph.output:
            renames[node.name] = node.inputs[0]
            dropped_softmax = True
            continue
        nodes.append(node)
    out = rebuild(graph, nodes, renames)
    meta: dict[str, object] = {"spike_bits": bits} if bits > 1 else {}
    return out.with_meta(stage="snn", output_softmax=dropped_softmax, neuron=neuron, **meta)
