"""snnc: compile trained ONNX CNNs into spiking neural networks.

    import snnc
    net = snnc.compile("model.onnx", calib="calib.npz", timesteps=32)
    result = net.run(x, timesteps=32)
    net.save("model.snn")
    net = snnc.load("model.snn")
"""

__version__ = "0.1.0"

from snnc.api import compile, load, load_nir  # noqa: E402,A004

__all__ = ["__version__", "compile", "load", "load_nir"]
