"""Noise, blur and digital corruptions of CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019, arXiv 1903.12261).

Each function maps a float image ``x`` (H x W x 3, values in [0,1]) and a severity 1..5 to a corrupted float image,
drawing all randomness from the ``numpy.random.Generator`` it is given. Severity tables are the **CIFAR-10-C**
ones of the authors' ``make_cifar_c.py`` (not the stronger ImageNet-C ones that the ``imagecorruptions`` package
uses). The operations are re-implemented with numpy/scipy/Pillow: OpenCV and ImageMagick calls of the original are
replaced by equivalents (cv2.filter2D/GaussianBlur -> scipy correlate with 'mirror' borders; ImageMagick's motion
blur -> the same one-sided Gaussian line kernel with edge-clamped taps). Pixels therefore match the released
CIFAR-10-C files in distribution, not bit for bit.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image
from scipy import ndimage

# --------------------------------------------------------------------------- helpers


def blur(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """Gaussian blur over the two spatial axes only (skimage.filters.gaussian with channel_axis=-1)."""
    sig = (sigma, sigma) + (0,) * (x.ndim - 2)
    return ndimage.gaussian_filter(x, sigma=sig, mode=mode, truncate=truncate)


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom into the centre by ``factor`` (bilinear) and crop back to the input size."""
    h, w = x.shape[:2]
    ch, cw = math.ceil(h / factor), math.ceil(w / factor)
    top, left = (h - ch) // 2, (w - cw) // 2
    z = ndimage.zoom(x[top : top + ch, left : left + cw], (factor, factor) + (1,) * (x.ndim - 2), order=1)
    t0, l0 = (z.shape[0] - h) // 2, (z.shape[1] - w) // 2
    return z[t0 : t0 + h, l0 : l0 + w]


