"""The command-line contract: commands, outputs, JSON, exit codes, and no files left behind
on failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import parser

from snnc.cli import main


def _snnc(*args: str | Path) -> int:
    return main([str(a) for a in args])


def test_compile_then_run_with_json(tmp_path: Path, digits_model: Path, digits_calib: Path,
                                    digits_test: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "net.snn"
    assert _snnc("compile", digits_model, "--preset", "rate-p99.99",
                 "--calib", digits_calib, "-o", out,
                 "--timesteps", "16") == 0
    assert out.is_file()
    assert "spiking layers" in capsys.readouterr().out
    report = tmp_path / "run.json"
    assert _snnc("run", out, "--data", digits_test, "--json", report) == 0
    data = json.loads(report.read_text())
    assert data["timesteps"] == 16  # the artifact's default
    assert data["samples"] == 540 and len(data["predictions"]) == 540
    assert data["accuracy"] > 0.95 and data["spikes_per_sample"] > 0
    layers = data["spikes_per_layer"]
    assert len(layers) == 3 and abs(sum(layers.values()) - data["spikes_per_sample"]) < 1e-6
    assert "accuracy" in capsys.readouterr().out


def test_model_path_first_means_compile(tmp_path: Path, digits_model: Path,
                                        digits_calib: Path) -> None:
    out = tmp_path / "short.snn"
    assert _snnc(digits_model, "--preset", "rate-p99.99",
                 "--target", "numpy", "--calib", digits_calib, "-o", out) == 0
    assert out.is_file()


def test_eval_json_has_the_promised_fields(tmp_path: Path, digits_model: Path,
                                           digits_calib: Path, digits_test: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    report = tmp_path / "eval.json"
    assert _snnc("eval", digits_model, "--data", digits_test, "--calib", digits_calib,
                 "--timesteps", "2,8", "--json", report) == 0
    data = json.loads(report.read_text())
    assert 0.9 < data["ann_accuracy"] <= 1.0
    assert [row["timesteps"] for row in data["snn"]] == [2, 8]
    for row in data["snn"]:
        assert set(row) >= {"timesteps", "accuracy", "spikes_per_sample"}
    assert data["snn"][1]["spikes_per_sample"] > data["snn"][0]["spikes_per_sample"]
    table = capsys.readouterr().out
    assert "ANN accuracy" in table and "messages/sample" in table and "SOPs/sample" in table


def test_eval_with_input_shift_compiles_per_timestep(tmp_path: Path, digits_model: Path,
                                                     digits_calib: Path,
                                                     digits_test: Path) -> None:
    report = tmp_path / "eval.json"
    assert _snnc("eval", digits_model, "--preset", "rate-p99.99",
                 "--data", digits_test, "--calib", digits_calib,
                 "--timesteps", "4,16", "--shift", "input", "--json", report) == 0
    rows = json.loads(report.read_text())["snn"]
    assert [r["timesteps"] for r in rows] == [4, 16]
    assert rows[1]["accuracy"] > 0.95


def test_dump_ir_after_all_writes_a_readable_dump_per_pass(tmp_path: Path, digits_model: Path,
                                                           digits_calib: Path) -> None:
    dumps = tmp_path / "dumps"
    assert _snnc("compile", digits_model, "--preset", "rate-p99.99",
                 "--calib", digits_calib, "-o", tmp_path / "n.snn",
                 "--dump-ir", "after-all", "--dump-dir", dumps) == 0
    names = sorted(p.name for p in dumps.iterdir())
    assert names == ["00-import.txt", "01-recognise-activations.txt",
                     "02-fold-batchnorm.txt", "03-normalize-thresholds.txt", "04-convert.txt",
                     "05-shift-bias.txt", "06-calibrate.txt"]
    assert "batchnorm" in (dumps / "00-import.txt").read_text()
    assert "batchnorm" not in (dumps / "02-fold-batchnorm.txt").read_text()
    assert "theta=" in (dumps / "03-normalize-thresholds.txt").read_text()
    assert "= if[" in (dumps / "04-convert.txt").read_text()


def test_dump_selected_passes_as_json(tmp_path: Path, digits_model: Path,
                                      digits_calib: Path) -> None:
    dumps = tmp_path / "d"
    assert _snnc("compile", digits_model, "--preset", "rate-p99.99",
                 "--calib", digits_calib, "-o", tmp_path / "n.snn",
                 "--dump-ir", "convert", "--dump-dir", dumps, "--dump-format", "json") == 0
    (only,) = dumps.iterdir()
    assert only.name == "04-convert.json"
    assert any(n["op"] == "if" for n in json.loads(only.read_text())["nodes"])


@pytest.mark.parametrize("fmt, marker", [("text", "= conv["), ("json", '"format": "snnc-ir"'),
                                         ("dot", "digraph")])
def test_inspect_formats(digits_model: Path, fmt: str, marker: str,
                         capsys: pytest.CaptureFixture) -> None:
    assert _snnc("inspect", digits_model, "--format", fmt) == 0
    assert marker in capsys.readouterr().out


def test_inspect_an_artifact(tmp_path: Path, digits_model: Path, digits_calib: Path,
                             capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "n.snn"
    _snnc("compile", digits_model, "--preset", "rate-p99.99", "--calib", digits_calib, "-o", out)
    capsys.readouterr()
    assert _snnc("inspect", out) == 0
    assert "= if[theta=" in capsys.readouterr().out


def _unsupported_model(path: Path) -> Path:
    model = parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 13]>
        net (float[N, 4] x) => (float[N, 4] y) {
            a = Sigmoid(x)
            b = Tanh(a)
            y = Relu(b)
        }""")
    onnx.save(model, path)
    return path


