"""Byte-level mutation fuzzing of valid ONNX files through `snnc compile`: the command line for
long runs of the fuzzer in tests/fuzz_onnx.py (which tests/test_fuzz.py runs briefly).

    .venv/bin/python benchmarks/fuzz/fuzz_onnx.py --mutants 1000
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from fuzz_onnx import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
