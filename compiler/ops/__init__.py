"""IR op definitions. Importing this package registers every op."""

from . import activation, conv, elementwise, layout, linear, neuron, pooling  # noqa: F401
from .registry import OPS, OpDef, opdef

__all__ = ["OPS", "OpDef", "opdef"]
