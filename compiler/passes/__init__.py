"""Compiler passes: each a pure function of a graph, in a module of its own."""

from ..loihi.lower_synapses import lower_synapses
from ..loihi.quantize_weights import quantize_weights
from .convert import convert
from .fold_batchnorm import fold_batchnorm
from .manager import DEFAULT_PIPELINE, PASSES, DumpSpec, PassOptions, run_pipeline
from .normalize_thresholds import NormSpec, normalize_thresholds
from .shift_bias import shift_bias

__all__ = [
    "DEFAULT_PIPELINE", "PASSES", "DumpSpec", "NormSpec", "PassOptions", "convert",
    "fold_batchnorm", "normalize_thresholds", "run_pipeline", "shift_bias",
    "lower_synapses", "quantize_weights",
]
