"""ONNX op handlers. Importing this package registers all of them in HANDLERS."""

from . import (  # noqa: F401
    activation,
    arith,
    cast,
    conv,
    layout,
    linear,
    norm,
    pool,
    resize,
    rounding,
    shape,
    slicing,
)
from .registry import HANDLERS

__all__ = ["HANDLERS"]
