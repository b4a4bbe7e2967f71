"""SpikingJelly's simulation of an SNN that snnc converted: the peer in benchmarks/sim_speed.py.

Runs in benchmarks/peers/.venv (torch + SpikingJelly, see benchmarks/peers/setup_env.sh), never
in snnc's venv; sim_speed.py calls it as a subprocess with the network exported to an .npz:

    benchmarks/peers/.venv/bin/python benchmarks/sim_speed_sj.py NET.npz X.npy --timesteps 32

Each IF neuron becomes what SpikingJelly's ann2snn converter makes of a ReLU with threshold θ:
VoltageScaler(1/θ) -> IFNode(v_threshold=1, v_reset=None) -> VoltageScaler(θ), with the membrane
starting at v0/θ; convs, pools and linear layers are torch's, evaluated every step in
single-step mode (SpikingJelly's ann2snn usage: `for t in range(T): out += net(x)`). Max
pooling follows snnc's definition (the increase of the max of cumulative inputs), so both tools
simulate the same network. Prints one JSON line: microseconds per sample per step (wall
clock and CPU time of the process) and the decoded outputs.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import ann2snn, functional, neuron
from torch import nn


class SpikingLayer(nn.Module):
    def __init__(self, theta: np.ndarray, v0: np.ndarray) -> None:
        super().__init__()
        theta = np.asarray(theta, np.float32)
        scale = float(theta) if theta.size == 1 else torch.from_numpy(theta)  # per channel
        self.down = ann2snn.modules.VoltageScaler(1.0 / scale)
        self.node = neuron.IFNode(v_threshold=1.0, v_reset=None)
        self.up = ann2snn.modules.VoltageScaler(scale)
        self.v0 = torch.from_numpy(np.asarray(v0, np.float32) / theta)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not isinstance(self.node.v, torch.Tensor):  # first step after reset_net
            self.node.v = self.v0.expand_as(z).clone()
        return self.up(self.node(self.down(z)))


class Net(nn.Module):
    """An interpreter over snnc's exported node list (name, op, inputs, attrs)."""

    def __init__(self, nodes: list[dict], params: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.nodes = nodes
        self.p = {k: torch.from_numpy(v) for k, v in params.items()}
        self.neurons = nn.ModuleDict({n["name"]: SpikingLayer(params[n["name"] + ".theta"],
                                                              params[n["name"] + ".v0"])
                                      for n in nodes if n["op"] == "if"})
        self.cum: dict[str, torch.Tensor] = {}
        self.pooled: dict[str, torch.Tensor] = {}

    def restart(self) -> None:
        functional.reset_net(self)
        self.cum, self.pooled = {}, {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env = {self.nodes[0]["name"]: x}
        for n in self.nodes[1:]:
            env[n["name"]] = self._op(n, [env[i] for i in n["inputs"]])
        return env[self.nodes[-1]["name"]]

    def _op(self, n: dict, xs: list[torch.Tensor]) -> torch.Tensor:
        op, a, name = n["op"], n["attrs"], n["name"]
        if op == "if":
            z = xs[0] + self.p[name + ".i_shift"] if name + ".i_shift" in self.p else xs[0]
            return self.neurons[name](z)
        if op == "conv":
            pads = a["pads"]
            return F.conv2d(F.pad(xs[0], [pads[1], pads[3], pads[0], pads[2]]),
                            self.p[name + ".weight"], self.p[name + ".bias"], a["strides"], 0,
                            a["dilations"], a["groups"])
        if op == "linear":
            return F.linear(xs[0], self.p[name + ".weight"], self.p[name + ".bias"])
        if op == "avgpool":
            return F.avg_pool2d(xs[0], a["kernel"], a["strides"], a["pads"][:2],
                                bool(a["ceil_mode"]), bool(a["count_include_pad"]))
        if op == "global_avgpool":
            return xs[0].mean(dim=(2, 3), keepdim=True)
        if op == "maxpool":
            cum = xs[0] + self.cum[name] if name in self.cum else xs[0].clone()
            self.cum[name] = cum
            pooled = F.max_pool2d(cum, a["kernel"], a["strides"], a["pads"][:2],
                                  a["dilations"], bool(a["ceil_mode"]))
            out = pooled - self.pooled[name] if name in self.pooled else pooled
            self.pooled[name] = pooled
            return out
        if op == "add":
            return sum(xs[1:], xs[0])
        if op == "flatten":
            return xs[0].flatten(1)
        if op == "reshape":
            return xs[0].reshape(len(xs[0]), *a["shape"])
        raise NotImplementedError(f"sim_speed_sj.py has no translation for IR op '{op}'")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("net")
    p.add_argument("x")
    p.add_argument("--timesteps", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with np.load(args.net, allow_pickle=False) as f:
        nodes = json.loads(str(f["graph"]))
        params = {k: f[k] for k in f.files if k != "graph"}
    net = Net(nodes, params).eval()
    x = torch.from_numpy(np.load(args.x))
    walls, cpus, acc = [], [], torch.zeros(0)
    with torch.no_grad():
        for _ in range(args.repeats):
            net.restart()
            t0, c0 = time.perf_counter(), time.process_time()
            acc = torch.zeros(0)
            for _ in range(args.timesteps):
                out = net(x)
                acc = out.clone() if acc.numel() == 0 else acc + out
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    per = 1e6 / (len(x) * args.timesteps)
    print(json.dumps({"wall": per * float(np.median(walls)), "cpu": per * float(np.median(cpus)),
                      "outputs": (acc / args.timesteps).tolist()}))


if __name__ == "__main__":
    main()
