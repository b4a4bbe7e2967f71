"""Fine-tune a trained deep benchmark model with QCFS activations (L levels), for low T.

    .venv/bin/python benchmarks/deep/finetune_qcfs.py                   # vgg16, L=4, 2 epochs
    .venv/bin/python benchmarks/deep/finetune_qcfs.py --model resnet20 --levels 8

A ReLU-trained network converted at T steps is bounded by its activations quantized to T
levels (`snnc eval --bound`): on out/deep/vgg16.onnx at T=4 that bound is 3.9 points below the
ANN and the SNN reaches it. No post-training calibration removes that quantization loss; training
with the quantized activation does (QCFS: lambda * clip(floor(x L / lambda + 1/2) / L, 0, 1),
Bu et al., ICLR 2022), and snnc recognises the exported QCFS chain and converts it with the
trained lambda (preset `qcfs`, or the default preset, which tries the trained thresholds too).

This starts from make_models.py's weights (out/deep/models/<model>.pt), replaces every ReLU by
a QCFS module whose lambda starts at the 99.9th percentile of that ReLU's output on training
data, fine-tunes all parameters (Adam, one-cycle schedule), and writes
out/deep/<model>_qcfs<L>.onnx (TorchScript exporter, opset 13; checked against torch with
onnxruntime) and a line in out/deep/models/meta.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import data  # noqa: E402
import make_models  # noqa: E402  (its train(), export and the loaded peers' modules)
import nets  # noqa: E402

OUT = make_models.OUT


def _relus(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(parent, attribute name) of every nn.ReLU, in module order."""
    found = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                found.append((parent, name))
    return found


@torch.no_grad()
def _percentiles(model: nn.Module, x: np.ndarray, q: float) -> list[float]:
    """The q-th percentile of each ReLU's output over `x` (module order)."""
    sites = _relus(model)
    outputs: list[list[torch.Tensor]] = [[] for _ in sites]
    hooks = [getattr(parent, name).register_forward_hook(
        lambda m, i, o, k=k: outputs[k].append(o.flatten()[::7]))
        for k, (parent, name) in enumerate(sites)]
    model.eval()
    for i in range(0, len(x), 256):
        model(torch.from_numpy(x[i:i + 256]))
    for h in hooks:
        h.remove()
    return [float(torch.quantile(torch.cat(o)[:1 << 24], q / 100)) for o in outputs]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=list(nets.MODELS), default="vgg16")
    p.add_argument("--levels", type=int, default=4, help="QCFS levels L (train for T = L)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=data.SEED, help="data seed")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(31)
    meta_path = OUT / "models" / "meta.json"
    meta = json.loads(meta_path.read_text())
    base = meta[args.model]
    model = nets.build(args.model, base["width"])
    model.load_state_dict(torch.load(OUT / "models" / f"{args.model}.pt"))
    splits = data.make_splits(args.seed)
    x_train = splits["train"][0]
    lams = _percentiles(model, x_train[:1024], 99.9)
    qcfs = nets.models_def.QCFS
    for (parent, name), lam in zip(_relus(model), lams, strict=True):
        setattr(parent, name, qcfs(args.levels, lam=max(lam, 1e-3)))
    print(f"{args.model}: {len(lams)} ReLUs -> QCFS(L={args.levels}), lambda from "
          f"{min(lams):.2f} to {max(lams):.2f}; before fine-tuning calib accuracy "
          f"{100 * make_models.accuracy(model, *splits['calib']):.2f}%", flush=True)
    t0 = time.perf_counter()
    make_models.train(model, *splits["train"], splits["calib"], 41, args.epochs, args.lr)
    seconds = time.perf_counter() - t0
    stem = f"{args.model}_qcfs{args.levels}"
    path = OUT / f"{stem}.onnx"
    make_models.loihi_scale.export(model, path, x_train.shape[1:])
    x_test, y_test = splits["test"]
    acc = make_models.loihi_scale.peers.check_export(model, path, x_test, y_test)
    print(f"{stem}: test accuracy {100 * acc:.2f}% (onnxruntime), fine-tuning {seconds:.0f} s",
          flush=True)
    meta[stem] = {"from": args.model, "levels": args.levels, "epochs": args.epochs,
                  "lr": args.lr, "train_seconds": round(seconds, 1),
                  "ann_test_accuracy": acc, "data_seed": args.seed}
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
