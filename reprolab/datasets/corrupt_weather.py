"""Weather corruptions of CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019): fog, snow, frost.

Same conventions and CIFAR-10-C severity tables as :mod:`corrupt_basic`. Fog uses a diamond-square plasma fractal;
snow is a thresholded, zoomed Gaussian layer smeared by a motion blur; frost blends in a random crop of one of the
authors' frost photographs, which the ``imagecorruptions`` package ships as data (read from its folder, the
package itself is not imported: it fails to import with setuptools >= 80 and numpy 2).
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from reprolab.datasets.corrupt_basic import clipped_zoom, motion_blur_array
from reprolab.errors import ReprolabError


def plasma_fractal(n: int, decay: float, rng) -> np.ndarray:
    """n x n (power of two) diamond-square height map in [0,1]; the random amplitude shrinks by ``decay``
    per level (as in the CIFAR-10-C code: offsets are wibble * U(-wibble, wibble), starting at wibble = 100)."""
    m = np.zeros((n, n))
    step, wibble = n, 100.0

    def noisy(a):
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        half = step // 2
        corners = m[0:n:step, 0:n:step]
        sq = corners + np.roll(corners, -1, axis=0)
        sq = sq + np.roll(sq, -1, axis=1)
        m[half:n:step, half:n:step] = noisy(sq)  # square step: centres from 4 corners
        centres = m[half:n:step, half:n:step]
        top = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        m[0:n:step, half:n:step] = noisy(top)  # diamond step, edge midpoints (torus wrap)
        left = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        m[half:n:step, 0:n:step] = noisy(left)
        step //= 2
        wibble /= decay
    m -= m.min()
    return m / m.max()


def fog(x, s, rng):
    amount, decay = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][s - 1]
    h, w = x.shape[:2]
    n = 2 ** math.ceil(math.log2(max(h, w, 2)))
    top = x.max()
    x = x + amount * plasma_fractal(n, decay, rng)[:h, :w, None]
    return x * top / (top + amount)


def snow(x, s, rng):
    loc, scale, zoom, thresh, radius, sigma, keep = [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ][s - 1]
    h, w = x.shape[:2]
    layer = clipped_zoom(rng.normal(loc, scale, size=(h, w)), zoom)
    layer[layer < thresh] = 0
    layer = np.rint(np.clip(layer, 0, 1) * 255)  # the original round-trips the layer through an 8-bit PNG
    layer = np.rint(motion_blur_array(layer, radius, sigma, rng.uniform(-135, -45))) / 255.0
    layer = layer[..., None]
    grey = (x @ np.array([0.299, 0.587, 0.114]))[..., None]
    x = keep * x + (1 - keep) * np.maximum(x, grey * 1.5 + 0.5)
    return x + layer + np.rot90(layer, k=2)


def frost_dir() -> Path:
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or not spec.submodule_search_locations:
        raise ReprolabError(
            "the 'frost' corruption needs the frost photos shipped in the imagecorruptions "
            "package; run: pip install imagecorruptions"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "frost"


@functools.cache
def frost_texture(k: int) -> np.ndarray:
    """Frost photo k (0..4, as the CIFAR-10-C code draws randint(5)), scaled by 0.2 (bilinear), float HxWx3."""
    path = frost_dir() / ["frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg"][k]
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    h, w = a.shape[:2]
    t = torch.from_numpy(a).permute(2, 0, 1)[None]
    t = F.interpolate(t, size=(round(h * 0.2), round(w * 0.2)), mode="bilinear", align_corners=False)
    return t[0].permute(1, 2, 0).numpy().astype(np.float64)


def frost(x, s, rng):
    a, b = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][s - 1]
    tex = frost_texture(int(rng.integers(5)))
    h, w = x.shape[:2]
    if tex.shape[0] <= h or tex.shape[1] <= w:
        raise ReprolabError(f"frost needs images smaller than {tex.shape[:2]}; apply it at CIFAR resolution")
    r0, c0 = rng.integers(0, tex.shape[0] - h), rng.integers(0, tex.shape[1] - w)
    return a * x + b * tex[r0 : r0 + h, c0 : c0 + w]
