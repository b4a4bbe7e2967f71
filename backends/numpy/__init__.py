"""The NumPy backend: a reference spiking simulator of the converted IR."""

from .simulator import SimulationResult, simulate

__all__ = ["SimulationResult", "simulate"]
