"""A harder 32x32 task built procedurally from scikit-learn's 8x8 digits ("cluttered digits").

    .venv/bin/python benchmarks/deep/data.py                 # out/deep/{calib,test}.npz (~15 s)
    .venv/bin/python benchmarks/deep/data.py --train --show out/deep/samples.png

Nothing is downloaded: the source images are `sklearn.datasets.load_digits()` (1797 8x8 digits),
split exactly as benchmarks/peers/make_models.py and examples/digits/train.py do (70/30,
stratified, random_state=0: 1257 source digits for train and calib, 540 for test), so no test
sample shares a source digit, or a clutter fragment, with a training or calibration sample.

Each sample is a 32x32 canvas with

* the target digit: a source digit scaled from 8x8 to s x s pixels (s uniform in 12..20),
  rotated by an angle uniform in +-30 degrees, sheared by up to +-0.2, contrast uniform in
  0.7..1.0, centred at a uniform position that keeps its s x s box on the canvas, resampled
  bilinearly in one affine map;
* clutter, drawn on top with max(): 1-2 fragments of other source digits (another digit
  rendered the same way at 10..18 px, then cut by a random half-plane through it so that only
  30-60% of its ink remains, contrast 0.5..1.0, anywhere on the canvas), and 1-3 anti-aliased
  strokes (straight segments 5-14 px or circular arcs of radius 3-7 px over 60-200 degrees,
  half-width 0.5-1.1 px, intensity 0.5..1.0);
* additive Gaussian noise with a per-sample sigma uniform in 0.10..0.25 (no clipping).

The images are then standardised with the mean and std of the training split (one scalar each).
`make_splits(seed)` is deterministic: each split draws from its own child of
`np.random.SeedSequence(seed)`. Defaults: 10,000 train, 256 calib (from the training source
digits, drawn independently of the training samples), 2,000 test.

Files (npz, compressed): x float32 [N,1,32,32] standardised, y int64; out/deep/calib.npz and
out/deep/test.npz (and out/deep/train.npz with --train; make_models.py rebuilds the training
split in memory instead).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import map_coordinates
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "out" / "deep"
SIZE = 32
SIZES = {"train": 10_000, "calib": 256, "test": 2_000}
SEED = 2026
_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) + 0.5  # pixel centres


def source_digits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The peers' 70/30 split of the 8x8 digits (values in [0, 1]): 'train' and 'test'."""
    digits = load_digits()
    x = digits.images.astype(np.float64) / 16.0
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    return {"train": (x_tr, y_tr), "test": (x_te, y_te)}


def render(img: np.ndarray, size: float, angle: float, shear: float, cy: float,
           cx: float) -> np.ndarray:
    """An 8x8 image mapped onto the canvas: scaled to size px, rotated, sheared, centred at
    (cy, cx); bilinear, zero outside the source."""
    s = size / 8.0
    c, si = np.cos(angle), np.sin(angle)
    # canvas -> source: inverse of (rotate . shear . scale)
    fwd = np.array([[c, -si], [si, c]]) @ np.array([[1.0, shear], [0.0, 1.0]]) * s
    inv = np.linalg.inv(fwd)
    dy, dx = _YY - cy, _XX - cx
    u = inv[0, 0] * dy + inv[0, 1] * dx + 4.0 - 0.5  # source index coordinates
    v = inv[1, 0] * dy + inv[1, 1] * dx + 4.0 - 0.5
    return map_coordinates(img, [u, v], order=1, mode="constant", cval=0.0)


def random_digit(rng: np.random.Generator, img: np.ndarray, lo: float, hi: float,
                 keep_on_canvas: bool) -> np.ndarray:
    size = rng.uniform(lo, hi)
    angle = np.deg2rad(rng.uniform(-30.0, 30.0))
    shear = rng.uniform(-0.2, 0.2)
    if keep_on_canvas:
        cy, cx = rng.uniform(size / 2, SIZE - size / 2, 2)
    else:
        cy, cx = rng.uniform(0.0, SIZE, 2)
    return render(img, size, angle, shear, cy, cx)


