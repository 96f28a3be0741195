"""Representation drift: how far an adapted model's image features moved from the pretrained encoder's.

Feed the *same images* through the pretrained encoder (features ``A``, [N, D]) and through the adapted
method (features ``B``, [N, D'] — image features of a CLIP-style method, e.g. after full fine-tuning or with
a reprogramming pad). Fine-tuning rewrites the image tower and can drift far; input reprogramming keeps the
encoder frozen, which is the paper's explanation for its better OOD behaviour (Geng & Chen, arXiv 2403.10800,
Sec. 1 and 4; see also Kumar et al., ICLR 2022 on feature distortion by fine-tuning).

* **Cosine drift** (per image, needs D = D'): ``c_i = <a_i, b_i> / (||a_i|| ||b_i||)``; 1 = unchanged.
* **Linear CKA** (Kornblith et al., ICML 2019, Eq. for linear kernels), with column-centred X, Y:
  ``CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` — in [0, 1], invariant to orthogonal transforms
  and isotropic scaling of either side, and works for D != D'. 1 = same geometry.
* **Zero-shot accuracy change**: ``acc_after - acc_before`` of zero-shot classification with the original text
  head (negative = the adapted features forgot what the pretrained text tower knows).
"""

from __future__ import annotations

import numpy as np

from reprolab.errors import ShapeError
from reprolab.evaluation.metrics import to_numpy

__all__ = ["cosine_drift", "linear_cka", "zero_shot_accuracy_change", "drift_summary"]


def _features(x, name: str) -> np.ndarray:
    a = to_numpy(x, name)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ShapeError(f"{name} must be a non-empty [N, D] feature matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ShapeError(f"{name} has NaN/inf values; check the encoder output")
    return a


def cosine_drift(feats_a, feats_b) -> np.ndarray:
    """Per-sample cosine similarity [N] between two feature sets of the same N images (1 = no drift)."""
    a, b = _features(feats_a, "feats_a"), _features(feats_b, "feats_b")
    if a.shape != b.shape:
        raise ShapeError(
            f"feats_a {a.shape} and feats_b {b.shape} differ; cosine drift needs the same images and "
            "dimension (use linear_cka for different dimensions)"
        )
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    if np.any(na == 0) or np.any(nb == 0):
        raise ShapeError("a feature vector is all zeros; cosine is undefined — check the encoder output")
    return np.einsum("nd,nd->n", a, b) / (na * nb)


def linear_cka(X, Y) -> float:
    """Linear CKA between [N, D1] and [N, D2] features of the same N images (Kornblith et al. 2019)."""
    x, y = _features(X, "X"), _features(Y, "Y")
    if x.shape[0] != y.shape[0]:
        raise ShapeError(f"X has {x.shape[0]} rows but Y has {y.shape[0]}; CKA needs features of the same images")
    if x.shape[0] < 2:
        raise ShapeError("CKA needs at least 2 images; pass more samples")
    x = x - x.mean(axis=0, keepdims=True)
    y = y - y.mean(axis=0, keepdims=True)
    nx, ny = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)  # Frobenius norms
    if nx == 0 or ny == 0:
        raise ShapeError("features are constant across images (zero variance); CKA is undefined")
    return float(np.linalg.norm(y.T @ x) ** 2 / (nx * ny))


def zero_shot_accuracy_change(acc_before: float, acc_after: float) -> float:
    """``acc_after - acc_before`` (fractions); negative means the adaptation lost zero-shot ability."""
    return float(acc_after) - float(acc_before)


def drift_summary(feats_pretrained, feats_adapted) -> dict:
    """``{"cosine_mean", "cosine_std", "cka"}``; cosine entries are NaN when the dimensions differ."""
    a, b = _features(feats_pretrained, "feats_pretrained"), _features(feats_adapted, "feats_adapted")
    out = {"cosine_mean": float("nan"), "cosine_std": float("nan"), "cka": linear_cka(a, b)}
    if a.shape == b.shape:
        c = cosine_drift(a, b)
        out.update(cosine_mean=float(c.mean()), cosine_std=float(c.std()))
    return out
