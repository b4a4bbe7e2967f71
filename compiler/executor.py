"""The reference ANN executor: the interpreter pattern (torch.fx Interpreter, jax eval_jaxpr).

A loop over nodes in order, an environment of values by name, one kernel per op. It is the
ground truth for calibration and tests; `run_all` returns every intermediate value, which makes
layer-by-layer ANN-vs-SNN comparison a one-liner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from .errors import DataError, InternalError, SnncError
from .ir.graph import Graph, Node
from .ir.printer import context
from .ops import opdef


class ExecutionError(InternalError):
    """A kernel failed while executing a node."""


def check_input(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The batch as float32 (N, *input shape), or a DataError saying what was expected."""
    expected = tuple(graph.input.shape)
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise DataError(f"input data has dtype {x.dtype}; expected numbers (float32)")
    if tuple(x.shape[1:]) != expected:
        if tuple(x.shape) == expected:
            x = x[None]
        else:
            raise DataError(
                f"input data has shape {list(x.shape)}; the model expects "
                f"[N, {', '.join(map(str, expected))}]"
            )
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise DataError("input data contains NaN or Inf")
    return x


def run_all(graph: Graph, x: np.ndarray, keep: Callable[[str], bool] | None = None,
            observe: Callable[[str, np.ndarray], None] | None = None
            ) -> dict[str, np.ndarray]:
    """Every node's value (or those `keep` accepts, plus the output) for a batch `x`.
    `observe(name, value)` sees each value as it is made, before it can be freed, so that
    statistics can stream without keeping every activation alive."""
    x = check_input(graph, x)
    env: dict[str, np.ndarray] = {graph.input.name: x}
    remaining = _last_uses(graph)
    kept: dict[str, np.ndarray] = {}
    for k, node in enumerate(graph.nodes[1:], start=1):
        definition = opdef(node.op)
        evaluate = definition.evaluate
        if definition.inplace is not None and _can_overwrite(node, k, remaining, env, kept,
                                                             graph):
            evaluate = definition.inplace
        try:
            value = evaluate(node, [env[i] for i in node.inputs])
        except SnncError:
            raise
        except Exception as exc:  # a kernel bug or an unexpected input: say where
            raise ExecutionError(
                f"while executing %{node.name} ({node.origin}): {type(exc).__name__}: {exc}\n"
                + context(graph, node.name)
            ) from exc
        env[node.name] = value
        if observe is not None:
            observe(node.name, value)
        if keep is None or keep(node.name) or node.name == graph.output:
            kept[node.name] = value
        for name in remaining.pop(k, ()):  # free values no later node reads
            if name != graph.output:
                env.pop(name, None)
    if keep is None or keep(graph.input.name) or graph.output == graph.input.name:
        kept[graph.input.name] = x
    return kept


def evaluate_nodes(nodes: Iterable[Node], env: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each node's value added to `env` (which holds their inputs), in order: the loop of
    run_all without its memory management, for a cone of a graph (lower-synapses) or the
    static prefix of a network (the sigma-delta simulator)."""
    for node in nodes:
        env[node.name] = opdef(node.op).evaluate(node, [env[i] for i in node.inputs])
    return env


def run(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The graph's output for a batch `x`."""
    return run_all(graph, x, keep=lambda name: False)[graph.output]


def run_batched(graph: Graph, x: np.ndarray, batch_size: int = 256,
                keep: Callable[[str], bool] | None = None,
                observe: Callable[[str, np.ndarray], None] | None = None
                ) -> Iterator[dict[str, np.ndarray]]:
    """`run_all` over slices of `x`, so memory stays bounded for large data."""
    for start in range(0, len(x), batch_size):
        yield run_all(graph, x[start:start + batch_size], keep, observe)


def _can_overwrite(node: Node, k: int, last_uses: dict[int, list[str]],
                   env: dict[str, np.ndarray], kept: dict[str, np.ndarray],
                   graph: Graph) -> bool:
    """May node k write its result into its first input's array? Only if nothing reads or
    returns that array afterwards, it is not the caller's input, and no other live value
    is a view of the same memory (reshape and flatten return views)."""
    first = node.inputs[0]
    if (first not in last_uses.get(k, ()) or first in kept or first == graph.input.name
            or node.inputs.count(first) != 1):
        return False
    target = env[first]
    others = [v for name, v in env.items() if name != first] + list(kept.values())
    return not any(np.may_share_memory(target, v) for v in others)


def _last_uses(graph: Graph) -> dict[int, list[str]]:
    """For each node index, the values whose last reader it is."""
    last: dict[str, int] = {}
    for k, node in enumerate(graph.nodes):
        for i in node.inputs:
            last[i] = k
    out: dict[int, list[str]] = {}
    for name, k in last.items():
        out.setdefault(k, []).append(name)
    return out
