"""map-cores: the digits CNN's neurocore report against a hand count, and limits enforced."""

from __future__ import annotations

from pathlib import Path

import pytest

import snnc
from snnc.compiler.errors import ResourceError
from snnc.compiler.loihi.map_cores import CoreLimits, map_cores


def _valid_taps(size: int, kernel: int = 3, pad: int = 1) -> int:
    """Sum over output positions of the kernel taps that land inside the input (1-d)."""
    return sum(sum(1 for k in range(kernel) if 0 <= o - pad + k < size) for o in range(size))


def test_digits_report_matches_a_hand_count(digits_model: Path, digits_calib: Path) -> None:
    net = snnc.compile(digits_model, calib=digits_calib, target="loihi", preset="rate-p99.99")
    m = net.graph.meta["mapping"]
    by_name = {r["name"]: r for r in m["populations"]}
    # conv2: 16 -> 32 channels, 3x3 pad 1 on 8x8: 22 valid taps per axis (2 + 6*3 + 2)
    conv2 = _valid_taps(8) ** 2 * 16 * 32
    # conv3 after 2x2 avgpool: 3x3 pad 1 on 4x4 (10 taps per axis), each tap reads 4 neurons
    conv3 = _valid_taps(4) ** 2 * 4 * 32 * 32
    # readout: linear 128 -> 10 after 2x2 avgpool: each of 512 neurons reaches all 10
    readout = 10 * 512
    assert (conv2, conv3, readout) == (247808, 409600, 5120)
    assert by_name["relu1"] == {"name": "relu1", "neurons": 1024, "synapses": 0, "cores": 1}
    assert by_name["relu2"]["synapses"] == conv2 and by_name["relu2"]["cores"] == 2
    assert by_name["relu3"]["synapses"] == conv3 and by_name["relu3"]["cores"] == 4
    assert m["populations"][-1]["synapses"] == readout
    assert m["cores"] == 1 + 2 + 4 + 1 and m["chips"] == 1


def test_a_network_that_does_not_fit_names_the_limit(digits_model: Path,
                                                      digits_calib: Path) -> None:
    net = snnc.compile(digits_model, calib=digits_calib, target="lava", preset="rate-p99.99")
    with pytest.raises(ResourceError, match="above the 100 a core can hold"):
        map_cores(net.graph, CoreLimits(synapses_per_core=100))
    with pytest.raises(ResourceError, match="relu3"):
        map_cores(net.graph, CoreLimits(cores_per_chip=4, max_chips=1))
    small = map_cores(net.graph, CoreLimits(neurons_per_core=256))
    assert small.meta["mapping"]["populations"][1]["cores"] == 8  # 2048 neurons / 256


def test_a_network_that_does_not_fit_is_refused_before_tuning(digits_model: Path,
                                                              digits_calib: Path) -> None:
    """The default preset would simulate tuning candidates for seconds to minutes; the
    feasibility check refuses first, naming the layer, the need and the limit."""
    ticks: list[int] = []
    with pytest.raises(ResourceError, match=r"needs 8 cores = 2 chips, above the limit of 1 "
                                            r"chip\(s\) x 4 cores; the largest layer is 'relu3'"):
        snnc.compile(digits_model, calib=digits_calib, target="loihi", timesteps=8,
                     progress=ticks.append, core_limits=CoreLimits(cores_per_chip=4),
                     max_chips=1)
    assert ticks == []  # no tuning candidate was simulated
