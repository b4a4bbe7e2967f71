"""Everything Loihi-specific in the compiler, written once and shared by the NumPy bit-exact
mode, the Lava backend and the netx exporter:

    linear_maps.py      convolution windows and matrices between populations, and how they
                        compose (the one window implementation)
    op_maps.py          how each linear IR op transforms those maps
    lower_synapses.py   pass: linear ops between populations -> conv / dense / sparse synapses
    populations.py      the population view of a lowered graph (synapses, delays, depths)
    formats.py          Loihi 2 number formats (weights, thresholds, biases, state)
    quantize_weights.py pass: those formats for every population
    synapses.py         per-synapse questions: matrix, counts, per-neuron sums
    map_cores.py        pass: neurocores and chips under per-core limits
    feasibility.py      the cheap check, right after import, that the network can be lowered

Import order (no cycles): stages, linear_maps -> op_maps -> lower_synapses;
formats -> populations -> synapses -> quantize_weights, map_cores.
"""
