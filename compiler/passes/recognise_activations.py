"""recognise-activations: chains of elementwise ops that together form a clipped (and possibly
quantized) activation become one `qclip` node.

Exporters write a QCFS activation (Bu et al., ICLR 2022) as e.g.
Div(l) -> Mul(L) -> Add(0.5) -> Floor -> Div(L) -> Clip(0, 1) -> Mul(l), a clipped ReLU as
Relu -> Min(a) or Relu -> Sub(a, .) -> Relu -> Sub(a, .), in several orders and with constants
merged by simplifiers. Rather than listing patterns, this pass takes every maximal chain of
single-input elementwise ops (affine, relu, clip, bound, round) with one consumer between links,
evaluates it numerically per channel, and reads the activation off its graph:

    chain(z) == theta * clip(floor((g*z + b) * L / theta + phi) / L, 0, 1)     (staircase)
    chain(z) == clip(g*z + b, 0, theta)                                        (no rounding)

theta from the upper plateau, L from the number of steps, g from their spacing, phi from where
the first step sits. The chain is replaced only if the fitted form reproduces it on a dense probe;
otherwise the chain stays and its rounding op records why (convert reports it).

Before:  %div1 = affine[scale=0.25](%conv1); %mul1 = affine[scale=4](%div1); ...;
         %floor1 = round[mode=floor](%add1); ...; %mul3 = affine[scale=4](%clip1)
After:   %mul3 : f32[16,8,8] = qclip[theta=4, levels=4, phi=0.5](%conv1)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..contracts import contract
from ..ir.graph import Graph, Node, unique_name
from ..ops.elementwise import channel_view
from ..ops.quant import ROUNDING, qclip
from .rewrite import along_axis, rebuild

NAME = "recognise-activations"
CONTRACT = contract()  # any graph (a spiking one has no chains left)
CHAINABLE = ("affine", "relu", "clip", "bound", "round")
NONLINEAR = ("relu", "clip", "bound", "round")
PROBE = 8192  # grid points per channel
MAX_LEVELS = 4096
RTOL = 1e-5  # of theta: how exactly the fitted form must reproduce the chain
FAR = 1e9  # where the plateaus are read


class NotAnActivation(Exception):
    """The chain is not a clipped/quantized activation; the message says why."""


@dataclass(frozen=True)
class Fit:
    theta: np.ndarray  # (C,)
    levels: int
    gain: np.ndarray  # (C,)
    offset: np.ndarray  # (C,)
    phi: np.ndarray  # (C,)


def _chainable(node: Node) -> bool:
    return node.op in CHAINABLE and len(node.inputs) == 1


def _chains(graph: Graph) -> list[list[Node]]:
    """Maximal runs of chainable nodes, each link read only by the next."""
    seen: set[str] = set()
    chains = []
    for node in graph.nodes:
        if node.name in seen or not _chainable(node):
            continue
        chain = [node]
        up = graph.node(node.inputs[0])
        while _chainable(up) and up.name not in seen and _sole_reader(graph, up, chain[0]):
            chain.insert(0, up)
            up = graph.node(up.inputs[0])
        while chain[-1].name != graph.output:
            readers = graph.consumers(chain[-1].name)
            if len(readers) != 1 or not _chainable(readers[0]):
                break
            chain.append(readers[0])
        seen.update(n.name for n in chain)
        chains.append(chain)
    return chains


def _sole_reader(graph: Graph, producer: Node, reader: Node) -> bool:
    return producer.name != graph.output and [n.name for n in graph.consumers(producer.name)] \
        == [reader.name]


def _per_channel(node: Node, value: np.ndarray, channels: int) -> np.ndarray:
    """A parameter as a (C,) vector, or NotAnActivation if it varies within a channel."""
    value = np.asarray(value, np.float64)
    if value.size == 1:
        return np.full(channels, float(value.reshape(-1)[0]))
    shape = node.shape
    vector = along_axis(value, shape, 0) if len(shape) else None
    if vector is None:
        raise NotAnActivation(f"{node.origin} has a constant that varies within a channel")
    return vector.astype(np.float64)


Step = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]


def _affine(s: np.ndarray, t: np.ndarray) -> Step:
    def step(z: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        y = np.multiply(z, s, out=out)
        return np.add(y, t, out=y)

    return step


def _key(v: object) -> object:
    return None if v is None else (np.shape(v), np.asarray(v, np.float64).tobytes())


def _chain_steps(chain: list[Node], channels: int) -> tuple[list[Step], tuple]:
    """The chain's steps, and a key equal for chains that compute the same function."""
    steps: list[Step] = []
    key: list[object] = [channels]
    for node in chain:
        if node.op == "affine":
            scale = _per_channel(node, node.params["scale"], channels)
            shift = _per_channel(node, node.params["shift"], channels)
            steps.append(_affine(scale, shift))
            key.append(("affine", scale.tobytes(), shift.tobytes()))
        elif node.op == "relu":
            steps.append(lambda z, out: np.maximum(z, 0.0, out=out))
            key.append(("relu",))
        elif node.op == "clip":
            lo, hi = node.attrs.get("min"), node.attrs.get("max")
            steps.append(lambda z, out, lo=lo, hi=hi: np.clip(z, lo, hi, out=out))
            key.append(("clip", _key(lo), _key(hi)))
        elif node.op == "bound":
            lo = _per_channel(node, node.params["lo"], channels)
            hi = _per_channel(node, node.params["hi"], channels)
            steps.append(lambda z, out, lo=lo, hi=hi: np.clip(z, lo, hi, out=out))
            key.append(("bound", lo.tobytes(), hi.tobytes()))
        else:
            rounding = ROUNDING[node.attrs["mode"]]
            steps.append(lambda z, out, r=rounding: r(z, out=out))
            key.append(("round", node.attrs["mode"]))
    return steps, tuple(key)


