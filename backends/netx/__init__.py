"""The netx backend: export a converted network as lava-dl netx HDF5 (a `.net` file)."""

from .export import NetxNetwork, input_bias, to_netx, write_netx

__all__ = ["NetxNetwork", "input_bias", "to_netx", "write_netx"]
