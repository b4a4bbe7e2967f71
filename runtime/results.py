"""What one run of a compiled network returns, whichever runner produced it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RunResult:
    """Decoded outputs of one run at `timesteps`."""

    timesteps: int
    outputs: np.ndarray  # (N, *output shape): output potential averaged over the time steps
    spikes: dict[str, np.ndarray]  # IF node -> (N,) messages (spike events) per sample
    # graded IF node -> (N,) counts its messages carried (sum |n|); binary: = spikes
    payload: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def predictions(self) -> np.ndarray:
        return self.outputs.reshape(len(self.outputs), -1).argmax(axis=1)

    @property
    def spikes_per_sample(self) -> float:
        """Messages (spike events) per sample."""
        if not self.spikes:
            return 0.0
        return float(sum(s for s in self.spikes.values()).mean())

    @property
    def payload_per_sample(self) -> float:
        """Counts carried per sample (sum of |n|; = spikes_per_sample without graded layers)."""
        if not self.spikes:
            return 0.0
        return float(sum(self.payload.get(k, s) for k, s in self.spikes.items()).mean())

    def accuracy(self, labels: np.ndarray) -> float:
        return float((self.predictions == labels).mean())