def _function(steps: list[Step]) -> Callable[[np.ndarray], np.ndarray]:
    def f(z: np.ndarray) -> np.ndarray:
        # the first step makes a new array, the others overwrite it (the probes are large;
        # the same values as fresh arrays); the caller's z is never written
        out = None
        for step in steps:
            z = out = step(z, out)
        return z

    return f


def chain_function(chain: list[Node], channels: int) -> Callable[[np.ndarray], np.ndarray]:
    """The chain as a function of z, a float64 array with shape (..., C)."""
    return _function(_chain_steps(chain, channels)[0])


def _span(f: Callable[[np.ndarray], np.ndarray], channels: int) -> float:
    """A half-width s such that the chain has reached its plateaus beyond +-s in every
    channel. The plateaus are read far out first: a staircase is flat between its steps, so
    two nearby equal values prove nothing."""
    far = np.array([[-FAR] * channels, [-FAR / 10] * channels, [FAR / 10] * channels,
                    [FAR] * channels])
    ends = f(far)
    if not np.array_equal(ends[2], ends[3]):
        raise NotAnActivation("its output is not bounded above, so it has no firing threshold")
    if not np.array_equal(ends[0], ends[1]):
        raise NotAnActivation("its output is not bounded below")
    s = 1e-3
    while s < FAR:
        edge = f(np.array([[-s] * channels, [s] * channels]))
        if np.array_equal(edge[0], ends[0]) and np.array_equal(edge[1], ends[3]):
            return s * 1.25  # a margin so that the grid sees the plateau on both sides
        s *= 2
    raise NotAnActivation("it reaches its plateaus only beyond 1e9")


def fit_chain(f: Callable[[np.ndarray], np.ndarray], channels: int) -> Fit:
    fit, s, grid = _fit(f, channels)
    _verify(f, fit, s, grid)
    return fit


def _fit(f: Callable[[np.ndarray], np.ndarray], channels: int
         ) -> tuple[Fit, float, tuple[np.ndarray, np.ndarray]]:
    s = _span(f, channels)
    z = np.linspace(-s, s, PROBE)[:, None].repeat(channels, axis=1)
    y = f(z)
    scale = np.abs(y).max()
    if np.any(np.diff(y, axis=0) < -1e-9 * scale):
        raise NotAnActivation("it is not monotonically increasing")
    low, theta = y[0], y[-1]
    if np.any(np.abs(low) > 1e-6 * np.maximum(np.abs(theta), 1e-30)):
        raise NotAnActivation(f"its lowest output is {float(low.min()):.4g}, not 0, so a "
                              "spiking neuron (rate >= 0) cannot represent it")
    if np.any(theta <= 0):
        raise NotAnActivation("it is 0 everywhere in some channel")
    if _is_ramp(y, theta):
        fit = _fit_ramp(z, y, theta)
    else:
        fit = _fit_staircase(f, z, y, theta, s)
    return fit, s, (z, y)


