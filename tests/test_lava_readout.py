"""Sinks read through backends/lava/host_readout.py give what Lava's own `Var.get()` gives for
the stock RingBuffer model (which sends each element as a message of its own), in both modes,
and the files are gone afterwards."""

from __future__ import annotations

import numpy as np
import pytest

from snnc.backends.lava import lava_available

pytestmark = pytest.mark.skipif(not lava_available(), reason="lava-nc is not installed")
STEPS = 7


def _run(fixed: bool, via_file: bool) -> tuple[np.ndarray, object]:
    from snnc.backends.lava import require_lava

    require_lava("the readout test")
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from snnc.backends.lava.host_readout import Readout
    from snnc.backends.lava.runner import LavaSession

    rng = np.random.default_rng(3)
    data = rng.integers(-1000, 1000, (2, 3, STEPS))
    source = Source(data=data if fixed else data / 7.0)
    sink = Sink(shape=(2, 3), buffer=STEPS - 2)  # shorter than the run: it wraps around
    source.s_out.connect(sink.a_in)
    tag = "fixed_pt" if fixed else "floating_pt"
    if not via_file:
        with LavaSession(sink, tag) as lava:
            lava.run(STEPS)
            return np.asarray(sink.data.get()), None
    with Readout({"out": sink}, fixed) as readout, \
            LavaSession(sink, tag, models=readout.models) as lava:
        lava.run(STEPS)
        return readout.read("out"), readout


@pytest.mark.parametrize("fixed", [True, False], ids=["fixed_pt", "floating_pt"])
def test_the_file_holds_what_get_returns(fixed: bool) -> None:
    stock, _ = _run(fixed, via_file=False)
    read, readout = _run(fixed, via_file=True)
    assert read.shape == stock.shape == (2, 3, STEPS - 2) and read.dtype == np.float64
    assert np.array_equal(read, stock)
    assert np.any(read != 0)
    assert not readout._folder.exists()  # removed on exit
