"""The graph-level markers the Loihi passes leave in `graph.meta`, in one place."""

SYNAPSES_STRUCTURED = "structured"  # meta['synapses'] after lower-synapses
QUANTIZED = "loihi2"  # meta['quantized'] after quantize-weights
