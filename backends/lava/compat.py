"""Make lava-nc 0.10.0 work on Python 3.11 and numpy >= 2.4, and fast enough at real size,
without editing site-packages. Everything is applied at import time by `apply()`:

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
4. Lava's `Conv` CPU models call `lava.proc.conv.utils.conv`, which (torch being disabled
   there) runs scipy's `convolve2d` once per pair of input and output channels every step:
   about 260,000 calls, 3 s, per step for a 512-channel 3x3 layer. And on numpy 2 it fails for
   128 or more input channels: the models pass `groups` as an int8 numpy scalar and
   `input_.shape[-1] % groups` raises OverflowError. We replace that function by `fast_conv`,
   the same convolution as one im2col matrix product in float64 (exact for integers below
   2**53, so the fixed-point results are bit-identical; same shapes, same exceptions, same
   `astype(weight.dtype)`; every geometry value made a Python int first). The models look the
   function up as `utils.conv` at every step, and Lava's workers are forked from this process
   after `apply()`, so they run the replacement too (tests/test_lava.py checks both). In a
   worker (any process but the one that called `apply()`) its first call limits BLAS to one
   thread: Lava runs every process at once, and the spinning BLAS threads of a dozen Conv
   workers on two cores made a VGG-16 step 6x slower (300 ms against 50).
5. Lava's `DelaySparse` models rebuild, every step, the stack of one weight matrix per delay
   value (`get_delay_wgts_mat`: a masked multiply per delay, then zeroing the delayed entries
   of a copy by fancy assignment): 1-2 s per step for each 6.4M-synapse strided shortcut of a
   ResNet-18 at 224x224. When every synapse has the same delay and `delays` has the weights'
   own sparsity pattern (as the Lava backend builds them), that stack is the weight matrix
   placed at block `delay`: `fast_delay_wgts_mat` builds it from the weights' arrays in
   O(rows), the same matrix (values, positions and order), so the products are unchanged; any
   other case goes to Lava's own function.

6. lava-dl 0.6.0 (netx) declares python<3.11 too. `lava.lib.dl.netx.hdf5` imports
   `lava.lib.dl.slayer` for one helper (resonator neuron parameters), and slayer's package
   `__init__` imports its object-detection subpackage, which needs OpenCV, torchvision and
   Pillow (none of which netx uses; a second torchvision build would also pin another torch).
   The same meta-path hook loads slayer's `__init__` from its own source with that one import
   made optional: without those packages `slayer.obd` is absent, everything else is as
   shipped.

Why not pin numpy < 2.4: the rest of snnc (and the other backends) run on the current numpy,
and a pin would downgrade it for everyone just to serve one backend; the shims are local.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

_VAR_MODEL = "lava.magma.compiler.var_model"
_BAD_DEFAULT = ": ByteEncoder = ByteEncoder()"
_GOOD_DEFAULT = ": ByteEncoder = _snnc_field(default_factory=ByteEncoder)"
_SLAYER = "lava.lib.dl.slayer"
_OBD_IMPORT = "from . import object_detection as obd"
_OBD_OPTIONAL = "_snnc_optional(globals(), 'obd', __name__ + '.object_detection')"
_REWRITES = {_VAR_MODEL: (_BAD_DEFAULT, _GOOD_DEFAULT), _SLAYER: (_OBD_IMPORT, _OBD_OPTIONAL)}


def _optional_import(namespace: dict[str, Any], name: str, module: str) -> None:
    """`namespace[name] = import module`, skipped when one of its own dependencies is missing."""
    try:
        namespace[name] = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.startswith("lava"):
            raise


class _PatchedSourceLoader(importlib.abc.Loader):
    def __init__(self, origin: str, rewrite: tuple[str, str]) -> None:
        self.origin = origin
        self.rewrite = rewrite

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # default module creation

    def exec_module(self, module: ModuleType) -> None:
        source = Path(self.origin).read_text(encoding="utf-8")
        module.__dict__["_snnc_field"] = dataclasses.field
        module.__dict__["_snnc_optional"] = _optional_import
        code = compile(source.replace(*self.rewrite), self.origin, "exec")
        exec(code, module.__dict__)  # noqa: S102 - lava's own source, one literal rewrite


class _VarModelFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in _REWRITES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=_PatchedSourceLoader(spec.origin, _REWRITES[fullname]),
            submodule_search_locations=spec.submodule_search_locations)


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


def fast_conv(input_: np.ndarray, weight: np.ndarray, kernel_size: Any, stride: Any,
              padding: Any, dilation: Any, groups: int) -> np.ndarray:
    """`lava.proc.conv.utils.conv` without the per-channel-pair loop: input (X, Y, C), weight
    (C_out, kX, kY, C_in / groups), Lava's true convolution (the kernel is flipped), padding,
    stride and dilation in (X, Y) order; the result (X_out, Y_out, C_out) as weight.dtype.

    Each output is sum_{u, v, c} w[k, u, v, c] * x_pad[x*sX + (kX-1-u)*dX, y*sY + (kY-1-v)*dY, c]
    (scipy's convolve2d 'valid' of the dilated kernel, subsampled by the stride): im2col in the
    kernel's own (u, v, c) order, then one float64 matrix product (batched over the groups).
    Nothing is cached between calls, so a weight changed in place (Var.set) takes effect as
    in Lava's own function."""
    from lava.proc.conv.utils import output_shape

    kx, ky = int(kernel_size[0]), int(kernel_size[1])
    sx, sy = int(stride[0]), int(stride[1])
    px, py = int(padding[0]), int(padding[1])
    dx, dy = int(dilation[0]), int(dilation[1])
    groups = int(groups)
    out_shape = output_shape(input_.shape, weight.shape[0], (kx, ky), (sx, sy), (px, py),
                             (dx, dy))
    n_in, n_out = input_.shape[-1], weight.shape[0]
    if n_in % groups != 0:
        raise Exception(f'Expected number of in_channels to be divisible by group.'
                        f'Found {weight.shape[3] = } and {groups = }.')
    if n_out % groups != 0:
        raise Exception(f'Expected number of out_channels to be divisible by group.'
                        f'Found {weight.shape[0] = } and {groups = }.')
    _one_blas_thread_in_workers()
    xo, yo = int(out_shape[0]), int(out_shape[1])
    c_grp, k_grp = n_in // groups, n_out // groups
    x = np.pad(np.asarray(input_, np.float64), ((px, px), (py, py), (0, 0)))
    # win[x, y, c, i, j] = x_pad[x*sX + i*dX, y*sY + j*dY, c]; flipped taps: (u, v) = (kX-1-i, ..)
    win = np.lib.stride_tricks.sliding_window_view(
        x, (dx * (kx - 1) + 1, dy * (ky - 1) + 1), axis=(0, 1))
    win = win[:xo * sx:sx, :yo * sy:sy, :, ::-dx, ::-dy][:xo, :yo]
    cols = win.reshape(xo * yo, groups, c_grp, kx, ky).transpose(1, 0, 3, 4, 2)
    cols = cols.reshape(groups, xo * yo, kx * ky * c_grp)  # (g, P, (u, v, c)), a copy
    w = weight.reshape(groups, k_grp, kx * ky * c_grp)  # (g, k, (u, v, c)), a view
    if groups == 1:
        out = cols[0] @ np.asarray(w[0], np.float64).T
    else:
        out = np.matmul(cols, np.asarray(w, np.float64).transpose(0, 2, 1))  # (g, P, k)
        out = out.transpose(1, 0, 2).reshape(xo * yo, n_out)
    return out.reshape(xo, yo, n_out).astype(weight.dtype)


_state = {"applied_in": -1, "limited_in": -1}  # process ids


def _one_blas_thread_in_workers() -> None:
    pid = os.getpid()
    if pid in (_state["applied_in"], _state["limited_in"]):
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
    _state["limited_in"] = pid


def _patch_conv() -> None:
    from lava.proc.conv import utils

    if utils.conv is not fast_conv:
        utils.conv = fast_conv


def _single_delay(weights: Any, delays: Any) -> int | None:
    """The one delay of every synapse, if `delays` has exactly the weights' CSR pattern."""
    import scipy.sparse as sp

    if not (sp.isspmatrix_csr(weights) and sp.isspmatrix_csr(delays)
            and weights.shape == delays.shape and delays.nnz == weights.nnz > 0
            and np.array_equal(weights.indptr, delays.indptr)
            and np.array_equal(weights.indices, delays.indices)):
        return None
    first = int(delays.data[0])
    return first if np.all(delays.data == first) else None


def fast_delay_wgts_mat(weights: Any, delays: Any, max_delay: int) -> Any:
    """Lava's `AbstractPyDelaySparseModel.get_delay_wgts_mat`: the (n_out * (max_delay + 1),
    n_in) stack whose block k holds the synapses of delay k; built directly when all
    synapses share one delay k (block k = the weights, every other block empty)."""
    import scipy.sparse as sp

    k = _single_delay(weights, delays) if max_delay > 0 else None
    if k is None or not 0 <= k <= max_delay:
        return _ORIGINAL["delay_wgts_mat"](weights, delays, max_delay)
    n_out, n_in = weights.shape
    ptr = weights.indptr
    indptr = np.concatenate([np.zeros(k * n_out, ptr.dtype), ptr,
                             np.full((max_delay - k) * n_out, ptr[-1], ptr.dtype)])
    return sp.csr_matrix((weights.data, weights.indices, indptr),
                         shape=(n_out * (max_delay + 1), n_in))


_ORIGINAL: dict[str, Any] = {}


def _patch_delay_sparse() -> None:
    from lava.proc.sparse.models import AbstractPyDelaySparseModel as Model

    if "delay_wgts_mat" not in _ORIGINAL:
        _ORIGINAL["delay_wgts_mat"] = Model.get_delay_wgts_mat
        Model.get_delay_wgts_mat = staticmethod(fast_delay_wgts_mat)


@functools.cache
def apply() -> None:
    """Install the fixes (idempotent). Call before importing anything from lava."""
    _install_import_hook()
    _import_message_infrastructure()
    _patch_reshape_port()
    _state["applied_in"] = os.getpid()
    _patch_conv()
    _patch_delay_sparse()
