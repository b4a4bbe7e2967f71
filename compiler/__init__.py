"""snnc.compiler: the graph IR, its reference executor, and the conversion passes."""
