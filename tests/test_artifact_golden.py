"""Artifacts of the shipped and held-out models, byte for byte: the SHA-256 of what `snnc
compile` writes for each case below equals tests/golden/artifacts.json, recorded before the
target table and the pass contracts (issue 15) and kept since. A behaviour change that is
meant must update the file, on purpose:

    OPENBLAS_CORETYPE=Haswell .venv/bin/python tests/test_artifact_golden.py \
        > tests/golden/artifacts.json

Float sums in BLAS differ in their last bits between OpenBLAS's CPU kernels (an AVX-512 machine
gets other thresholds, by an ulp, than an AVX2 one), so the digests are computed in a
subprocess pinned to one kernel, Haswell's (AVX2; Zen's gives the same bytes). The default
preset's tuning sums more floats outside BLAS, and its artifact still differs by ulps on an
AVX-512 CPU (same candidates chosen, thresholds 1e-7 apart): that case lists the digest of each
CPU kind it was recorded on (an AVX2 machine first, then an AVX-512 AMD EPYC).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
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


@pytest.fixture(scope="module")
def digests() -> dict[str, str]:
    """Every case's digest, from one subprocess on OpenBLAS's Haswell kernels (see above)."""
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell"}
    done = subprocess.run([sys.executable, __file__], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", sorted(CASES))
def test_artifact_is_byte_identical_to_the_recorded_one(name: str,
                                                       digests: dict[str, str]) -> None:
    recorded = json.loads(GOLDEN.read_text())[name]
    assert digests[name] in (recorded if isinstance(recorded, list) else [recorded]), (
        f"{name}: the compiled artifact changed; if that is meant, regenerate "
        f"{GOLDEN.relative_to(ROOT)} (see this module's docstring)")


if __name__ == "__main__":  # record the digests (with whichever snnc this Python imports)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        json.dump({n: digest(n, Path(tmp)) for n in sorted(CASES)}, sys.stdout, indent=1)
        print()
