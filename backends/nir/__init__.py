"""The NIR backend: export a converted network as a NIR graph file."""

from .export import nir_notes, to_nir, write_nir

__all__ = ["nir_notes", "to_nir", "write_nir"]
