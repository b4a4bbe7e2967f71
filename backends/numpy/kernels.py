"""Compiled (numba) kernel for the simulator's IF update, with the reference's float32 arithmetic.

`fire` does one IF step for a whole layer in a single pass over memory (the numpy form reads and
writes each potential 4-5 times), for every binary neuron variant the simulator has;
`fire_graded` the same for graded neurons (attr spike_bits), kept apart so that the binary
kernel stays as it was. Without numba the
simulator keeps its numpy form (`AVAILABLE` is False).
"""

from __future__ import annotations

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; this keeps the reference usable
    AVAILABLE = False
else:
    AVAILABLE = True

if AVAILABLE:

    @njit(cache=True, nogil=True, boundscheck=False)
    def fire(v, z, theta, shift, net, hits, out, signed, track, reset_zero):  # noqa: ANN001, ANN201
        """v, z, out, net: (n, m) float32; theta, shift: (m,) float32; hits: (n, m) uint8.
        V += z (+ shift); spike at V >= theta; signed neurons also emit -theta when V < 0 while
        their net count (net) is positive; reset by subtracting the emitted value, or to zero;
        `track` adds the emitted +-1 to net."""
        n, m = v.shape
        use_shift = shift.shape[0] > 0
        for i in range(n):
            for j in range(m):
                x = v[i, j] + z[i, j]
                if use_shift:
                    x = x + shift[j]
                th = theta[j]
                s = np.float32(0.0)
                if x >= th:
                    s = np.float32(1.0)
                elif signed and x < 0 and net[i, j] > 0:
                    s = np.float32(-1.0)
                if s != 0:
                    hits[i, j] += 1
                o = s * th
                if reset_zero:
                    if s > 0:
                        x = np.float32(0.0)
                else:
                    x = x - o
                v[i, j] = x
                out[i, j] = o
                if track:
                    net[i, j] += s

    @njit(cache=True, nogil=True, boundscheck=False)
    def fire_graded(v, z, theta, shift, net, hits, amount, out, k, signed, track):  # noqa: ANN001, ANN201
        """The graded neuron (simulator._Batch._fire_graded, same float32 operations): V += z
        (+ shift); n = floor(V / theta), one less where n * theta > V, clipped to [lo, k] (lo
        = 0, or -min(net, k) for signed neurons); V -= n * theta; out = n * theta; hits counts
        the messages (n != 0), amount adds |n|, `track` adds n to net."""
        n, m = v.shape
        use_shift = shift.shape[0] > 0
        for i in range(n):
            for j in range(m):
                x = v[i, j] + z[i, j]
                if use_shift:
                    x = x + shift[j]
                th = theta[j]
                q = np.floor(x / th)
                if q * th > x:
                    q = q - np.float32(1.0)
                lo = np.float32(0.0)
                if signed:
                    lo = -min(net[i, j], k)
                if q < lo:
                    q = lo
                if q > k:
                    q = k
                if q != 0:
                    hits[i, j] += 1
                    amount[i, j] += np.uint16(abs(q))
                o = q * th
                v[i, j] = x - o
                out[i, j] = o
                if track:
                    net[i, j] += q
