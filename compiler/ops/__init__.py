"""IR op definitions. Importing this package registers every op."""

from . import (  # noqa: F401
    activation,
    conv,
    conv_transpose,
    elementwise,
    layout,
    linear,
    neuron,
    pooling,
    quant,
    resize,
    sigma_delta,
    sparse,
)
from .registry import OPS, OpDef, opdef

__all__ = ["OPS", "OpDef", "opdef"]
