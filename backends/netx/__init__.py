"""The netx backend: export a converted network as lava-dl netx HDF5 (a `.net` file): CUBA
(IF / LIF) layers, or SDNN layers for sigma-delta networks (sdnn.py); read one back
(reader.py) and run an SDNN file as lava-dl's reader and Lava's fixed_pt do (fixed_point.py)."""

from .export import NetxNetwork, input_bias, to_netx
from .fixed_point import simulate_sdnn
from .reader import read_netx
from .sdnn import input_messages, to_sdnn
from .writer import write_netx

__all__ = ["NetxNetwork", "input_bias", "input_messages", "read_netx", "simulate_sdnn",
           "to_netx", "to_sdnn", "write_netx"]
