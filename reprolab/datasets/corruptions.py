"""CIFAR-10-C-style corruptions generated offline (Hendrycks & Dietterich, ICLR 2019, arXiv 1903.12261).

Dataset names ``cifar10c:<family>:<severity>`` (severity 1..5) are the CIFAR-10 test set with one corruption
applied per image at 32 px, before any resizing. The 15 benchmark families (noise: gaussian_noise, shot_noise,
impulse_noise; blur: defocus_blur, glass_blur, motion_blur, zoom_blur; weather: snow, frost, fog, brightness;
digital: contrast, elastic_transform, pixelate, jpeg_compression) plus the two "extra" ones speckle_noise and
gaussian_blur are implemented (spatter and saturate are not). Parameters are the CIFAR-10-C tables.

Determinism: image ``index`` under ``seed`` always uses ``numpy.random.default_rng([seed, index])``, so a
corrupted set is identical across runs, machines and DataLoader worker counts, and subsets of it agree with the
full set. Output is clamped to [0,1] and quantised to 8 bits like the released uint8 files.

Why not the ``imagecorruptions`` package: it uses the ImageNet-C tables (too strong for 32 px) and, with today's
numpy/scikit-image/setuptools, fails to import (pkg_resources) and breaks in glass_blur/gaussian_blur
(``multichannel=``) and fog (``np.float_``). Its frost photos are still used (see corrupt_weather).
"""

from __future__ import annotations

import functools

import numpy as np

from reprolab.datasets import corrupt_basic as B
from reprolab.datasets import corrupt_weather as W
from reprolab.errors import ReprolabError

FAMILIES = {
    "gaussian_noise": B.gaussian_noise,
    "shot_noise": B.shot_noise,
    "impulse_noise": B.impulse_noise,
    "defocus_blur": B.defocus_blur,
    "glass_blur": B.glass_blur,
    "motion_blur": B.motion_blur,
    "zoom_blur": B.zoom_blur,
    "snow": W.snow,
    "frost": W.frost,
    "fog": W.fog,
    "brightness": B.brightness,
    "contrast": B.contrast,
    "elastic_transform": B.elastic_transform,
    "pixelate": B.pixelate,
    "jpeg_compression": B.jpeg_compression,
    # extra (held-out) families of the paper
    "speckle_noise": B.speckle_noise,
    "gaussian_blur": B.gaussian_blur,
}
BENCHMARK_15 = list(FAMILIES)[:15]
GROUPS = {
    "noise": ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"],
    "blur": ["defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur"],
    "weather": ["snow", "frost", "fog", "brightness"],
    "digital": ["contrast", "elastic_transform", "pixelate", "jpeg_compression"],
}
SEVERITIES = (1, 2, 3, 4, 5)


def check(family: str, severity: int) -> None:
    if family not in FAMILIES:
        raise ReprolabError(f"unknown corruption '{family}'; choose one of {', '.join(FAMILIES)}")
    if severity not in SEVERITIES:
        raise ReprolabError(f"corruption severity must be 1..5, got {severity!r}")


def corrupt(x: np.ndarray, family: str, severity: int, seed: int = 0, index: int = 0) -> np.ndarray:
    """Corrupt one image (float or uint8 array H x W x 3) -> float32 H x W x 3 in [0,1], deterministic in
    (seed, index)."""
    check(family, severity)
    x = np.asarray(x)
    x = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    rng = np.random.default_rng([int(seed), int(index)])
    y = FAMILIES[family](x, severity, rng)
    return (np.rint(np.clip(y, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def corrupter(family: str, severity: int, seed: int = 0):
    """A function ``(image, index) -> corrupted image`` for ImageSet.raw.corrupt."""
    check(family, severity)
    return functools.partial(_apply, family=family, severity=severity, seed=seed)  # picklable for workers


def _apply(x, index, family, severity, seed):
    return corrupt(x, family, severity, seed, index)