def motion_blur_array(x: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick ``-motion-blur radius x sigma + angle``: one-sided Gaussian taps along the angle, edge clamped."""
    width = int(2 * math.ceil(radius) + 1)
    i = np.arange(width)
    k = np.exp(-(i**2) / (2.0 * sigma**2))
    k /= k.sum()
    t = math.radians(angle)
    ox = np.ceil(i * math.cos(t) - 0.5).astype(int)  # ImageMagick: offset.x uses cos, offset.y uses sin
    oy = np.ceil(i * math.sin(t) - 0.5).astype(int)
    h, w = x.shape[:2]
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    out = np.zeros_like(x, dtype=np.float64)
    for kk, dx, dy in zip(k, ox, oy):
        out += kk * x[np.clip(rows + dy, 0, h - 1), np.clip(cols + dx, 0, w - 1)]
    return out


def _pil(x: np.ndarray) -> Image.Image:
    return Image.fromarray(np.uint8(np.rint(np.clip(x, 0, 1) * 255)))


# --------------------------------------------------------------------------- noise


def gaussian_noise(x, s, rng):
    c = [0.04, 0.06, 0.08, 0.09, 0.10][s - 1]
    return x + rng.normal(0.0, c, x.shape)


def shot_noise(x, s, rng):
    c = [500, 250, 100, 75, 50][s - 1]
    return rng.poisson(x * c) / c


def impulse_noise(x, s, rng):
    """Salt-and-pepper on a fraction ``c`` of the values (per channel), half salt, half pepper."""
    c = [0.01, 0.02, 0.03, 0.05, 0.07][s - 1]
    hit, salt = rng.random(x.shape) < c, rng.random(x.shape) < 0.5
    x = x.copy()
    x[hit & salt], x[hit & ~salt] = 1.0, 0.0
    return x


def speckle_noise(x, s, rng):
    c = [0.06, 0.10, 0.12, 0.16, 0.20][s - 1]
    return x + x * rng.normal(0.0, c, x.shape)


# --------------------------------------------------------------------------- blur


def gaussian_blur(x, s, rng):
    return blur(x, [0.4, 0.6, 0.7, 0.8, 1.0][s - 1])


def glass_blur(x, s, rng):
    """Blur, locally displace pixels, blur again. Like the released CIFAR-10-C code, each 'swap' copies the
    neighbour into the pixel (numpy-view semantics of ``a[p], a[q] = a[q], a[p]``), and offsets are drawn from
    ``[-delta, delta)``."""
    sigma, delta, iters = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][s - 1]
    y = np.uint8(np.clip(blur(x, sigma), 0, 1) * 255).astype(np.float64)
    h, w = y.shape[:2]
    hs, ws = range(h - delta, delta, -1), range(w - delta, delta, -1)
    offs = rng.integers(-delta, delta, size=(iters, len(hs), len(ws), 2))
    for it in range(iters):
        for a, hh in enumerate(hs):
            for b, ww in enumerate(ws):
                dx, dy = offs[it, a, b]
                y[hh, ww] = y[hh + dy, ww + dx]
    return blur(y / 255.0, sigma)


def defocus_blur(x, s, rng):
    """Convolve with an anti-aliased disk of the given radius."""
    radius, alias = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][s - 1]
    r = np.arange(-8, 9) if radius <= 8 else np.arange(-math.ceil(radius), math.ceil(radius) + 1)
    xx, yy = np.meshgrid(r, r)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    ks = 1 if radius <= 8 else 2  # cv2.GaussianBlur ksize 3 (or 5) with sigma=alias, reflect-101 borders
    g = np.exp(-(np.arange(-ks, ks + 1) ** 2) / (2 * alias**2))
    g /= g.sum()
    disk = ndimage.correlate1d(ndimage.correlate1d(disk, g, axis=0, mode="mirror"), g, axis=1, mode="mirror")
    return np.stack([ndimage.correlate(x[..., d], disk, mode="mirror") for d in range(x.shape[2])], axis=-1)


def motion_blur(x, s, rng):
    radius, sigma = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][s - 1]
    return motion_blur_array(x, radius, sigma, rng.uniform(-45, 45))


def zoom_blur(x, s, rng):
    """Average of the image and centre zooms by factors 1, 1.01, ... up to the severity's maximum."""
    stop = [1.06, 1.11, 1.16, 1.21, 1.26][s - 1]
    zooms = np.arange(1, stop, 0.01)
    out = sum(clipped_zoom(x, z) for z in zooms)
    return (x + out) / (len(zooms) + 1)


# --------------------------------------------------------------------------- digital


def brightness(x, s, rng):
    """HSV value + c. For fixed hue and saturation RGB is linear in V, so RGB' = RGB * V'/V (grey where V=0)."""
    c = [0.05, 0.1, 0.15, 0.2, 0.3][s - 1]
    v = x.max(axis=2, keepdims=True)
    v2 = np.clip(v + c, 0, 1)
    return np.where(v > 0, x * v2 / np.maximum(v, 1e-12), v2)


def contrast(x, s, rng):
    c = [0.75, 0.5, 0.4, 0.3, 0.15][s - 1]
    m = x.mean(axis=(0, 1), keepdims=True)
    return (x - m) * c + m


def elastic_transform(x, s, rng):
    """Random affine warp of three points, then a smooth random displacement field (scaled to the image side)."""
    size = min(x.shape[:2])
    table = [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)]
    alpha, sigma, aff = [size * v for v in table[s - 1]]  # CIFAR-10-C: fractions of IMSIZE = 32
    h, w, ch = x.shape
    c, sq = np.array([w // 2, h // 2], dtype=np.float64), size // 3
    src = np.array([c + sq, [c[0] + sq, c[1] - sq], c - sq])
    dst = src + rng.uniform(-aff, aff, size=src.shape)
    m = np.linalg.solve(np.c_[dst, np.ones(3)], src).T  # inverse map: output (x, y, 1) -> source (x, y)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    sx, sy = m[0, 0] * xx + m[0, 1] * yy + m[0, 2], m[1, 0] * xx + m[1, 1] * yy + m[1, 2]
    x = np.stack([ndimage.map_coordinates(x[..., d], [sy, sx], order=1, mode="mirror") for d in range(ch)], -1)
    dx = blur(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
    dy = blur(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha
    return np.stack(
        [ndimage.map_coordinates(x[..., d], [yy + dy, xx + dx], order=1, mode="reflect") for d in range(ch)], -1
    )


def pixelate(x, s, rng):
    c = [0.95, 0.9, 0.85, 0.75, 0.65][s - 1]
    h, w = x.shape[:2]
    im = _pil(x).resize((int(w * c), int(h * c)), Image.BOX).resize((w, h), Image.BOX)
    return np.asarray(im, dtype=np.float64) / 255.0


def jpeg_compression(x, s, rng):
    q = [80, 65, 58, 50, 40][s - 1]
    buf = io.BytesIO()
    _pil(x).save(buf, "JPEG", quality=q)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.float64) / 255.0
