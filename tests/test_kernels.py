"""The conv kernel's strategies (patches per sample, patches of several samples merged into one
product, 1x1 products per sample, the unrolled dense matrix on tiny maps) and its batch split
over threads all give the same result as a direct sum over kernel offsets."""

from __future__ import annotations

import numpy as np
import pytest

from snnc.compiler import parallel
from snnc.compiler.ir.graph import Node
from snnc.compiler.ops import conv as conv_op
from snnc.compiler.ops import opdef


def _direct(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int,
            groups: int) -> np.ndarray:
    """y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] x_pad[n, g*Cg + c, i*s + u, j*s + v]"""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))).astype(np.float64)
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, o, oh, ow)) + b.reshape(1, -1, 1, 1)
    og = o // groups
    for oc in range(o):
        g = oc // og
        for u in range(kh):
            for v in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg, u:u + stride * (oh - 1) + 1:stride,
                           v:v + stride * (ow - 1) + 1:stride]
                y[:, oc] += np.einsum("nchw,c->nhw", patch, w[oc, :, u, v])
    return y


CASES = [  # (n, c, o, size, k, stride, pad, groups)
    (3, 3, 8, 17, 7, 2, 3, 1),      # stem: few channels, big map, strided
    (2, 8, 8, 40, 1, 1, 0, 1),      # 1x1 on a large map: one product per sample
    (5, 8, 4, 9, 1, 2, 0, 1),       # strided 1x1 on a small map: patches
    (40, 6, 6, 5, 3, 1, 1, 3),      # grouped, many samples per product
    (7, 4, 4, 6, 3, 2, 1, 4),       # depthwise, strided
    (300, 4, 6, 4, 3, 1, 1, 1),     # tiny map: unrolled from the second call on
    (3, 128, 160, 5, 3, 1, 1, 1),   # large weights on a small map: samples merged per product
]


@pytest.mark.parametrize("n, c, o, size, k, stride, pad, groups", CASES)
@pytest.mark.parametrize("threads", ["1", "2"])
def test_conv_matches_direct_sum(monkeypatch: pytest.MonkeyPatch, n: int, c: int, o: int,
                                 size: int, k: int, stride: int, pad: int, groups: int,
                                 threads: str) -> None:
    monkeypatch.setenv("SNNC_THREADS", threads)
    monkeypatch.setattr(conv_op, "_MIN_WORK", 1)  # split even these small batches
    rng = np.random.default_rng(0)
    x = (rng.random((n, c, size, size)) < 0.3).astype(np.float32)
    w = rng.normal(size=(o, c // groups, k, k)).astype(np.float32)
    b = rng.normal(size=o).astype(np.float32)
    node = Node("conv1", "conv", ("x",), attrs={"strides": [stride] * 2, "pads": [pad] * 4,
                                                "dilations": [1, 1], "groups": groups},
                params={"weight": w, "bias": b})
    node = node.replace(shape=opdef("conv").infer_shape(node, [(c, size, size)]))
    expected = _direct(x, w, b, stride, pad, groups)
    for _ in range(3):  # the third call of a tiny-map conv uses its unrolled matrix
        y = opdef("conv").evaluate(node, [x])
        assert y.dtype == np.float32 and y.shape == expected.shape
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_tiny_map_conv_is_unrolled_and_wide_one_is_not() -> None:
    rng = np.random.default_rng(0)
    tiny = Node("c", "conv", ("x",), attrs={"strides": [1, 1], "pads": [1] * 4,
                                            "dilations": [1, 1], "groups": 1},
                params={"weight": rng.normal(size=(8, 8, 3, 3)).astype(np.float32),
                        "bias": np.zeros(8, np.float32)}, shape=(8, 4, 4))
    wide = tiny.replace(shape=(8, 16, 16))
    assert conv_op._unrolled(tiny, (8, 4, 4)) is None  # first call: not worth it yet
    assert conv_op._unrolled(tiny, (8, 4, 4)).shape == (8 * 16, 8 * 16)
    assert conv_op._unrolled(wide, (8, 16, 16)) is None
    assert conv_op._unrolled(wide, (8, 16, 16)) is None


def test_split_rows_covers_every_row_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNNC_THREADS", "3")
    seen = np.zeros(100, dtype=int)

    def visit(rows: slice) -> None:
        seen[rows] += 1
        parallel.split_rows(visit_inner, 4)  # nested: runs inline

    def visit_inner(rows: slice) -> None:
        assert rows == slice(0, 4)

    parallel.split_rows(visit, 100)
    assert (seen == 1).all()
    assert list(parallel.parallel_map(lambda i: i * i, [1, 2, 3, 4])) == [1, 4, 9, 16]
