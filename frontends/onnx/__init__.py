"""The ONNX frontend: `load_onnx(path)` returns an snnc IR graph."""

from __future__ import annotations

import os
from pathlib import Path

from snnc.compiler.ir.graph import Graph

from .importer import import_model, supported_ops
from .loader import prepare, read_model


def load_onnx(path: str | os.PathLike[str],
              input_shape: tuple[int, ...] | None = None) -> Graph:
    """Read, check and import an ONNX file."""
    model = prepare(read_model(path))
    return import_model(model, input_shape, name=Path(path).stem)


__all__ = ["load_onnx", "import_model", "supported_ops", "prepare", "read_model"]
