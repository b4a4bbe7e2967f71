"""A short run of the byte-mutation fuzzer (tests/fuzz_onnx.py; benchmarks/fuzz/fuzz_onnx.py
runs it long): mutants of valid ONNX files either compile or fail with our own errors; no bug,
crash or hang."""

from __future__ import annotations

from fuzz_onnx import fuzz


def test_mutated_models_only_give_our_errors() -> None:
    counts = fuzz(mutants=150, seed=12345, limit=20.0, chunk=75)
    assert sum(counts.values()) == 150
    assert counts["our-error"] > 0  # the mutations do break models
    assert counts["bug"] == counts["crash"] == counts["hang"] == 0, counts
