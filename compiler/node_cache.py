"""Per-node results that make repeated evaluation of the same node cheaper, kept beside the
op definitions rather than in them (like compiler/parallel.py): the simulator evaluates every
node of a network once per time step, the executor once per batch.

`second_call(node, build)`: None on the node's first call (one evaluation never repays the
work), build() from the second call on, made once and kept while the node lives.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np

from .ir.graph import Node

# node -> None after its first call, then what build() made
_cache: weakref.WeakKeyDictionary[Node, np.ndarray | None] = weakref.WeakKeyDictionary()


def second_call(node: Node, build: Callable[[], np.ndarray]) -> np.ndarray | None:
    if node not in _cache:
        _cache[node] = None
        return None
    if _cache[node] is None:
        _cache[node] = build()
    return _cache[node]
