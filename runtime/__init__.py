"""snnc.runtime: load, run and evaluate a compiled network."""

from .data import load_data
from .network import CompiledNetwork, RunResult, load

__all__ = ["CompiledNetwork", "RunResult", "load", "load_data"]
