"""The NIR frontend: read a NIR graph file written by another SNN tool into snnc's IR."""

from .importer import RESETS, from_nir, read_graph

__all__ = ["RESETS", "from_nir", "read_graph"]
