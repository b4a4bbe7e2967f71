"""ONNX op handlers. Importing this package registers all of them in HANDLERS."""

from . import activation, arith, conv, layout, linear, norm, pool, shape, slicing  # noqa: F401
from .registry import HANDLERS

__all__ = ["HANDLERS"]
