"""Pass contracts (compiler/contracts.py): every pass declares the facts it requires, forbids
and produces; a pipeline out of order is one PassError naming the pass and the missing fact,
raised before any pass runs; an error raised inside a pass carries the pass's name."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

import snnc
from snnc.compiler.contracts import CONVERTED, SYNAPSES, Contract, facts
from snnc.compiler.errors import DataError, InternalError, PassError
from snnc.compiler.loihi.lower_synapses import lower_synapses
from snnc.compiler.passes.manager import CONTRACTS, PASSES, PassOptions, run_pipeline
from snnc.frontends.onnx import load_onnx

DIGITS = Path(__file__).resolve().parent.parent / "examples" / "digits"
HEAD = ("recognise-activations", "fold-batchnorm", "normalize-thresholds", "convert")


@pytest.fixture(scope="module")
def ann() -> object:
    return load_onnx(DIGITS / "model.onnx")


@pytest.fixture(scope="module")
def calib() -> np.ndarray:
    with np.load(DIGITS / "calib.npz") as f:
        return f["x"][:16]


def test_every_pass_declares_its_contract() -> None:
    assert CONTRACTS.keys() == PASSES.keys()
    for module in ("passes.convert", "passes.shift_bias", "loihi.lower_synapses",
                   "loihi.quantize_weights", "loihi.map_cores"):
        declared = importlib.import_module(f"snnc.compiler.{module}")
        assert CONTRACTS[declared.NAME] is declared.CONTRACT
    assert CONVERTED in CONTRACTS["convert"].produces
    assert SYNAPSES in CONTRACTS["lower-synapses"].produces
    with pytest.raises(ValueError, match="unknown fact"):
        Contract(requires=frozenset({"bogus"}))


@pytest.mark.parametrize("pipeline, culprit, missing", [
    (("lower-synapses",), "lower-synapses", CONVERTED),
    ((*HEAD, "quantize-weights"), "quantize-weights", SYNAPSES),
    ((*HEAD, "map-cores"), "map-cores", SYNAPSES),
    (("recognise-activations", "shift-bias", "convert"), "shift-bias", CONVERTED),
    ((*HEAD, "lower-maxpool"), "lower-maxpool", f"not {CONVERTED}"),
    ((*HEAD, "convert"), "convert", f"not {CONVERTED}"),
])
def test_a_pass_out_of_order_is_refused_before_anything_runs(
        ann: object, calib: np.ndarray, monkeypatch: pytest.MonkeyPatch,
        pipeline: tuple[str, ...], culprit: str, missing: str) -> None:
    def must_not_run(*_: object) -> None:
        raise AssertionError("a pass ran before the pipeline was checked")

    monkeypatch.setitem(PASSES, pipeline[0], must_not_run)
    with pytest.raises(PassError, match=f"pass '{culprit}'") as info:
        run_pipeline(ann, pipeline, PassOptions(calib=calib))  # type: ignore[arg-type]
    assert info.value.pass_name == culprit and info.value.missing == missing
    assert info.value.exit_code == 4


def test_the_api_refuses_a_bad_pipeline_before_tuning(calib: np.ndarray) -> None:
    with pytest.raises(PassError, match="pass 'shift-bias' runs on the spiking network; run "
                       "convert before shift-bias"):
        snnc.compile(DIGITS / "model.onnx", calib=calib, norm="auto",
                     pipeline=("recognise-activations", "shift-bias", "convert"))


def test_a_direct_call_checks_the_same_contract(ann: object) -> None:
    with pytest.raises(PassError, match="lower-synapses.*convert") as info:
        lower_synapses(ann)  # type: ignore[arg-type]
    assert info.value.pass_name == "lower-synapses"


def test_an_error_inside_a_pass_names_the_pass(ann: object) -> None:
    """The user's message is kept as it was (naming the ONNX nodes); the pass comes along as
    `pass_name` and as a note after the message."""
    with pytest.raises(DataError, match=r"node '/2/Relu' \(Relu\)") as info:
        run_pipeline(ann, HEAD, PassOptions())  # type: ignore[arg-type]
    assert info.value.pass_name == "normalize-thresholds"
    assert not str(info.value).startswith("pass")
    assert any("in pass 'normalize-thresholds' (after: recognise-activations, fold-batchnorm)"
               in note for note in info.value.__notes__)


def test_a_bug_inside_a_pass_names_the_pass(ann: object, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    def broken(*_: object) -> None:
        raise KeyError("oops")

    monkeypatch.setitem(PASSES, "fold-batchnorm", broken)
    with pytest.raises(InternalError, match="pass 'fold-batchnorm' failed") as info:
        run_pipeline(ann, ("recognise-activations", "fold-batchnorm"))  # type: ignore[arg-type]
    assert info.value.pass_name == "fold-batchnorm"


def test_a_pass_must_produce_what_it_declares(ann: object, calib: np.ndarray,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PASSES, "convert", lambda g, o: g)
    with pytest.raises(InternalError, match="'convert' did not produce.*converted"):
        run_pipeline(ann, HEAD, PassOptions(calib=calib))  # type: ignore[arg-type]


def test_facts_are_read_off_the_graph(ann: object, calib: np.ndarray) -> None:
    snn = run_pipeline(ann, HEAD, PassOptions(calib=calib))  # type: ignore[arg-type]
    assert facts(ann) == frozenset() and facts(snn) == {CONVERTED}  # type: ignore[arg-type]
    assert facts(lower_synapses(snn)) == {CONVERTED, SYNAPSES}
