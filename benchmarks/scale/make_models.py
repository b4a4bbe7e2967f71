"""ImageNet-size CNNs with random weights (benchmarks/scale/nets.py), exported to ONNX from torch
layer definitions (no torchvision, no downloads), BatchNorm kept as nodes:

* style "new": opset 17, initializers only as initializers;
* style "old": opset 9 with every initializer also listed as a graph input, as older exporters
  (and many model-zoo files) write them.

    .venv/bin/pip install torch==2.13.0        # a local CPU wheel on this machine
    .venv/bin/python benchmarks/scale/make_models.py --out /tmp/snnc-scale [--style old]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch
from nets import MODELS
from torch import nn

OPSETS = {"new": 17, "old": 9}


def export(name: str, out: Path, style: str = "new") -> Path:
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    with torch.no_grad():  # give BN non-trivial statistics so folding is exercised
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    path = out / (f"{name}.onnx" if style == "new" else f"{name}_{style}.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(path), dynamo=False,
                          opset_version=OPSETS[style], do_constant_folding=False,
                          keep_initializers_as_inputs=style == "old",
                          training=torch.onnx.TrainingMode.EVAL, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "N"}})
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/snnc-scale")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--style", choices=sorted(OPSETS), default="new")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.models.split(","):
        path = export(name, out, args.style)
        print(f"{name}: {path} ({path.stat().st_size / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