def _is_ramp(y: np.ndarray, theta: np.ndarray) -> bool:
    """Does the output rise continuously (most neighbouring probe points differ where it is
    between 0 and theta), rather than in steps?"""
    rising = (y[1:] > 0) & (y[:-1] < theta) & (y[1:] < theta)
    moving = (np.diff(y, axis=0) > 0) & rising
    share = moving.sum(axis=0) / np.maximum(rising.sum(axis=0), 1)
    return bool(np.all(share > 0.5))


def _fit_staircase(f: Callable[[np.ndarray], np.ndarray], z: np.ndarray, y: np.ndarray,
                   theta: np.ndarray, s: float) -> Fit:
    channels = y.shape[1]
    counts = {len(np.unique(y[:, c])) for c in range(channels)}
    if len(counts) != 1:
        raise NotAnActivation(f"its channels have different numbers of levels {sorted(counts)}")
    levels = counts.pop() - 1
    if levels > MAX_LEVELS:
        raise NotAnActivation(f"it has {levels} levels; at most {MAX_LEVELS} are supported")
    k = np.arange(1, levels + 1, dtype=np.float64)[:, None]  # (L, 1)
    # the location of each step: bisect for where the output passes the middle of the step
    target = (k - 0.5) * theta / levels
    lo = np.full((levels, channels), -s)
    hi = np.full((levels, channels), s)
    for _ in range(64):
        mid = (lo + hi) / 2
        above = f(mid) >= target
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    jumps = hi
    if levels > 1:
        spacing = (jumps[-1] - jumps[0]) / (levels - 1)
        if np.any(spacing <= 0) or np.any(
                np.abs(jumps - (jumps[0] + (k - 1) * spacing)) > 1e-4 * spacing):
            raise NotAnActivation("its steps are not evenly spaced")
        gain = theta / (levels * spacing)
    else:
        gain = np.ones(channels)
    # jump k sits where (gain*z + offset) * L / theta + phi = k; keep phi in [0, 1)
    phi = 1.0 - gain * jumps[0] * levels / theta
    whole = np.floor(phi)
    phi = phi - whole
    offset = whole * theta / levels
    return Fit(theta, levels, gain, offset, phi)


def _fit_ramp(z: np.ndarray, y: np.ndarray, theta: np.ndarray) -> Fit:
    channels = y.shape[1]
    gain, offset = np.empty(channels), np.empty(channels)
    for c in range(channels):
        inside = (y[:, c] > 1e-3 * theta[c]) & (y[:, c] < (1 - 1e-3) * theta[c])
        if inside.sum() < 2:
            raise NotAnActivation("its rising part is too steep to read a slope from")
        gain[c], offset[c] = np.polyfit(z[inside, c], y[inside, c], 1)
    if np.any(gain <= 0):
        raise NotAnActivation("it does not increase with its input")
    return Fit(theta, 0, gain, offset, np.zeros(channels))


def fitted(fit: Fit, z: np.ndarray) -> np.ndarray:
    """The qclip node the fit becomes, applied after the fit's affine input."""
    return qclip(z * fit.gain + fit.offset, fit.theta, fit.levels, fit.phi)


def _verify(f: Callable[[np.ndarray], np.ndarray], fit: Fit, s: float,
            grid: tuple[np.ndarray, np.ndarray]) -> None:
    """The fit against the chain on the probe grid (`grid`: z and f(z), as the fit read them)
    and on as many uniformly random points; each half separately, the same worst error."""
    rng = np.random.default_rng(0)
    channels = len(fit.theta)
    z = rng.uniform(-s, s, (PROBE, channels))
    worst = float(np.max([_worst(fit, *grid), _worst(fit, z, f(z))]))  # NaN stays NaN
    if worst > RTOL:
        raise NotAnActivation(f"the closest clip/staircase differs from it by {worst:.2g} of "
                              "its threshold")


