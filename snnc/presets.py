"""Named sets of conversion methods (`--preset`). Flags given explicitly override a preset.

* `calibrated` (default): per-channel thresholds at the percentile that, simulated at the
  requested T on the calibration data, agrees best with the ANN; V(0) = theta/2 (Bu et al.
  2022); then layer-by-layer bias and potential calibration for that T (Li et al. 2021; RMPE
  2023) if it agrees better still (compiler/tuning.py). Neurons are signed where the target
  runs them (numpy), IF with reset by subtraction elsewhere. A model whose activations are all
  trained (Clip, QCFS) and that gets no calibration data keeps its trained thresholds.
* `qcfs`: trained or percentile thresholds and V(0) = theta/2, nothing tuned for T: the setting
  for QCFS-trained models at T = L.
* `rate-p99.99`: Rueckauer et al. 2017's robust normalization with V(0) = theta/2.
* `rate-max`: Diehl et al. 2015's max normalization with reset by subtraction, no shift.
* `signed`: `calibrated` with signed neurons (Fast-SNN 2023, SNM 2022) on any target.
* `if`: `calibrated` with unsigned IF neurons on every target (what Lava/Loihi run).
* `sigma-delta`: Lava's stock SigmaDelta neurons with graded messages (what Intel's Loihi 2
  SDNN demos run): per-layer activation scales at the 99.9th percentile, delta thresholds chosen
  on the calibration data; nothing shifted or calibrated for T (the network settles).
* `nir`: only what a NIR file states exactly, so that every NIR reader runs the same network:
  neurons reset to zero, V(0) = 0, the half step as a constant input current (a bias in the
  file), tuned thresholds, bias-only calibration.
"""

from __future__ import annotations

from typing import Any

from snnc.compiler.errors import UsageError

PRESETS: dict[str, dict[str, Any]] = {
    "calibrated": {"norm": "auto", "shift": "v0", "calibrate": "auto", "neuron": "auto"},
    "qcfs": {"norm": "percentile:99.99", "shift": "v0", "calibrate": "none"},
    "rate-p99.99": {"norm": "percentile:99.99", "shift": "v0", "calibrate": "none"},
    "rate-max": {"norm": "max", "shift": "none", "calibrate": "none"},
    "signed": {"norm": "auto", "shift": "v0", "calibrate": "auto", "neuron": "signed"},
    "if": {"norm": "auto", "shift": "v0", "calibrate": "auto", "neuron": "if"},
    "nir": {"norm": "auto", "shift": "input", "calibrate": "bias", "neuron": "lif"},
    "sigma-delta": {"norm": "percentile:99.9", "shift": "none", "calibrate": "none",
                    "neuron": "sigma-delta"},
}
DEFAULT_PRESET = "calibrated"


def preset_options(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The compile options of preset `name`, with the non-None `overrides` applied."""
    if name not in PRESETS:
        raise UsageError(f"--preset '{name}' is not one of: {', '.join(PRESETS)}")
    options = dict(PRESETS[name])
    options.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return options
