"""Streaming percentiles agree with numpy's exact ones to within one histogram bin, whatever
the order and batching of the data."""

from __future__ import annotations

import numpy as np
import pytest

from snnc.compiler.stats import PositiveHistogram


@pytest.mark.parametrize("dist", ["normal", "lognormal", "sparse"])
@pytest.mark.parametrize("p", [50.0, 90.0, 99.0, 99.99, 100.0])
def test_percentile_within_one_bin(dist: str, p: float) -> None:
    rng = np.random.default_rng(0)
    data = {"normal": rng.normal(size=(64, 3, 20)),
            "lognormal": rng.lognormal(0, 1.5, size=(64, 3, 20)),
            "sparse": rng.normal(size=(64, 3, 20)) * (rng.random((64, 3, 20)) < 0.05)}[dist]
    data[:, 1] *= 10  # channels with different ranges
    hist = PositiveHistogram(3, 256)
    for start in range(0, 64, 5):  # growing ranges as batches arrive
        hist.add(np.sort(data[start:start + 5], axis=0) if start % 2 else data[start:start + 5])
    got = hist.percentile(p)
    for c in range(3):
        pos = data[:, c][data[:, c] > 0]
        width = hist.hi[c] / hist.bins
        assert hist.hi[c] < 2 * pos.max() + 1e-9
        assert abs(got[c] - np.percentile(pos, p)) <= width + 1e-9


def test_channels_without_positive_values_give_zero() -> None:
    hist = PositiveHistogram(2, 64)
    hist.add(np.stack([-np.ones((4, 5)), np.arange(20.0).reshape(4, 5)], axis=1))
    assert hist.percentile(99.0)[0] == 0.0
    assert hist.percentile(100.0)[1] == 19.0


def test_bins_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError):
        PositiveHistogram(1, 100)
