"""Sliding windows over the spatial axes of an (N, C, *spatial) array, via numpy stride tricks.
Shared by convolution and pooling, for any number of spatial dimensions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def output_size(size: int, kernel: int, stride: int, dilation: int, pad_begin: int,
                pad_end: int, ceil_mode: bool = False) -> int:
    if min(kernel, stride, dilation) < 1 or min(pad_begin, pad_end) < 0:
        raise ValueError(f"kernel {kernel}, stride {stride} and dilation {dilation} must be "
                         f"positive and pads {pad_begin}, {pad_end} not negative")
    span = dilation * (kernel - 1) + 1
    room = size + pad_begin + pad_end - span
    if not ceil_mode:
        return room // stride + 1
    out = -(-room // stride) + 1
    # the last window must start inside the input or the leading padding (ONNX/PyTorch rule)
    if out > 1 and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def ceil_extra(size: int, kernel: int, stride: int, dilation: int, pad_total: int,
               out: int) -> int:
    """Extra trailing padding needed so that `out` windows fit (ceil mode)."""
    span = dilation * (kernel - 1) + 1
    return max(0, (out - 1) * stride + span - (size + pad_total))


def offset_views(xp: np.ndarray, kernel: Sequence[int], strides: Sequence[int],
                 dilations: Sequence[int], out: Sequence[int]) -> Iterator[np.ndarray]:
    """For each kernel offset, the strided view of a padded (N, C, *spatial) array that the
    offset sees at every output position: (N, C, *out). Reducing over these views touches
    memory in order, unlike a reduction over a sliding-window view's trailing axes."""
    for offset in np.ndindex(*kernel):
        index = tuple(slice(d * dil, d * dil + s * (m - 1) + 1, s)
                      for d, dil, s, m in zip(offset, dilations, strides, out, strict=True))
        yield xp[(slice(None), slice(None), *index)]


def reduce_windows(xp: np.ndarray, kernel: Sequence[int], strides: Sequence[int],
                   dilations: Sequence[int], out: Sequence[int],
                   ufunc: np.ufunc) -> np.ndarray:
    """ufunc-reduce (np.maximum, np.add) every window of a padded array: (N, C, *out)."""
    views = offset_views(xp, kernel, strides, dilations, out)
    acc = np.array(next(views), dtype=np.float32)
    for view in views:
        ufunc(acc, view, out=acc)
    return acc


def windows(x: np.ndarray, kernel: Sequence[int], strides: Sequence[int],
            dilations: Sequence[int]) -> np.ndarray:
    """View (N, C, *out, *kernel) of an already padded (N, C, *spatial) array."""
    nsp = len(kernel)
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilations, strict=True)]
    axes = tuple(range(2, 2 + nsp))
    view = np.lib.stride_tricks.sliding_window_view(x, spans, axis=axes)
    outer = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
    inner = tuple(slice(None, None, d) for d in dilations)
    return view[outer + inner]


def pad_spatial(x: np.ndarray, pads: Sequence[int], value: float = 0.0,
                extra_end: Sequence[int] | None = None) -> np.ndarray:
    """Pad the spatial axes; `pads` is ONNX order (begin..., end...)."""
    nsp = x.ndim - 2
    extra = extra_end or [0] * nsp
    widths = [(pads[i], pads[i + nsp] + extra[i]) for i in range(nsp)]
    if not any(b or e for b, e in widths):
        return x
    # a filled array and one slice assignment: half the time of np.pad on spike maps
    out = np.full((*x.shape[:2], *(d + b + e for d, (b, e) in zip(x.shape[2:], widths,
                                                                    strict=True))),
                  value, dtype=x.dtype)
    out[(slice(None), slice(None), *(slice(b, b + d) for d, (b, _) in zip(x.shape[2:], widths,
                                                                         strict=True)))] = x
    return out
