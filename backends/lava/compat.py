"""Make lava-nc 0.10.0 importable on Python 3.11 and numpy >= 2.4, without editing site-packages.

Two known incompatibilities, both fixed here at import time:

1. `lava/magma/compiler/var_model.py` declares dataclass fields with an instance default
   (`x: ByteEncoder = ByteEncoder()`). Python 3.11 rejects mutable (unhashable) dataclass
   defaults, so the module fails to import. A meta-path hook loads that one module from its own
   source with the defaults rewritten to `field(default_factory=ByteEncoder)`; the patched code
   is compiled in memory (no .pyc is written next to the original).
2. `ReshapePort.get_transform_func_fwd/bwd` call `np.reshape(a, newshape=...)`, a keyword numpy
   2.4 removed. We replace both methods with positional-shape versions (valid on every numpy).

3. (found here) lava's message infrastructure calls `multiprocessing.set_start_method('fork')`
   at import and fails if anything in the process already fixed the start method. We import
   that module with a tolerant set_start_method (force 'fork', the Linux default anyway).

Why not pin numpy < 2.4: the rest of snnc (and the other backends) run on the current numpy,
and a pin would downgrade it for everyone just to serve one backend; the two shims are local.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

_VAR_MODEL = "lava.magma.compiler.var_model"
_BAD_DEFAULT = ": ByteEncoder = ByteEncoder()"
_GOOD_DEFAULT = ": ByteEncoder = _snnc_field(default_factory=ByteEncoder)"


class _PatchedSourceLoader(importlib.abc.Loader):
    def __init__(self, origin: str) -> None:
        self.origin = origin

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # default module creation

    def exec_module(self, module: ModuleType) -> None:
        source = Path(self.origin).read_text(encoding="utf-8")
        module.__dict__["_snnc_field"] = dataclasses.field
        code = compile(source.replace(_BAD_DEFAULT, _GOOD_DEFAULT), self.origin, "exec")
        exec(code, module.__dict__)  # noqa: S102 - lava's own source, one literal rewrite


class _VarModelFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != _VAR_MODEL:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=_PatchedSourceLoader(spec.origin))


def _install_import_hook() -> None:
    if not any(isinstance(f, _VarModelFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _VarModelFinder())


def _patch_reshape_port() -> None:
    from lava.magma.core.process.ports.ports import ReshapePort

    def fwd(self: Any) -> functools.partial:
        return functools.partial(_reshape, shape=tuple(self.shape))

    def bwd(self: Any) -> functools.partial:
        return functools.partial(_reshape, shape=tuple(self.old_shape))

    ReshapePort.get_transform_func_fwd = fwd
    ReshapePort.get_transform_func_bwd = bwd


def _reshape(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.reshape(a, shape)


def _import_message_infrastructure() -> None:
    import multiprocessing

    original = multiprocessing.set_start_method

    def tolerant(method: str, force: bool = False) -> None:
        original(method, force=True)

    multiprocessing.set_start_method = tolerant
    try:
        import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
    finally:
        multiprocessing.set_start_method = original


@functools.cache
def apply() -> None:
    """Install the fixes (idempotent). Call before importing anything from lava."""
    _install_import_hook()
    _import_message_infrastructure()
    _patch_reshape_port()
