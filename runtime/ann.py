"""The source ANN's outputs through onnxruntime: the reference for ANN accuracy in `eval`."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from snnc.compiler.errors import DataError


def ann_outputs(model_path: str | os.PathLike[str], x: np.ndarray,
                batch_size: int = 256) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    fixed = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None
    step = fixed or batch_size
    outs = []
    for start in range(0, len(x), step):
        chunk = x[start:start + step]
        if fixed and len(chunk) < fixed:  # a fixed batch size: pad the last chunk
            chunk = np.concatenate([chunk, np.zeros((fixed - len(chunk), *x.shape[1:]),
                                                    x.dtype)])
        try:
            (y,) = session.run(None, {inp.name: chunk})[:1]
        except Exception as exc:  # onnxruntime raises its own exception types
            raise DataError(f"onnxruntime could not run the model on this data: {exc}") from None
        outs.append(y[:len(x[start:start + step])])
    return np.concatenate(outs)
