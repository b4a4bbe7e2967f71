"""The cheap check, right after import, that a network can go to Lava / Loihi at all: before
tuning and calibration spend minutes, the structural passes run on placeholder thresholds (the
max of a few samples) and lower-synapses and map-cores say what they would refuse: an op
between spiking layers with no synapse form, a delay beyond Loihi's, a neuron whose fan-in no
core holds, more chips than configured. What depends on the final thresholds (the number
formats) is checked by quantize-weights in the real pipeline."""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph
from ..passes.convert import convert
from ..passes.fold_batchnorm import fold_batchnorm
from ..passes.lower_maxpool import lower_maxpool
from ..passes.normalize_thresholds import NormSpec, normalize_thresholds
from ..passes.recognise_activations import recognise_activations
from .lower_synapses import lower_synapses
from .map_cores import CoreLimits, map_cores

SAMPLES = 4


def check_feasible(graph: Graph, calib: np.ndarray | None, neuron: str,
                   limits: CoreLimits | None = None) -> Graph:
    """The mapped placeholder network (its meta['mapping'] counts cores and chips), or the
    ModelError / ResourceError that the Loihi passes would raise later."""
    if calib is not None and len(calib):
        x = np.asarray(calib[:SAMPLES], np.float32)
    else:  # structure only: any input of the right shape gives positive placeholders
        x = np.random.default_rng(0).standard_normal((SAMPLES, *graph.input.shape)) \
            .astype(np.float32)
    g = fold_batchnorm(recognise_activations(graph))
    if neuron == "sigma-delta":  # max pools become ReLU layers, as in the real pipeline
        g = lower_maxpool(g)
    g = normalize_thresholds(g, x, NormSpec("max"))
    g = convert(g, neuron)
    return map_cores(lower_synapses(g), limits)