def test_unsupported_ops_one_error_no_output(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    model = _unsupported_model(tmp_path / "bad.onnx")
    out = tmp_path / "bad.snn"
    assert _snnc("compile", model, "-o", out) == 4
    err = capsys.readouterr().err
    assert "Sigmoid" in err and "Tanh" in err and "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.onnx"]  # no temporary files either


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"\x08\x07\x12\x05garbage"])
def test_unreadable_model_is_a_clear_error(tmp_path: Path, content: bytes,
                                           capsys: pytest.CaptureFixture) -> None:
    model = tmp_path / "broken.onnx"
    model.write_bytes(content)
    code = _snnc("compile", model, "-o", tmp_path / "x.snn")
    assert code in (3, 4)
    err = capsys.readouterr().err
    assert err.startswith("snnc: error:") and "Traceback" not in err
    assert not (tmp_path / "x.snn").exists()


def test_missing_model_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _snnc("compile", tmp_path / "nope.onnx") == 3
    assert "no such file" in capsys.readouterr().err


def test_relu_model_without_calibration_says_what_to_do(tmp_path: Path, digits_model: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    assert _snnc("compile", digits_model, "-o", tmp_path / "n.snn") == 5
    assert "--calib" in capsys.readouterr().err
    assert not (tmp_path / "n.snn").exists()


def test_failed_compile_keeps_the_previous_artifact(tmp_path: Path, digits_model: Path,
                                                    digits_calib: Path) -> None:
    out = tmp_path / "n.snn"
    assert _snnc("compile", digits_model, "--preset", "rate-p99.99",
                 "--calib", digits_calib, "-o", out) == 0
    before = out.read_bytes()
    assert _snnc("compile", digits_model, "--preset", "rate-p99.99",
                 "-o", out) != 0  # no calibration: fails
    assert out.read_bytes() == before


@pytest.mark.parametrize("target", ["lava", "loihi"])
def test_lava_targets_compile(tmp_path: Path, digits_model: Path, digits_calib: Path,
                              target: str, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "n.snn"
    assert _snnc(digits_model, "--preset", "rate-p99.99",
                 "--target", target, "--calib", digits_calib, "-o", out) == 0
    assert f"target {target}" in capsys.readouterr().out
    assert _snnc("run", out, "--data", digits_calib, "--timesteps", "4") == 0


@pytest.mark.parametrize("args", [
    ["compile", "{model}", "--target", "gpu"],
    ["compile", "{model}", "--norm", "median"],
    ["compile", "{model}", "--norm", "percentile:250"],
    ["compile", "{model}", "--timesteps", "0"],
    ["eval", "{model}", "--data", "{test}", "--timesteps", "4,-1"],
    ["eval", "{model}", "--data", "{test}", "--timesteps", "four"],
    ["compile", "{model}", "--dump-ir", "no-such-pass", "--dump-dir", "{tmp}"],
    ["compile", "{model}", "--dump-ir", "after-all"],
    ["frobnicate"],
])
def test_usage_errors_exit_2(tmp_path: Path, digits_model: Path, digits_test: Path,
                             args: list[str], capsys: pytest.CaptureFixture) -> None:
    filled = [a.format(model=digits_model, test=digits_test, tmp=tmp_path) for a in args]
    assert main(filled + ["-o", str(tmp_path / "x.snn")] if filled[0] == "compile"
                else filled) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "x.snn").exists()


def test_bad_data_file(tmp_path: Path, digits_model: Path, digits_calib: Path,
                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "n.snn"
    _snnc("compile", digits_model, "--preset", "rate-p99.99", "--calib", digits_calib, "-o", out)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((3, 1, 9, 9), np.float32))
    assert _snnc("run", out, "--data", wrong) == 5
    assert "[N, 1, 8, 8]" in capsys.readouterr().err
    no_x = tmp_path / "nox.npz"
    np.savez(no_x, images=np.zeros((3, 1, 8, 8), np.float32))
    assert _snnc("run", out, "--data", no_x) == 5


def test_python_dash_m_and_console_script(tmp_path: Path, digits_model: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "snnc", "inspect", str(digits_model)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "%input" in result.stdout
    result = subprocess.run([sys.executable, "-m", "snnc", "--version"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "snnc" in result.stdout


def test_target_nir_writes_a_nir_file(tmp_path: Path, digits_model: Path,
                                      digits_calib: Path) -> None:
    nir = pytest.importorskip("nir")
    out = tmp_path / "digits.nir"
    assert _snnc(digits_model, "--preset", "rate-p99.99",
                 "--target", "nir", "--calib", digits_calib, "-o", out) == 0
    graph = nir.read(out)
    assert type(graph.nodes["relu1"]).__name__ == "IF"
