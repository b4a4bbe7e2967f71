"""snnc.frontends: importers that turn model files into snnc IR."""
