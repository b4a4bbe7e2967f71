"""The NIR backend: export a converted network as a NIR graph file."""

from .export import to_nir, write_nir

__all__ = ["to_nir", "write_nir"]
