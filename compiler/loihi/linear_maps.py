"""Linear maps from one population's spikes to another's input current, kept in the structure
of the ops that make them: a convolution stays a kernel, a fully connected layer a matrix, and
only what is neither (channel shuffles, crops, transposes) becomes a sparse matrix, built from
the op itself (never by probing with unit inputs).

A `ConvMap` is the 2-d cross-correlation with zero padding (spatial axes (H, W); a 1-d map is
viewed as H = 1):

    y[o, i, j] = sum_{c in group(o), ky, kx} K[o, c, ky, kx]
                 * x[c, i*s0 - p0 + ky*d0, j*s1 - p1 + kx*d1]

Ops between populations compose into one map per source. Two windows compose into one
(`compose`), the formula the Loihi path shares everywhere (Lava Conv, netx conv, core counts):

    kernel offsets t = j*dB*sA + k*dA,   stride s = sA*sB,   begin pad p = pB*sA + pA

which is exact when every position that the outer window reads outside its input is computed by
the inner one from padding alone (e.g. 2x2 average pooling, then a 3x3 conv with pad 1: one 6x6
window, stride 2, pad 2). Otherwise, and for ops that are not windows, the maps become CSR
matrices (scipy.sparse); a map's `shape` is the value's per-sample shape (flatten and reshape
change only that view: both keep C-order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

Shape = tuple[int, ...]


@dataclass(frozen=True, eq=False)
class ConvMap:
    kernel: np.ndarray  # (C_out, C_in / groups, kH, kW), float64
    groups: int
    strides: tuple[int, int]
    pads: tuple[int, int]  # begin pads; the end follows from out_chw
    dilations: tuple[int, int]
    in_chw: tuple[int, int, int]
    out_chw: tuple[int, int, int]
    shape: Shape  # the value's shape (a view of out_chw)

    @property
    def n_in(self) -> int:
        return math.prod(self.in_chw)

    @property
    def n_out(self) -> int:
        return math.prod(self.out_chw)

    @property
    def depthwise(self) -> bool:
        c = self.in_chw[0]
        return self.groups == c and self.out_chw[0] == c

    def end_pads(self) -> tuple[int, int]:
        """Trailing zero padding that makes the output size out_chw (may be negative: the
        last input rows are never read)."""
        kh, kw = self.kernel.shape[2:]
        return tuple(  # type: ignore[return-value]
            (self.out_chw[1 + a] - 1) * self.strides[a] + self.dilations[a] * (k - 1) + 1
            - self.in_chw[1 + a] - self.pads[a] for a, k in enumerate((kh, kw)))


@dataclass(frozen=True, eq=False)
class MatrixMap:
    matrix: Any  # np.ndarray (dense) or scipy.sparse.csr_matrix, (n_out, n_in)
    in_shape: Shape
    shape: Shape

    @property
    def n_in(self) -> int:
        return math.prod(self.in_shape)

    @property
    def n_out(self) -> int:
        return math.prod(self.shape)

    @property
    def dense(self) -> bool:
        return isinstance(self.matrix, np.ndarray)


LinearMap = ConvMap | MatrixMap


def as_chw(shape: Shape) -> tuple[int, int, int] | None:
    """The (C, H, W) view of a per-sample shape that a ConvMap can slide over, if any."""
    if len(shape) == 3:
        return (int(shape[0]), int(shape[1]), int(shape[2]))
    if len(shape) == 2:
        return (int(shape[0]), 1, int(shape[1]))
    return None


def identity(shape: Shape) -> LinearMap:
    chw = as_chw(shape)
    if chw is None:
        n = math.prod(shape)
        return MatrixMap(sp.identity(n, dtype=np.float64, format="csr"), shape, shape)
    return ConvMap(np.ones((chw[0], 1, 1, 1)), chw[0], (1, 1), (0, 0), (1, 1), chw, chw, shape)


def view(m: LinearMap, shape: Shape) -> LinearMap:
    """The same map with the value reshaped (flatten, reshape: C order is kept)."""
    return replace(m, shape=tuple(int(d) for d in shape))


# ---------------------------------------------------------------------------- conversions

def taps(n_out: int, n_in: int, stride: int, pad: int, offset: int) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """Output positions whose tap at `offset` lands inside the input, and those input
    positions."""
    out = np.arange(n_out)
    pos = out * stride - pad + offset
    ok = (pos >= 0) & (pos < n_in)
    return out[ok], pos[ok]


def to_csr(m: LinearMap) -> sp.csr_matrix:
    if isinstance(m, MatrixMap):
        return sp.csr_matrix(m.matrix)
    co, ho, wo = m.out_chw
    ci, h, w = m.in_chw
    g = m.groups
    cog, cig = co // g, ci // g
    rows, cols, vals = [], [], []
    kh, kw = m.kernel.shape[2:]
    o_ch = np.arange(co).reshape(g, cog, 1)
    i_ch = (np.arange(g).reshape(g, 1, 1) * cig + np.arange(cig).reshape(1, 1, cig))
    k = m.kernel.reshape(g, cog, cig, kh, kw)
    for ky in range(kh):
        oy, iy = taps(ho, h, m.strides[0], m.pads[0], ky * m.dilations[0])
        for kx in range(kw):
            ox, ix = taps(wo, w, m.strides[1], m.pads[1], kx * m.dilations[1])
            val = k[:, :, :, ky, kx]
            nz = val != 0
            if not nz.any() or not len(oy) or not len(ox):
                continue
            gi, oi, ii = np.nonzero(nz)
            out_c = o_ch[gi, oi, 0]
            in_c = i_ch[gi, 0, ii]
            pos_o = (oy[:, None] * wo + ox[None, :]).reshape(-1)
            pos_i = (iy[:, None] * w + ix[None, :]).reshape(-1)
            rows.append((out_c[:, None] * ho * wo + pos_o[None, :]).reshape(-1))
            cols.append((in_c[:, None] * h * w + pos_i[None, :]).reshape(-1))
            vals.append(np.repeat(val[gi, oi, ii], len(pos_o)))
    if not rows:
        return sp.csr_matrix((m.n_out, m.n_in), dtype=np.float64)
    coo = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(m.n_out, m.n_in))
    return coo.tocsr()


def as_matrix(m: LinearMap) -> MatrixMap:
    if isinstance(m, MatrixMap):
        return m
    return MatrixMap(to_csr(m), m.in_chw, m.shape)


def full_kernel(m: ConvMap) -> np.ndarray:
    """The kernel with its groups expanded: (C_out, C_in, kH, kW)."""
    co, ci = m.out_chw[0], m.in_chw[0]
    if m.groups == 1:
        return m.kernel
    cog, cig = co // m.groups, ci // m.groups
    full = np.zeros((co, ci, *m.kernel.shape[2:]))
    for g in range(m.groups):
        full[g * cog:(g + 1) * cog, g * cig:(g + 1) * cig] = m.kernel[g * cog:(g + 1) * cog]
    return full


# ---------------------------------------------------------------------------- composition

def _exact(outer: ConvMap, inner: ConvMap) -> bool:
    """Whether the composed window is exact: wherever `outer` reads outside its input, the
    inner window of that position reads only the inner input's padding."""
    kh, kw = outer.kernel.shape[2:]
    ika, ikb = inner.kernel.shape[2:]
    for a, (k_out, k_in) in enumerate(((kh, ika), (kw, ikb))):
        n_mid, n_in = inner.out_chw[1 + a], inner.in_chw[1 + a]
        lo = -outer.pads[a]
        hi = (outer.out_chw[1 + a] - 1) * outer.strides[a] - outer.pads[a] + \
            (k_out - 1) * outer.dilations[a]
        s, p, d = inner.strides[a], inner.pads[a], inner.dilations[a]
        if lo < 0 and -s - p + (k_in - 1) * d >= 0:
            return False
        if hi >= n_mid and n_mid * s - p < n_in:
            return False
    return True


