"""Artifacts of the shipped and held-out models, byte for byte: the SHA-256 of what `snnc
compile` writes for each case below equals tests/golden/artifacts.json, recorded before the
target table and the pass contracts (issue 15) and kept since. A behaviour change that is
meant must update the file, on purpose:

    .venv/bin/python tests/test_artifact_golden.py > tests/golden/artifacts.json
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "artifacts.json"
DIGITS = ROOT / "examples" / "digits"
HELD = ROOT / "tests" / "data" / "heldout"
RATE = ["--preset", "rate-p99.99"]  # no tuning: quick, and no simulated float sums involved
# name -> (model, calibration data, output suffix, compile flags)
CASES: dict[str, tuple[Path, Path, str, list[str]]] = {
    "digits-numpy-default": (DIGITS / "model.onnx", DIGITS / "calib.npz", ".snn", []),
    "digits-loihi": (DIGITS / "model.onnx", DIGITS / "calib.npz", ".snn",
                     ["--target", "loihi", *RATE]),
    "digits-loihi-graded": (DIGITS / "model.onnx", DIGITS / "calib.npz", ".snn",
                            ["--target", "loihi", "--spike-bits", "3", *RATE]),
    "digits-loihi-sigma-delta": (DIGITS / "model.onnx", DIGITS / "calib.npz", ".snn",
                                 ["--target", "loihi", "--neuron", "sigma-delta"]),
    "digits-nir": (DIGITS / "model.onnx", DIGITS / "calib.npz", ".nir", ["--target", "nir"]),
    "digits-netx": (DIGITS / "model.onnx", DIGITS / "calib.npz", ".net",
                    ["--target", "netx", *RATE]),
    "vgg11-maxpool-numpy": (HELD / "vgg11_maxpool.onnx", HELD / "digits32_calib.npz", ".snn",
                            [*RATE, "--timesteps", "16"]),
    "vgg11-maxpool-loihi-lif": (HELD / "vgg11_maxpool.onnx", HELD / "digits32_calib.npz",
                                ".snn", ["--target", "loihi", "--neuron", "lif", "--maxpool",
                                         "spiking", *RATE]),
    "resnet-small-loihi": (HELD / "resnet_small.onnx", HELD / "digits32_calib.npz", ".snn",
                           ["--target", "loihi", *RATE]),
    "vgg-qcfs-numpy": (HELD / "vgg_qcfs_L4.onnx", HELD / "digits32_calib.npz", ".snn",
                       ["--preset", "qcfs", "--timesteps", "4"]),
}


def digest(name: str, folder: Path) -> str:
    from snnc.cli import main

    model, calib, suffix, flags = CASES[name]
    out = folder / f"{name}{suffix}"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["compile", str(model), "--calib", str(calib), *flags, "-o", str(out)])
    assert code == 0, f"{name}: compile exited {code}"
    return hashlib.sha256(out.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(CASES))
def test_artifact_is_byte_identical_to_the_recorded_one(name: str, tmp_path: Path) -> None:
    golden = json.loads(GOLDEN.read_text())
    assert digest(name, tmp_path) == golden[name], (
        f"{name}: the compiled artifact changed; if that is meant, regenerate "
        f"{GOLDEN.relative_to(ROOT)} (see this module's docstring)")


if __name__ == "__main__":  # record the digests (with whichever snnc this Python imports)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        json.dump({n: digest(n, Path(tmp)) for n in sorted(CASES)}, sys.stdout, indent=1)
        print()
