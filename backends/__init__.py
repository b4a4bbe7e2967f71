"""snnc.backends: consumers of the final (spiking) IR. Backends never import each other."""