def _compose_kernels(outer: ConvMap, inner: ConvMap) -> tuple[np.ndarray, int,
                                                              tuple[int, int]]:
    """(kernel, groups, dilations) of outer after inner, offsets in units of the dilation."""
    kbh, kbw = outer.kernel.shape[2:]
    kah, kaw = inner.kernel.shape[2:]
    step_b = [outer.dilations[a] * inner.strides[a] for a in range(2)]
    step_a = list(inner.dilations)
    dil = []
    for a, (kb, ka) in enumerate(((kbh, kah), (kbw, kaw))):
        d = math.gcd(step_b[a] if kb > 1 else 0, step_a[a] if ka > 1 else 0)
        dil.append(d or 1)
    size = [((kb - 1) * step_b[a] + (ka - 1) * step_a[a]) // dil[a] + 1
            for a, (kb, ka) in enumerate(((kbh, kah), (kbw, kaw)))]
    if inner.depthwise:  # column c of the outer kernel convolves with inner channel c
        groups = outer.groups
        co, cig = outer.kernel.shape[:2]
        cog = co // groups
        chan = (np.arange(co)[:, None] // cog) * cig + np.arange(cig)[None, :]
        a_k = inner.kernel[chan, 0]  # (co, cig, kah, kaw)
        b_k = outer.kernel
        mult = np.multiply
    elif outer.depthwise:  # row c of the inner kernel is scaled by outer channel c's window
        groups = inner.groups
        a_k = inner.kernel
        b_k = outer.kernel  # (c, 1, kb, kb) broadcasts over inner's input channels
        mult = np.multiply
    else:
        groups = 1
        a_k, b_k = full_kernel(inner), full_kernel(outer)
        mult = np.matmul
    out = None
    for jy in range(kbh):
        for jx in range(kbw):
            for ky in range(kah):
                for kx in range(kaw):
                    term = mult(b_k[:, :, jy, jx], a_k[:, :, ky, kx])
                    if out is None:
                        out = np.zeros((*term.shape, *size))
                    ty = (jy * step_b[0] + ky * step_a[0]) // dil[0]
                    tx = (jx * step_b[1] + kx * step_a[1]) // dil[1]
                    out[:, :, ty, tx] += term
    assert out is not None
    return out, groups, (dil[0], dil[1])


def compose(outer: ConvMap, inner: LinearMap) -> LinearMap:
    """outer after inner (outer's input is inner's value)."""
    if isinstance(inner, ConvMap) and inner.out_chw == outer.in_chw and _exact(outer, inner):
        kernel, groups, dil = _compose_kernels(outer, inner)
        pads = (outer.pads[0] * inner.strides[0] + inner.pads[0],
                outer.pads[1] * inner.strides[1] + inner.pads[1])
        strides = (outer.strides[0] * inner.strides[0], outer.strides[1] * inner.strides[1])
        return ConvMap(kernel, groups, strides, pads, dil, inner.in_chw, outer.out_chw,
                       outer.shape)
    return matmul(to_csr(outer), inner, outer.shape)


def matmul(left: Any, inner: LinearMap, shape: Shape) -> MatrixMap:
    """A matrix (dense or CSR, (n_out, n_value)) after `inner`."""
    if isinstance(inner, ConvMap):
        if isinstance(left, np.ndarray):
            return MatrixMap(conv_adjoint(inner, left), inner.in_chw, shape)
        inner = as_matrix(inner)
    right = inner.matrix
    if isinstance(left, np.ndarray) or isinstance(right, np.ndarray):
        product = left @ right
        product = np.asarray(product.todense() if sp.issparse(product) else product)
    else:
        product = sp.csr_matrix(left @ right)
    return MatrixMap(product, inner.in_shape, shape)


def conv_adjoint(m: ConvMap, left: np.ndarray) -> np.ndarray:
    """left @ M for a dense (r, n_out) matrix: each row pulled back through the window."""
    r = left.shape[0]
    co, ho, wo = m.out_chw
    ci, h, w = m.in_chw
    g = m.groups
    cog, cig = co // g, ci // g
    rows = left.reshape(r, g, cog, ho, wo)
    k = m.kernel.reshape(g, cog, cig, *m.kernel.shape[2:])
    out = np.zeros((r, g, cig, h, w))
    for ky in range(m.kernel.shape[2]):
        oy, iy = taps(ho, h, m.strides[0], m.pads[0], ky * m.dilations[0])
        for kx in range(m.kernel.shape[3]):
            ox, ix = taps(wo, w, m.strides[1], m.pads[1], kx * m.dilations[1])
            if not len(oy) or not len(ox):
                continue
            part = rows[:, :, :, oy[:, None], ox[None, :]]  # (r, g, cog, |oy|, |ox|)
            out[:, :, :, iy[:, None], ix[None, :]] += np.einsum(
                "rgoyx,goc->rgcyx", part, k[:, :, :, ky, kx])
    return out.reshape(r, ci * h * w)


def add(a: LinearMap, b: LinearMap) -> LinearMap:
    if (isinstance(a, ConvMap) and isinstance(b, ConvMap) and a.strides == b.strides
            and a.pads == b.pads and a.dilations == b.dilations
            and a.kernel.shape[2:] == b.kernel.shape[2:] and a.in_chw == b.in_chw
            and a.out_chw == b.out_chw):
        if a.groups == b.groups:
            return replace(a, kernel=a.kernel + b.kernel)
        return replace(a, kernel=full_kernel(a) + full_kernel(b), groups=1)
    ma, mb = as_matrix(a), as_matrix(b)
    total = ma.matrix + mb.matrix
    total = np.asarray(total) if not sp.issparse(total) else sp.csr_matrix(total)
    return MatrixMap(total, ma.in_shape, a.shape)


def scale_rows(m: LinearMap, scale: np.ndarray) -> LinearMap:
    """diag(scale) after m; `scale` broadcasts against the value's shape."""
    full = np.broadcast_to(np.asarray(scale, np.float64), m.shape)
    chw = as_chw(m.shape) if isinstance(m, ConvMap) else None
    if chw is not None and chw == m.out_chw:
        per_c = full.reshape(chw[0], -1)
        if np.all(per_c == per_c[:, :1]):
            return replace(m, kernel=m.kernel * per_c[:, 0].reshape(-1, 1, 1, 1))
    mm = as_matrix(m)
    flat = full.reshape(-1)
    if mm.dense:
        return replace(mm, matrix=mm.matrix * flat[:, None])
    return replace(mm, matrix=sp.csr_matrix(sp.diags(flat) @ mm.matrix))


def window(kernel: np.ndarray, groups: int, strides: Any, pads: Any, dilations: Any,
           in_shape: Shape, out_shape: Shape) -> ConvMap | None:
    """The ConvMap of a 1-d or 2-d window op (conv, pooling, pad); None for other ranks."""
    in_chw, out_chw = as_chw(in_shape), as_chw(out_shape)
    if in_chw is None or out_chw is None:
        return None
    if len(in_shape) == 2:  # 1-d: H = 1
        kernel = kernel.reshape(*kernel.shape[:2], 1, kernel.shape[-1])
        strides, pads, dilations = (1, *strides), (0, pads[0]), (1, *dilations)
    return ConvMap(np.asarray(kernel, np.float64), int(groups),
                   (int(strides[0]), int(strides[1])), (int(pads[0]), int(pads[1])),
                   (int(dilations[0]), int(dilations[1])), in_chw, out_chw,
                   tuple(int(d) for d in out_shape))
