"""Inspection: the per-layer table (checked against a hand count), SVG rendering, and golden
text of the IR after every pass on a small hand-checkable model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import onnx
import pytest
from onnx import parser

import snnc
from snnc.cli import main

GOLDEN = Path(__file__).resolve().parent / "golden"


def test_layer_table_matches_a_hand_count(tmp_path: Path, digits_model: Path,
                                          digits_calib: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "d.snn"
    main(["compile", str(digits_model), "--calib", str(digits_calib), "-o", str(out)])
    capsys.readouterr()
    assert main(["inspect", str(out), "--layers"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()
            if line and not line.startswith("-")}
    # 1x8x8 -> conv 16 (3x3) -> IF -> conv 32 (3x3) -> IF -> pool -> conv 32 (3x3) on 4x4 -> IF
    assert rows["conv1"][4] == str(16 * 8 * 8 * 1 * 9)
    assert rows["conv2"][4] == str(32 * 8 * 8 * 16 * 9)
    assert rows["conv3"][4] == str(32 * 4 * 4 * 32 * 9)
    assert rows["linear1"][4] == str(10 * 128)
    assert rows["relu2"][3] == str(32 * 8 * 8)
    assert rows["total"][1:3] == [str(16 * 64 + 32 * 64 + 32 * 16),
                                  str(9216 + 294912 + 147456 + 1280)]


def test_loihi_layer_table_shows_weight_bits_exponents_and_cores(
        tmp_path: Path, digits_model: Path, digits_calib: Path,
        capsys: pytest.CaptureFixture) -> None:
    import json

    out = tmp_path / "d.snn"
    assert main(["compile", str(digits_model), "--calib", str(digits_calib), "--target", "loihi",
                 "--preset", "rate-p99.99", "--timesteps", "8", "-o", str(out)]) == 0
    capsys.readouterr()
    mapping = snnc.load(out).graph.meta["mapping"]
    assert main(["inspect", str(out), "--layers", "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)
    rows = {r["layer"]: r for r in table["layers"]}
    for pop in mapping["populations"]:
        assert rows[pop["name"]]["cores"] == pop["cores"]
    assert table["total"]["cores"] == mapping["cores"]
    synapse_fed = [r for r in table["layers"] if r["weight_bits"] != ""]
    assert [r["layer"] for r in synapse_fed] == ["relu2", "relu3", "linear1_readout_bias"]
    for r in synapse_fed:
        assert 1 <= r["weight_bits"] <= 9 and 0 <= r["weight_exp"] <= 7
    assert main(["inspect", str(out), "--layers"]) == 0
    text = capsys.readouterr().out
    header = text.splitlines()[0].split()
    assert header[-5:] == ["w", "bits", "w", "exp", "cores"]
    relu2 = next(line.split() for line in text.splitlines() if line.startswith("relu2 "))
    assert relu2[-3:] == [str(rows["relu2"]["weight_bits"]), str(rows["relu2"]["weight_exp"]),
                          str(rows["relu2"]["cores"])]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_svg_rendering(tmp_path: Path, digits_model: Path) -> None:
    svg = tmp_path / "g.svg"
    assert main(["inspect", str(digits_model), "--svg", str(svg)]) == 0
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "conv1" in text


def test_svg_without_graphviz_says_how(tmp_path: Path, digits_model: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["inspect", str(digits_model), "--svg", str(tmp_path / "g.svg")]) == 2
    assert "graphviz" in capsys.readouterr().err
    assert not (tmp_path / "g.svg").exists()


TINY = """<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 2, 4, 4] x) => (float[N, 3] y)
<float[2, 2, 3, 3] w = {0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, 0.9,
                        -0.1, 0.2, 0.3, 0.4, -0.5, 0.6, 0.7, 0.8, -0.9,
                        0.2, 0.1, 0.0, -0.1, 0.2, 0.3, 0.1, 0.0, 0.1,
                        0.3, 0.2, 0.1, 0.0, 0.1, 0.2, -0.3, 0.2, 0.1},
 float[2] b = {0.1, -0.1}, float[2] g = {1.5, 0.5}, float[2] be = {0.1, 0.2},
 float[2] m = {0.05, -0.05}, float[2] v = {1.0, 2.0},
 float[3, 8] fc = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, -0.1, -0.2, -0.3, -0.4, 0.5,
                   0.6, 0.7, 0.8, 0.3, 0.3, 0.3, -0.3, -0.3, -0.3, 0.1, 0.1},
 float[3] fb = {0.0, 0.1, -0.1}>
{
    c = Conv <pads = [1, 1, 1, 1]> (x, w, b)
    n = BatchNormalization (c, g, be, m, v)
    lo = Constant <value = float {0.0}> ()
    hi = Constant <value = float {1.5}> ()
    a = Clip (n, lo, hi)
    p = AveragePool <kernel_shape = [2, 2], strides = [2, 2]> (a)
    f = Flatten (p)
    y = Gemm <transB = 1> (f, fc, fb)
}"""


def test_golden_dump_after_every_pass(tmp_path: Path) -> None:
    """The IR text after each pass, compared with tests/golden/*.txt. To accept a deliberate
    change of the printer or a pass: SNNC_UPDATE_GOLDEN=1 pytest tests/test_inspect.py"""
    model = tmp_path / "tiny.onnx"
    onnx.save(parser.parse_model(TINY), model)
    dumps = tmp_path / "dumps"
    snnc.compile(model, dump_ir="after-all", dump_dir=dumps)
    produced = sorted(dumps.iterdir())
    assert [p.name for p in produced] == ["00-import.txt", "01-recognise-activations.txt",
                                          "02-fold-batchnorm.txt", "03-normalize-thresholds.txt",
                                          "04-convert.txt", "05-shift-bias.txt",
                                          "06-calibrate.txt"]
    for path in produced:
        golden = GOLDEN / path.name
        if os.environ.get("SNNC_UPDATE_GOLDEN"):
            golden.write_text(path.read_text())
        assert path.read_text() == golden.read_text(), path.name
    # and the dumps say what each pass did
    assert "batchnorm" in (GOLDEN / "00-import.txt").read_text()
    assert "batchnorm" not in (GOLDEN / "02-fold-batchnorm.txt").read_text()
    assert "theta=1.5" in (GOLDEN / "03-normalize-thresholds.txt").read_text()
    assert "if[theta=1.5, v0=0," in (GOLDEN / "04-convert.txt").read_text()
    assert "if[theta=1.5, v0=0.75," in (GOLDEN / "05-shift-bias.txt").read_text()


def test_the_dump_after_quantize_weights_shows_the_mantissas(tmp_path: Path,
                                                               digits_model: Path,
                                                               digits_calib: Path) -> None:
    """Every parameter prints with its dtype and shape, so the int16 mantissas that
    quantize-weights adds are visible in its dump and absent from the one before."""
    dumps = tmp_path / "dumps"
    snnc.compile(digits_model, target="loihi", calib=digits_calib, preset="rate-p99.99",
                 dump_ir="after-all", dump_dir=dumps)
    before = (dumps / "07-lower-synapses.txt").read_text()
    after = (dumps / "08-quantize-weights.txt").read_text()
    assert "q_weight: i16[" not in before and "weight: f32[" in before
    synapses = [line for line in before.splitlines() if "_syn" in line.split(" = ")[0]]
    assert synapses and after.count("q_weight: i16[") == len(synapses)