def fragment(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Another digit, cut by a random half-plane through it so 30-60% of its ink remains."""
    full = random_digit(rng, img, 10.0, 18.0, keep_on_canvas=False)
    ink = full.sum()
    if ink <= 0:
        return full
    theta = rng.uniform(0, 2 * np.pi)
    proj = np.cos(theta) * _YY + np.sin(theta) * _XX
    on = full > 0.05
    if not on.any():
        return full
    # the cut's offset: the quantile of the ink's projection that keeps the wanted share
    keep = rng.uniform(0.3, 0.6)
    vals, weights = proj[on], full[on]
    order = np.argsort(vals)
    cum = np.cumsum(weights[order]) / weights.sum()
    cut = vals[order][np.searchsorted(cum, 1.0 - keep)]
    soft = np.clip(proj - cut + 0.5, 0.0, 1.0)  # one-pixel soft edge
    return full * soft


def stroke(rng: np.random.Generator) -> np.ndarray:
    """An anti-aliased straight segment or circular arc."""
    if rng.random() < 0.5:
        length = rng.uniform(5.0, 14.0)
        p0 = rng.uniform(0.0, SIZE, 2)
        a = rng.uniform(0, 2 * np.pi)
        t = np.linspace(0.0, 1.0, 48)[:, None]
        pts = p0 + t * length * np.array([np.cos(a), np.sin(a)])
    else:
        r = rng.uniform(3.0, 7.0)
        centre = rng.uniform(0.0, SIZE, 2)
        a0 = rng.uniform(0, 2 * np.pi)
        span = np.deg2rad(rng.uniform(60.0, 200.0))
        t = a0 + np.linspace(0.0, span, 48)
        pts = centre + r * np.stack([np.cos(t), np.sin(t)], axis=1)
    d = np.sqrt((_YY[..., None] - pts[:, 0]) ** 2 + (_XX[..., None] - pts[:, 1]) ** 2).min(-1)
    half_width = rng.uniform(0.5, 1.1)
    return np.clip(half_width + 0.5 - d, 0.0, 1.0) * rng.uniform(0.5, 1.0)


def make_split(rng: np.random.Generator, n: int, src: np.ndarray,
               labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """n raw (unstandardised) samples from the given source digits."""
    x = np.empty((n, 1, SIZE, SIZE), np.float32)
    y = np.empty(n, np.int64)
    for i in range(n):
        k = rng.integers(len(src))
        canvas = random_digit(rng, src[k], 12.0, 20.0, keep_on_canvas=True)
        canvas *= rng.uniform(0.7, 1.0)
        for _ in range(rng.integers(1, 3)):  # 1-2 fragments of other digits
            j = rng.integers(len(src))
            while j == k:
                j = rng.integers(len(src))
            canvas = np.maximum(canvas, fragment(rng, src[j]) * rng.uniform(0.5, 1.0))
        for _ in range(rng.integers(1, 4)):  # 1-3 strokes
            canvas = np.maximum(canvas, stroke(rng))
        canvas += rng.normal(0.0, rng.uniform(0.10, 0.25), canvas.shape)
        x[i, 0], y[i] = canvas, labels[k]
    return x, y


def make_splits(seed: int = SEED, sizes: dict[str, int] | None = None,
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train', 'calib', 'test'}: (x float32 [N,1,32,32] standardised, y int64)."""
    sizes = {**SIZES, **(sizes or {})}
    src = source_digits()
    rngs = dict(zip(("train", "calib", "test"),
                    (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)),
                    strict=True))
    raw = {name: make_split(rngs[name], sizes[name], *src["test" if name == "test" else "train"])
           for name in ("train", "calib", "test")}
    mean, std = float(raw["train"][0].mean()), float(raw["train"][0].std())
    return {k: (((x - mean) / std).astype(np.float32), y) for k, (x, y) in raw.items()}


def save_npz(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.savez_compressed(path, x=np.ascontiguousarray(x, dtype=np.float32),
                        y=y.astype(np.int64))


def write(splits: dict[str, tuple[np.ndarray, np.ndarray]], out: Path,
          train: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("calib", "test") + (("train",) if train else ()):
        save_npz(out / f"{name}.npz", *splits[name])


def show(splits: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, n: int = 40) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x, y = splits["test"]
    fig, axes = plt.subplots(4, n // 4, figsize=(n // 4 * 1.1, 4 * 1.25))
    for ax, img, label in zip(axes.flat, x[:n], y[:n], strict=True):
        ax.imshow(img[0], cmap="gray")
        ax.set_title(str(label), fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--train", action="store_true", help="also write train.npz")
    p.add_argument("--show", type=Path, help="a PNG of 40 test samples")
    args = p.parse_args()
    t0 = time.perf_counter()
    splits = make_splits(args.seed)
    write(splits, args.out, args.train)
    if args.show:
        show(splits, args.show)
    counts = ", ".join(f"{k} {len(v[1])}" for k, v in splits.items())
    print(f"data: {counts}; wrote {args.out} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
