"""`eval --report DIR`: four PNG plots and a self-contained report.html (plots as data URIs),
graceful with missing data, a UsageError for an unusable folder, and (where Chromium is
installed) a page that a headless browser renders."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from snnc.cli import main
from snnc.compiler.errors import UsageError

pytest.importorskip("matplotlib")
from snnc.report import PLOTS, method_sets, write_report  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LAYERS = ("relu1", "relu2", "relu3")


def _rows(scale: float) -> list[dict[str, Any]]:
    return [{"timesteps": t, "accuracy": min(0.99, 0.3 + scale * np.log2(2 * t) / 8),
             "spikes_per_sample": 300.0 * t * scale, "sops_per_sample": 9000.0 * t * scale,
             "energy_ratio": 0.01 * t} for t in (1, 2, 4, 8, 16, 32)]


def _full_report() -> dict[str, Any]:
    """Every key the lead's eval adds: several method sets, SOPs, energy, per-layer stats."""
    return {
        "model": "model.onnx", "data": "test.npz", "samples": 540, "ann_accuracy": 0.9944,
        "snn": _rows(1.0),
        "methods": {"shift=v0": {"snn": _rows(1.0)}, "shift=none": {"snn": _rows(0.5)}},
        "per_layer": [{"layer": name, "timesteps": t, "rate": 0.1 * (k + 1) / t ** 0.1,
                       "error": 0.5 / t * (k + 1), "saturated": 0.01 * k, "silent": 0.1}
                      for t in (8, 32) for k, name in enumerate(LAYERS)],
        "settings": {"norm": "percentile:99.99", "shift": "v0", "pipeline": ["a", "b"]},
    }


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)",
                                                    page)]


def test_full_report_has_four_plots_and_tables(tmp_path: Path) -> None:
    page = write_report(_full_report(), tmp_path / "rep")
    assert page == tmp_path / "rep" / "report.html"
    for file, _, _ in PLOTS:
        assert (tmp_path / "rep" / file).read_bytes().startswith(PNG_MAGIC)
    text = page.read_text()
    images = _images(text)
    assert len(images) == 4 and all(i.startswith(PNG_MAGIC) for i in images)
    assert images[0] == (tmp_path / "rep" / "accuracy.png").read_bytes()
    assert "skipped" not in text
    for needle in ("shift=none", "relu3", "SOPs/sample", "energy vs ANN", "99.44%",
                   "percentile:99.99"):
        assert needle in text
    assert "<script" not in text and "http" not in text  # self-contained


def test_methods_as_a_list_and_as_plain_snn_rows() -> None:
    listed = {"methods": [{"name": "a", "snn": _rows(1.0)},
                          {"settings": {"shift": "none"}, "snn": _rows(0.5)}]}
    assert [name for name, _ in method_sets(listed)] == ["a", "shift=none"]
    plain = {"snn": _rows(1.0), "settings": {"shift": "v0", "preset": "calibrated"}}
    assert method_sets(plain) == [("SNN (calibrated)", _rows(1.0))]


def test_missing_keys_skip_plots_with_a_note(tmp_path: Path) -> None:
    report = {"model": "m.onnx", "data": "d.npz", "samples": 3, "ann_accuracy": 1.0,
              "snn": [{"timesteps": 1, "accuracy": 0.5, "spikes_per_sample": 2.0}]}
    text = write_report(report, tmp_path).read_text()
    assert len(_images(text)) == 2  # accuracy; spikes (without SOPs)
    assert text.count("Plot skipped") == 2 and "per_layer[].rate" in text
    assert not (tmp_path / "firing_rate.png").exists()


def test_a_file_in_the_way_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="--report"):
        write_report(_full_report(), blocker)
    with pytest.raises(UsageError, match="--report"):
        write_report(_full_report(), blocker / "sub")


def test_cli_eval_report(tmp_path: Path, digits_model: Path, digits_calib: Path,
                         digits_test: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", str(digits_model), "--data", str(digits_test), "--calib",
                 str(digits_calib), "--timesteps", "2,8", "--report",
                 str(tmp_path / "r")]) == 0
    assert "report.html" in capsys.readouterr().out
    text = (tmp_path / "r" / "report.html").read_text()
    # --report implies --per-layer: all four plots, none skipped, without asking for it
    images = _images(text)
    assert len(images) == 4 and all(i.startswith(PNG_MAGIC) for i in images)
    assert "Plot skipped" not in text and "No per-layer data" not in text
    for file, _, _ in PLOTS:
        assert (tmp_path / "r" / file).read_bytes().startswith(PNG_MAGIC)


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser",
                                               "google-chrome")) if p), None)


def test_headless_chromium_renders_the_report(tmp_path: Path) -> None:
    """A screenshot of the page: the four plots must be drawn (a mostly white page, with
    blue plot lines and black axes). Skipped without Chromium (apt-get install chromium)."""
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); "
                    "the HTML itself is checked by the other tests")
    page = write_report(_full_report(), tmp_path / "rep")
    shot = tmp_path / "shot.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--screenshot={shot}", "--window-size=1100,4200", page.as_uri()]
    result = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert result.returncode == 0 and shot.is_file(), result.stderr.decode()[-2000:]
    image = _read_png(shot)
    blue = (image[..., 2] > 150) & (image[..., 0] < 80) & (image[..., 1] < 150)
    rows_with_blue = np.flatnonzero(blue.any(axis=1))
    # plot lines at four different heights of the page: four plots were drawn
    bands = np.split(rows_with_blue, np.flatnonzero(np.diff(rows_with_blue) > 80) + 1)
    assert len([b for b in bands if len(b) > 20]) >= 4


def _read_png(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    return (imread(path)[..., :3] * 255).astype(np.uint8)
