"""OOD scores from a classifier's outputs — higher score = more in-distribution (see reprolab.evaluation.metrics).

Naming convention. For CLIP-style methods (zero-shot, CoOp, Reprogrammer, ...) the *cosine similarities*
``cos[i, c] = <f(x_i), g(t_c)>`` of L2-normalised image and class-text features are turned into *logits*
``logits = logit_scale * cos`` with a fixed ``logit_scale = 1 / T = 100`` (T = 0.01), as in CLIP and in the
paper (Geng & Chen, arXiv 2403.10800, Sec. 3). ``Method.logits`` returns these scaled logits.

* **MCM** (Maximum Concept Matching, Ming et al., NeurIPS 2022), the score the paper uses:
  ``S_MCM(x) = max_c softmax(cos(x) / T)_c = 1 / sum_c exp((cos_c - cos_max) / T)``.
  :func:`mcm` takes cosines and T; :func:`mcm_from_logits` takes logits that are already scaled
  (so ``mcm(cos, T=0.01) == mcm_from_logits(100 * cos)``). For a linear-probe head this is MSP.
* **Energy** (Liu et al., NeurIPS 2020): ``S_E(x) = T * logsumexp(logits / T)`` (the negative free energy).
* **Max logit** (Hendrycks et al., ICML 2022): ``S_ML(x) = max_c logits_c``.

All functions accept numpy arrays or torch tensors of shape [N, C], compute in float64 and return a numpy
array of shape [N].
"""

from __future__ import annotations

import numpy as np

from reprolab.errors import ShapeError
from reprolab.evaluation.metrics import to_numpy

__all__ = ["mcm", "mcm_from_logits", "energy", "max_logit", "logsumexp"]


def _matrix(x, name: str) -> np.ndarray:
    a = to_numpy(x, name)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ShapeError(f"{name} must be a non-empty [N, C] array (one row per image), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ShapeError(f"{name} has NaN/inf values; check the model output (features L2-normalised?)")
    return a


def _positive(T: float, name: str = "T") -> float:
    T = float(T)
    if not (np.isfinite(T) and T > 0):
        raise ShapeError(f"{name} must be a positive number, got {T}; the paper uses T = 0.01 for cosines")
    return T


def logsumexp(z: np.ndarray) -> np.ndarray:
    """Row-wise ``log sum_c exp(z_c)``, stable: ``m + log sum exp(z - m)`` with ``m = max_c z_c``."""
    m = z.max(axis=1)
    return m + np.log(np.exp(z - m[:, None]).sum(axis=1))


def mcm_from_logits(logits, T_scale: float = 1.0) -> np.ndarray:
    """Max softmax probability of ``logits / T_scale``; for CLIP-style scaled logits keep ``T_scale = 1``."""
    z = _matrix(logits, "logits") / _positive(T_scale, "T_scale")
    return 1.0 / np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1)


def mcm(cos_sims, T: float = 0.01) -> np.ndarray:
    """MCM score from cosine similarities [N, C]: ``max_c softmax(cos / T)`` (Ming et al. 2022), in [1/C, 1]."""
    return mcm_from_logits(_matrix(cos_sims, "cos_sims") / _positive(T), 1.0)


def energy(logits, T: float = 1.0) -> np.ndarray:
    """Energy score ``T * logsumexp(logits / T)`` (Liu et al. 2020); higher = more ID."""
    T = _positive(T)
    return T * logsumexp(_matrix(logits, "logits") / T)


def max_logit(logits) -> np.ndarray:
    """Max-logit score ``max_c logits_c`` (Hendrycks et al. 2022)."""
    return _matrix(logits, "logits").max(axis=1)
