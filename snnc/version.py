"""snnc's version, in a module that imports nothing (backends write it into their files)."""

__version__ = "0.1.0"
