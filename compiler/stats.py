"""Streaming statistics over calibration data: per-channel histograms of positive values that
give any percentile after one pass, without holding the activations in memory."""

from __future__ import annotations

import numpy as np


class NonFiniteError(ValueError):
    """The values to count hold NaN or infinity."""


class PositiveHistogram:
    """Counts of the positive values of each channel in `bins` equal bins over [0, hi[c]).
    When a larger value arrives, hi[c] doubles and pairs of bins merge, so one pass over the
    data is enough; a percentile is then exact to within one bin width (hi[c] / bins, and
    hi[c] < 2 * max[c])."""

    def __init__(self, channels: int, bins: int) -> None:
        if bins & (bins - 1):
            raise ValueError("bins must be a power of two")
        self.bins = bins
        self.counts = np.zeros((channels, bins), dtype=np.int64)
        self.hi = np.zeros(channels, dtype=np.float64)  # 0: no positive value seen yet
        self.max = np.zeros(channels, dtype=np.float64)

    def add(self, values: np.ndarray) -> None:
        """values: (N, C, ...) with C == channels."""
        c = self.counts.shape[0]
        v = np.moveaxis(np.asarray(values), 1, 0).reshape(c, -1)
        batch_max = v.max(axis=1, initial=0.0).astype(np.float64)
        if not np.isfinite(batch_max).all():  # NaN propagates through max
            raise NonFiniteError("NaN or infinite values")
        self.max = np.maximum(self.max, batch_max)
        for ch in np.flatnonzero(batch_max >= self.hi):
            self._grow(ch, batch_max[ch])
        if c == 1 and batch_max[0] > 0 and v.min() >= 0:  # the common case: ReLU outputs
            # zeros land in bin 0 and are taken out again: cheaper than selecting positives
            index = (v[0] * np.float32(self.bins / self.hi[0])).astype(np.int32)
            counts = np.bincount(index, minlength=self.bins + 1)
            counts[self.bins - 1] += counts[self.bins:].sum()  # rounding at the top edge
            counts[0] -= v.size - np.count_nonzero(v)
            self.counts[0] += counts[:self.bins]
            return
        # per channel: bin `bins` (dropped) collects the values that are not positive
        scale = np.divide(self.bins, self.hi, out=np.zeros(c), where=self.hi > 0)
        index = np.minimum((v * scale[:, None].astype(v.dtype)).astype(np.int64), self.bins - 1)
        index[v <= 0] = self.bins
        index += (np.arange(c) * (self.bins + 1))[:, None]
        counts = np.bincount(index.ravel(), minlength=c * (self.bins + 1))
        self.counts += counts.reshape(c, self.bins + 1)[:, :self.bins]

    def _grow(self, ch: int, needed: float) -> None:
        if self.hi[ch] == 0.0:  # first positive value: a range just above it
            self.hi[ch] = needed * 1.0001 if needed > 0 else 0.0
            return
        while self.hi[ch] <= needed:
            merged = self.counts[ch].reshape(-1, 2).sum(axis=1)
            self.counts[ch] = np.concatenate([merged, np.zeros_like(merged)])
            self.hi[ch] *= 2.0

    def percentile(self, p: float) -> np.ndarray:
        """Per channel, the p-th percentile of the positive values (numpy's linear
        definition, to within a bin); 0 where a channel had none."""
        out = np.zeros(self.counts.shape[0])
        for ch, counts in enumerate(self.counts):
            n = int(counts.sum())
            if n == 0:
                continue
            if p >= 100:
                out[ch] = self.max[ch]
                continue
            cum = np.cumsum(counts)
            width = self.hi[ch] / self.bins
            rank = p / 100.0 * (n - 1)  # numpy's linear rule between order statistics
            lo = int(np.floor(rank))
            below = _order_statistic(counts, cum, width, lo)
            above = _order_statistic(counts, cum, width, min(lo + 1, n - 1))
            out[ch] = min(below + (rank - lo) * (above - below), self.max[ch])
        return out


    def mmse_threshold(self, timesteps: int, phi: float = 0.5,
                       candidates: int = 200) -> np.ndarray:
        """Per channel, the theta that minimises the squared error between the positive
        values x and what T steps of an IF neuron starting at phi*theta deliver for them,
        theta/T * clip(floor(x*T/theta + phi), 0, T) (Li et al. 2021's threshold search, here
        over the histogram, for the requested T). 0 where a channel had no positive value."""
        out = np.zeros(self.counts.shape[0])
        fractions = np.linspace(1.0 / candidates, 1.0, candidates)[:, None]
        for ch, counts in enumerate(self.counts):
            if counts.sum() == 0:
                continue
            x = (np.arange(self.bins) + 0.5) * (self.hi[ch] / self.bins)
            theta = fractions * self.max[ch]
            q = np.clip(np.floor(x * (timesteps / theta) + phi), 0, timesteps)
            err = ((x - q * (theta / timesteps)) ** 2 * counts).sum(axis=1)
            out[ch] = theta[int(np.argmin(err)), 0]
        return out


def _order_statistic(counts: np.ndarray, cum: np.ndarray, width: float, j: int) -> float:
    """The j-th smallest counted value, to within its bin (values spread evenly in a bin)."""
    k = int(np.searchsorted(cum, j, side="right"))
    before = cum[k - 1] if k else 0
    return float((k + (j - before + 0.5) / counts[k]) * width)
