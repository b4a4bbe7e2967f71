"""Data files: `.npz` with `x` (float32, NCHW or NF) and optional `y` (integer labels)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from snnc.compiler.errors import DataError, InputFileError


def load_data(path: str | os.PathLike[str], need_labels: bool = False,
              min_samples: int = 1) -> tuple[np.ndarray, np.ndarray | None]:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such data file (expected an .npz with 'x' and 'y')")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputFileError(f"{path}: not a readable .npz file ({exc})") from None
    if "x" not in arrays:
        raise DataError(f"{path}: has arrays {sorted(arrays)}, but no 'x' (the inputs)")
    x = arrays["x"]
    if x.dtype.kind not in "fiu":
        raise DataError(f"{path}: 'x' has dtype {x.dtype}; expected float32")
    if x.ndim < 2 or len(x) < min_samples:
        raise DataError(f"{path}: 'x' has shape {list(x.shape)}; expected at least "
                        f"{min_samples} sample(s) as [N, C, H, W] or [N, F]")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: 'x' contains NaN or Inf")
    y = arrays.get("y")
    if y is None:
        if need_labels:
            raise DataError(f"{path}: has no 'y' (integer labels), which accuracy needs")
        return x, None
    y = np.asarray(y)
    if y.dtype.kind not in "iu" or y.shape != (len(x),):
        raise DataError(f"{path}: 'y' must be {len(x)} integer labels, got dtype {y.dtype} "
                        f"shape {list(y.shape)}")
    return x, y.astype(np.int64)
