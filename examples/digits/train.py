"""Train a small CNN on scikit-learn's 8x8 digits and export it to ONNX.

The exported model is the reference input for the snnc ANN->SNN compiler
examples. It keeps real ``BatchNormalization`` nodes (BN is *not* folded into
the preceding convolutions) so that the compiler's own BN handling is
exercised, and it outputs raw logits (no softmax).

Outputs written to ``--out`` (default: this script's folder):

* ``model.onnx`` -- the trained network, input ``input`` of shape
  ``(batch, 1, 8, 8)`` float32 in [0, 1], output ``logits`` ``(batch, 10)``.
* ``calib.npz`` -- ``x`` (float32, NCHW) and ``y`` (int64): the first 256
  training samples, for activation-range calibration.
* ``test.npz`` -- ``x`` and ``y`` for the 540 held-out test samples.

Usage::

    python examples/digits/train.py                      # regenerate shipped files
    python examples/digits/train.py --arch vgg --act clip --out /tmp/digits_vgg
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

NUM_CLASSES = 10
NUM_CALIB = 256
BATCH_SIZE = 64
CLIP_MAX = 2.0
# Every op the exported graph may contain (catches exporter surprises such as
# Identity nodes, which appear when two initializers happen to be equal).
EXPECTED_OPS = {
    "Conv", "BatchNormalization", "Relu", "Clip", "Constant",
    "AveragePool", "MaxPool", "Flatten", "Gemm",
}  # fmt: skip


def make_act(act: str) -> nn.Module:
    if act == "relu":
        return nn.ReLU()
    if act == "clip":
        # Same as torch.clamp(x, 0.0, CLIP_MAX), but Hardtanh exports as a Clip
        # whose min/max are float32 Constants; torch.clamp would add Cast nodes
        # (unfolded, since constant folding is off to keep BatchNormalization).
        return nn.Hardtanh(0.0, CLIP_MAX)
    raise ValueError(f"unknown activation {act!r}")


def conv_block(c_in: int, c_out: int, act: str) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1),
        nn.BatchNorm2d(c_out),
        make_act(act),
    ]


def build_model(arch: str, act: str) -> nn.Sequential:
    """Build the network; both variants map (N,1,8,8) -> (N,10) logits."""
    if arch == "cnn":
        pool: type[nn.Module] = nn.AvgPool2d
        extra: list[nn.Module] = []
    elif arch == "vgg":
        pool = nn.MaxPool2d
        extra = conv_block(32, 32, act)
    else:
        raise ValueError(f"unknown arch {arch!r}")
    return nn.Sequential(
        *conv_block(1, 16, act),
        *conv_block(16, 32, act),
        pool(2),  # 8x8 -> 4x4
        *conv_block(32, 32, act),
        *extra,
        pool(2),  # 4x4 -> 2x2
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, NUM_CLASSES),
    )


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``x_train, x_test, y_train, y_test`` (float32 NCHW, int64)."""
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=0, stratify=y
    )
    return x_train, x_test, y_train, y_test


def save_npz(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.savez(path, x=np.ascontiguousarray(x, dtype=np.float32), y=y.astype(np.int64))
    with np.load(path, allow_pickle=False) as data:  # must load without pickle
        assert data["x"].dtype == np.float32 and data["y"].dtype == np.int64
        assert data["x"].shape == x.shape and data["y"].shape == y.shape


def train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    lr: float,
    seed: int,
) -> None:
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = -(-len(xt) // BATCH_SIZE)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), BATCH_SIZE):
            idx = perm[i : i + BATCH_SIZE]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if epoch == 0 or (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
            print(f"epoch {epoch + 1:3d}/{epochs}  loss {total / len(xt):.4f}")


@torch.no_grad()
def torch_logits(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    return model(torch.from_numpy(x)).numpy()


def export_onnx(model: nn.Module, path: Path, opset: int) -> None:
    """Export with the TorchScript exporter, keeping BatchNormalization nodes.

    With the default ``do_constant_folding=True`` the exporter folds eval-mode
    BN into the preceding Conv; turning folding off keeps BN as an
    inference-mode ``BatchNormalization`` node with a single output.
    """
    model.eval()
    dummy = torch.zeros(2, 1, 8, 8)
    with warnings.catch_warnings():
        # dynamo=False is deliberate; silence the legacy-exporter deprecation notes.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX")
        warnings.filterwarnings("ignore", message="The feature will be removed")
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            dynamo=False,
            export_params=True,
            opset_version=opset,
            training=torch.onnx.TrainingMode.EVAL,
            do_constant_folding=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )


def check_onnx(path: Path, expect_bn: int) -> list[str]:
    """Validate the exported graph; return its node op types."""
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    ops = [node.op_type for node in proto.graph.node]
    bn = [node for node in proto.graph.node if node.op_type == "BatchNormalization"]
    assert len(bn) == expect_bn, f"expected {expect_bn} BN nodes, got {len(bn)}"
    assert all(len(node.output) == 1 for node in bn), "BN must be inference-mode"
    assert set(ops) <= EXPECTED_OPS, f"unexpected ops {set(ops) - EXPECTED_OPS}"
    return ops


def ort_logits(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(["logits"], {"input": x})
    return np.asarray(out)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=["cnn", "vgg"], default="cnn")
    p.add_argument("--act", choices=["relu", "clip"], default="relu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--opset", type=int, default=13)
    p.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="output folder (default: this script's folder)",
    )
    return p.parse_args()


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    model_path, calib_path, test_path = (out / "model.onnx", out / "calib.npz", out / "test.npz")

    x_train, x_test, y_train, y_test = load_data()
    print(f"data: {len(x_train)} train / {len(x_test)} test")
    save_npz(calib_path, x_train[:NUM_CALIB], y_train[:NUM_CALIB])
    save_npz(test_path, x_test, y_test)

    model = build_model(args.arch, args.act)
    t0 = time.perf_counter()
    train(model, x_train, y_train, args.epochs, args.lr, args.seed)
    print(f"trained in {time.perf_counter() - t0:.1f}s")

    export_onnx(model, model_path, args.opset)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    ops = check_onnx(model_path, expect_bn=n_bn)
    print(f"onnx ops: {sorted(set(ops))}")

    ref = torch_logits(model, x_test)
    got = ort_logits(model_path, x_test)
    acc_torch = float((ref.argmax(1) == y_test).mean())
    acc_ort = float((got.argmax(1) == y_test).mean())
    max_diff = float(np.abs(ref - got).max())
    print(f"test accuracy: torch {acc_torch:.4f}  onnxruntime {acc_ort:.4f}")
    print(f"max |logit diff| torch vs onnxruntime: {max_diff:.2e}")
    assert np.array_equal(ref.argmax(1), got.argmax(1)), "predictions differ"
    assert max_diff < 1e-4, f"logit mismatch {max_diff}"

    print(
        f"arch={args.arch} act={args.act} seed={args.seed} opset={args.opset} "
        f"test_acc={acc_ort:.4f} model={model_path} calib={calib_path} test={test_path}"
    )


if __name__ == "__main__":
    main()
