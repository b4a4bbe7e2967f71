"""Sinks read through backends/lava/host_readout.py (LavaSession(..., sinks=).read) give what
Lava's own `Var.get()` gives for the stock RingBuffer model (which sends each element as a
message of its own), in both modes; a sink not given to the session keeps the stock model's
`get()`, and the files are gone afterwards."""

from __future__ import annotations

import numpy as np
import pytest

from snnc.backends.lava import lava_available

pytestmark = pytest.mark.skipif(not lava_available(), reason="lava-nc is not installed")
STEPS = 7


def _run(fixed: bool, via_file: bool) -> tuple[np.ndarray, np.ndarray, object]:
    """(the first sink's buffer, read through the file or by get(); the second sink's, by
    get(); the session)."""
    from snnc.backends.lava import require_lava

    require_lava("the readout test")
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from snnc.backends.lava.runner import LavaSession

    rng = np.random.default_rng(3)
    data = rng.integers(-1000, 1000, (2, 3, STEPS))
    source = Source(data=data if fixed else data / 7.0)
    sink = Sink(shape=(2, 3), buffer=STEPS - 2)  # shorter than the run: it wraps around
    other = Sink(shape=(2, 3), buffer=STEPS)
    source.s_out.connect(sink.a_in)
    source.s_out.connect(other.a_in)
    tag = "fixed_pt" if fixed else "floating_pt"
    with LavaSession(sink, tag, sinks={"out": sink} if via_file else None) as lava:
        lava.run(STEPS)
        first = lava.read("out") if via_file else np.asarray(sink.data.get())
        return first, np.asarray(other.data.get()), lava


@pytest.mark.parametrize("fixed", [True, False], ids=["fixed_pt", "floating_pt"])
def test_the_file_holds_what_get_returns(fixed: bool) -> None:
    stock, stock_other, _ = _run(fixed, via_file=False)
    read, other, lava = _run(fixed, via_file=True)
    assert read.shape == stock.shape == (2, 3, STEPS - 2) and read.dtype == np.float64
    assert np.array_equal(read, stock)
    assert np.any(read != 0)
    assert np.array_equal(other, stock_other) and np.any(other != 0)
    assert not lava.readout._folder.exists()  # removed on exit
