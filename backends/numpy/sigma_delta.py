"""Reference simulator of sigma-delta networks (graphs converted with --neuron sigma-delta).

Every `sd` node follows compiler/ops/sigma_delta.py step by step; all other nodes are evaluated
on their inputs' values of the same step, which for an sd input is its reconstruction (the sum
of the messages it sent), so linear ops see Lava's sigma plus their bias once. The input node
feeds the sample every step (the input source sends its change: the whole sample at the first
step). The output at a checkpoint t is the output node's value at step t, not a time average:
the sink sums the last synapse layer's messages.

A step in which no sd node of a chunk sends anything leaves every state as it was; with a static
input the next step is then the same step again, so the rest of the run is skipped (a settled
network sends nothing more). `spikes` counts messages (nonzero graded sends) per sd node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from snnc.compiler.executor import evaluate_nodes
from snnc.compiler.ir.graph import Graph, Node
from snnc.compiler.ops import opdef
from snnc.compiler.ops.sigma_delta import activation
from snnc.compiler.parallel import parallel_map

Progress = Callable[[int], None]


def is_sigma_delta(graph: Graph) -> bool:
    return graph.meta.get("neuron") == "sigma-delta"


class _State:
    """act, residue and recon of one sd node for a chunk of samples."""

    def __init__(self, node: Node, n: int) -> None:
        shape = (n, *node.shape)
        self.act = np.zeros(shape, np.float32)
        self.residue = np.zeros(shape, np.float32)
        self.recon = np.zeros(shape, np.float32)
        self.vth = node.params["vth"]

    def step(self, node: Node, z: np.ndarray) -> np.ndarray:
        """One step; returns the per-sample message counts."""
        a = activation(node, z)
        delta = a - self.act + self.residue
        send = (np.abs(delta) >= self.vth) & (delta != 0)  # a zero delta sends nothing
        msg = np.where(send, delta, np.float32(0))
        self.residue = delta - msg
        self.act = a
        self.recon += msg
        return send.reshape(len(send), -1).sum(axis=1)


def simulate_sigma_delta(graph: Graph, x: np.ndarray, ts: Sequence[int], static: set[str],
                         chunk: int, progress: Progress | None = None
                         ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(outputs (len(ts), N, *out), messages {sd node: (len(ts), N)}, last step (N,) at which
    a sample's network sent a message: its output is final from that step on) for checked
    input x and sorted checkpoints."""
    sd = [n.name for n in graph.nodes if n.op == "sd"]
    outputs = np.zeros((len(ts), len(x), *graph.output_node.shape), np.float32)
    messages = {name: np.zeros((len(ts), len(x)), np.int64) for name in sd}
    last = np.ones(len(x), np.int64)

    def run(rows: slice) -> None:
        n = len(x[rows])
        env0 = evaluate_nodes([n for n in graph.nodes[1:] if n.name in static],
                              {graph.input.name: x[rows]})
        dynamic = [n for n in graph.nodes[1:] if n.name not in static]
        states = {node.name: _State(node, n) for node in dynamic if node.op == "sd"}
        sent = {name: np.zeros(n, np.int64) for name in sd}
        active = np.zeros(n, bool)  # sent anything at this step
        k, out = 0, None
        for t in range(1, ts[-1] + 1):
            env = dict(env0)
            active[:] = False
            for node in dynamic:
                inputs = [env[i] for i in node.inputs]
                if node.op == "sd":
                    count = states[node.name].step(node, inputs[0])
                    sent[node.name] += count
                    active |= count > 0
                    env[node.name] = states[node.name].recon
                else:
                    env[node.name] = opdef(node.op).evaluate(node, inputs)
            out = env[graph.output]
            last[rows] = np.where(active, t, last[rows])
            if t > 1 and not active.any():  # a fixed point: every later step repeats this one
                break
            while k < len(ts) and ts[k] == t:
                outputs[k, rows] = out
                for name in sd:
                    messages[name][k, rows] = sent[name]
                k += 1
        for j in range(k, len(ts)):  # settled: the same output and no new messages
            outputs[j, rows] = out
            for name in sd:
                messages[name][j, rows] = sent[name]

    slices = [slice(s, s + chunk) for s in range(0, len(x), chunk)]
    for rows, _ in zip(slices, parallel_map(run, slices), strict=True):
        if progress is not None:
            progress(len(x[rows]))
    return outputs, messages, last
