"""What a pass requires of the graph it is given and what it leaves in it, as named facts read
off graph.meta (so they hold as well for a graph loaded from an artifact or imported from NIR).

Every pass module declares a CONTRACT next to its NAME; the pass manager checks a whole
pipeline before running its first pass (`check`: a pass out of order is one PassError naming
the pass and the missing fact, before any tuning), and after each pass that it left the facts
it declares. Passes called directly check their own preconditions with `require`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import PassError
from .ir.graph import Graph
from .loihi.stages import QUANTIZED as _QUANTIZED_MARK
from .loihi.stages import SYNAPSES_STRUCTURED

CONVERTED = "converted"  # meta['stage'] == 'snn': spiking neurons, no ANN activations left
SYNAPSES = "synapses"  # meta['synapses']: lower-synapses made the synapse layers
QUANTIZED_WEIGHTS = "quantized"  # meta['quantized']: quantize-weights chose Loihi 2 number formats

# what each fact says, and the pass that makes it (for the messages)
FACTS: dict[str, tuple[str, str]] = {
    CONVERTED: ("the spiking network", "convert"),
    SYNAPSES: ("synapse layers", "lower-synapses (--target lava or loihi)"),
    QUANTIZED_WEIGHTS: ("Loihi 2 number formats", "quantize-weights (--target loihi)"),
}


@dataclass(frozen=True)
class Contract:
    requires: frozenset[str] = frozenset()  # facts that must hold before the pass
    forbids: frozenset[str] = frozenset()  # facts that must not hold yet (it runs before)
    produces: frozenset[str] = frozenset()  # facts that hold after it
    hint: str = ""  # why, added to the message when the pass is out of order

    def __post_init__(self) -> None:
        unknown = (self.requires | self.forbids | self.produces) - set(FACTS)
        if unknown:
            raise ValueError(f"unknown fact(s) {sorted(unknown)}; known: {', '.join(FACTS)}")


def contract(requires: Iterable[str] = (), forbids: Iterable[str] = (),
             produces: Iterable[str] = (), hint: str = "") -> Contract:
    return Contract(frozenset(requires), frozenset(forbids), frozenset(produces), hint)


def facts(graph: Graph) -> frozenset[str]:
    """The facts that hold of `graph`."""
    meta = graph.meta
    found = {CONVERTED} if meta.get("stage") == "snn" else set()
    if meta.get("synapses") == SYNAPSES_STRUCTURED:
        found.add(SYNAPSES)
    if meta.get("quantized") == _QUANTIZED_MARK:
        found.add(QUANTIZED_WEIGHTS)
    return frozenset(found)


def violation(name: str, rules: Contract, have: frozenset[str]) -> PassError | None:
    """The PassError for running pass `name` on a graph of which `have` holds, or None."""
    why = f" ({rules.hint})" if rules.hint else ""
    missing = sorted(rules.requires - have)
    if missing:
        what, maker = FACTS[missing[0]]
        return PassError(f"pass '{name}' runs on {what}; run {maker} before {name}{why}",
                         pass_name=name, missing=missing[0])
    early = sorted(rules.forbids & have)
    if early:
        maker = FACTS[early[0]][1].split()[0]
        return PassError(f"pass '{name}' runs before {maker}, and this graph has been "
                         f"through {maker}{why}", pass_name=name, missing=f"not {early[0]}")
    return None


def require(graph: Graph, name: str, rules: Contract) -> None:
    """Raise the PassError of running pass `name` on `graph`, if its contract forbids it."""
    error = violation(name, rules, facts(graph))
    if error is not None:
        raise error
