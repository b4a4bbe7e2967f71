"""The writers of compiled networks that compiler/targets.py names: (net, path) -> notes on
what the written file cannot express (none for snnc's own .snn artifact). The exporters are
imported only when one is used."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the network writes itself through this module: no import at run time
    from .network import CompiledNetwork


def write_artifact(net: CompiledNetwork, path: str | os.PathLike[str]) -> list[str]:
    net.save(path)
    return []


def write_nir(net: CompiledNetwork, path: str | os.PathLike[str]) -> list[str]:
    from snnc.backends.nir import write_nir

    return write_nir(net.graph, path)


def write_netx(net: CompiledNetwork, path: str | os.PathLike[str]) -> list[str]:
    from snnc.backends.netx import write_netx

    return write_netx(net.graph, path)
