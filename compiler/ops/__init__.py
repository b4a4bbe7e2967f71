"""IR op definitions. Importing this package registers every op."""

from . import (  # noqa: F401
    activation,
    conv,
    elementwise,
    layout,
    linear,
    neuron,
    pooling,
    quant,
    sparse,
)
from .registry import OPS, OpDef, opdef

__all__ = ["OPS", "OpDef", "opdef"]
