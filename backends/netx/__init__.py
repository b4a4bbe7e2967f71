"""The netx backend: export a converted network as lava-dl netx HDF5 (a `.net` file): CUBA
(IF / LIF) layers, or SDNN layers for sigma-delta networks (sdnn.py)."""

from .export import NetxNetwork, input_bias, to_netx
from .sdnn import input_messages, to_sdnn
from .writer import write_netx

__all__ = ["NetxNetwork", "input_bias", "input_messages", "to_netx", "to_sdnn", "write_netx"]