def _worst(fit: Fit, z: np.ndarray, y: np.ndarray) -> float:
    """max |y - fitted(fit, z)| / theta, in place on large temporaries."""
    if fit.levels == 0:
        err = fitted(fit, z)
    else:
        # qclip inlined, to reuse a (the step coordinate) for the points to skip
        a = np.multiply(z, fit.gain)
        a += fit.offset
        a *= fit.levels
        a /= fit.theta
        a += fit.phi
        err = np.clip(np.floor(a), 0, fit.levels)
        err *= fit.theta
        err /= fit.levels
    err -= y
    np.abs(err, out=err)
    if fit.levels:  # right at a step, float rounding may land either side: skip those points
        near = np.round(a)
        near -= a
        np.abs(near, out=near)
        err[near < 1e-6 * max(fit.levels, 1)] = 0.0
    err /= fit.theta
    return float(err.max())


def _as_param(v: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if np.all(v == v[0]):
        return np.array(v[0], np.float32)
    return channel_view(v.astype(np.float32), len(shape))


def _replacement(graph_names: set[str], chain: list[Node], fit: Fit) -> list[Node]:
    last, first = chain[-1], chain[0]
    shape = last.shape
    source = next((n.source for n in chain if n.op in NONLINEAR), last.source)
    names = [n.source[0] for n in chain if n.source is not None]
    meta = {"recognised_from": list(dict.fromkeys(names)), "theta_from": "trained activation"}
    nodes = []
    x = first.inputs[0]
    if not (np.allclose(fit.gain, 1, rtol=1e-6) and np.allclose(fit.offset, 0, atol=1e-12)):
        gain = Node(unique_name(graph_names, f"{last.name}_gain"), "affine", (x,),
                    params={"scale": _as_param(fit.gain, shape),
                            "shift": _as_param(fit.offset, shape)},
                    shape=shape, source=source)
        nodes.append(gain)
        x = gain.name
    nodes.append(Node(last.name, "qclip", (x,), attrs={"levels": int(fit.levels)},
                      params={"theta": _as_param(fit.theta, shape),
                              "phi": _as_param(fit.phi, shape)},
                      shape=shape, source=source, meta=meta))
    return nodes


_FITS: dict[tuple, Fit | str] = {}  # chain key -> its fit, or why it is not an activation
_FITS_MAX = 512
_FITS_LOCK = threading.Lock()


def _frozen(fit: Fit) -> Fit:
    """A cacheable copy: small read-only arrays (theta is a view of the whole probe)."""
    def own(v: np.ndarray) -> np.ndarray:
        v = np.array(v)
        v.setflags(write=False)
        return v

    return Fit(own(fit.theta), fit.levels, own(fit.gain), own(fit.offset), own(fit.phi))


def _fit_of(chain: list[Node], channels: int) -> Fit:
    """fit_chain of the chain's function, remembered per function: a compile meets the same
    chains several times (the trained-activation check, the pipeline, feasibility, tuning)."""
    steps, key = _chain_steps(chain, channels)
    with _FITS_LOCK:
        known = _FITS.get(key)
    if known is None:
        try:
            known = _frozen(fit_chain(_function(steps), channels))
        except NotAnActivation as why:
            known = str(why)
        with _FITS_LOCK:
            if len(_FITS) >= _FITS_MAX:
                _FITS.pop(next(iter(_FITS)))
            _FITS[key] = known
    if isinstance(known, str):
        raise NotAnActivation(known)
    return known


def _is_activation_chain(chain: list[Node]) -> bool:
    nonlinear = [n for n in chain if n.op in NONLINEAR]
    # a lone ReLU or Clip is already an activation that the later passes understand
    return bool(nonlinear) and (len(chain) > 1 or chain[0].op in ("round", "bound"))


def recognise_activations(graph: Graph) -> Graph:
    replaced: dict[str, list[Node]] = {}
    refused: dict[str, str] = {}
    names = {n.name for n in graph.nodes}
    for chain in _chains(graph):
        if not _is_activation_chain(chain):
            continue
        channels = chain[-1].shape[0] if chain[-1].shape else 1
        try:
            fit = _fit_of(chain, channels)
        except NotAnActivation as why:
            for node in chain:
                if node.op in ("round", "bound"):
                    refused[node.name] = str(why)
            continue
        new = _replacement(names, chain, fit)
        names.update(n.name for n in new)
        replaced[chain[-1].name] = new
        for node in chain[:-1]:
            replaced[node.name] = []
    nodes = []
    for node in graph.nodes:
        if node.name in replaced:
            nodes.extend(replaced[node.name])
        elif node.name in refused:
            nodes.append(node.replace(meta={**node.meta, "unrecognised": refused[node.name]}))
        else:
            nodes.append(node)
    return rebuild(graph, nodes, {})
