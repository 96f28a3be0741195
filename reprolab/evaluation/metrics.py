"""Classification and OOD-detection metrics — the kit's ONE metric convention is stated here.

Convention (used by every score, table and figure in reprolab)
-------------------------------------------------------------
* **ID is the positive class** and a **higher score means "more in-distribution"**. A detector
  flags an image as OOD when its score is below a threshold ``t``.
* All metrics are fractions in [0, 1] (tables multiply by 100 for display).
* ``TPR(t) = #{ID >= t} / #ID`` (ID kept), ``FPR(t) = #{OOD >= t} / #OOD`` (OOD wrongly kept).

Metrics (Hendrycks & Gimpel 2017; MCM, Ming et al. NeurIPS 2022; Geng & Chen arXiv 2403.10800, Sec. 5)
* **FPR95** = FPR(t*) with t* the *largest* threshold whose TPR >= 0.95, i.e. the first point of
  ``sklearn.metrics.roc_curve(..., drop_intermediate=False)`` with ``tpr >= 0.95`` (lower is better).
  We read it off roc_curve because roc_curve groups tied scores exactly (one ROC point per distinct score),
  so ties never split across the threshold; ``drop_intermediate=False`` keeps every point, since dropping
  collinear points can skip the true first crossing. (Some OOD codebases take the point whose recall is
  *closest* to 0.95 instead; on small sets the two can differ by one step.)
* **AUROC** = P(s_ID > s_OOD) + 0.5 P(s_ID = s_OOD) (Mann–Whitney U / (n_ID n_OOD)) = ``roc_auc_score``.
* **AUPR-In** = average precision with ID positive, ``average_precision_score(y, s)``.
* **AUPR-Out** = average precision with OOD positive on negated scores, ``average_precision_score(1-y, -s)``.
* **Holistic** = (ID acc + mean shift acc + AUROC) / 3 — see :func:`holistic_score`.

:func:`fast_fpr95_auroc` is a numpy-only sort-based twin of FPR95 and AUROC (exact, ties included), used
where metrics are recomputed many times (e.g. the α slider); tests check it against scikit-learn.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from reprolab.errors import ShapeError

__all__ = ["accuracy", "ood_metrics", "fast_fpr95_auroc", "holistic_score", "to_numpy"]


def to_numpy(x, name: str = "input", dtype=np.float64) -> np.ndarray:
    """Convert a numpy array, torch tensor or sequence to a numpy array (detached, on CPU)."""
    if hasattr(x, "detach"):  # torch.Tensor without importing torch
        x = x.detach().cpu()
        if dtype is not None and x.dtype.is_floating_point:
            x = x.double()
        x = x.numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise ShapeError(
            f"{name} must be numeric (got {type(x).__name__}: {e}); pass a numpy array or tensor"
        ) from None


def _scores(x, name: str) -> np.ndarray:
    a = to_numpy(x, name)
    if a.ndim != 1:
        a = a.reshape(-1) if a.ndim == 2 and 1 in a.shape else a
    if a.ndim != 1:
        raise ShapeError(f"{name} must be a 1-D array of scores, got shape {a.shape}; pass one score per image")
    if a.size == 0:
        raise ShapeError(f"{name} is empty; evaluate at least one image of each kind")
    if not np.all(np.isfinite(a)):
        raise ShapeError(f"{name} has {int((~np.isfinite(a)).sum())} NaN/inf values; check the logits/temperature")
    return a


def accuracy(logits_or_preds, labels) -> float:
    """Top-1 accuracy. ``logits_or_preds`` is [N, C] scores (argmax is taken) or [N] predicted class ids."""
    y = to_numpy(labels, "labels", dtype=None)
    p = to_numpy(logits_or_preds, "logits_or_preds", dtype=None)
    if p.ndim == 2:
        if not np.all(np.isfinite(p)):
            raise ShapeError("logits contain NaN/inf; check the model output before computing accuracy")
        p = p.argmax(axis=1)
    if p.ndim != 1 or y.ndim != 1:
        raise ShapeError(f"need logits [N,C] or predictions [N] and labels [N]; got {p.shape} and {y.shape}")
    if len(p) != len(y):
        raise ShapeError(f"{len(p)} predictions but {len(y)} labels; pass the labels of the same images")
    if len(y) == 0:
        raise ShapeError("no samples; evaluate at least one image")
    return float(np.mean(p.astype(np.int64) == y.astype(np.int64)))


def _labels_and_scores(id_scores, ood_scores):
    i, o = _scores(id_scores, "id_scores"), _scores(ood_scores, "ood_scores")
    y = np.concatenate([np.ones(len(i), np.int64), np.zeros(len(o), np.int64)])
    return i, o, y, np.concatenate([i, o])


def ood_metrics(id_scores, ood_scores) -> dict:
    """FPR95, AUROC, AUPR-In, AUPR-Out (fractions) from ID and OOD scores, higher = more ID.

    Reference implementation on scikit-learn (see the module docstring for the definitions).
    Returns ``{"fpr95", "auroc", "aupr_in", "aupr_out"}`` as Python floats.
    """
    _, _, y, s = _labels_and_scores(id_scores, ood_scores)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    k = int(np.argmax(tpr >= 0.95))  # first (largest-threshold) point with TPR >= 0.95; tpr[-1] == 1 always
    return {
        "fpr95": float(fpr[k]),
        "auroc": float(roc_auc_score(y, s)),
        "aupr_in": float(average_precision_score(y, s)),
        "aupr_out": float(average_precision_score(1 - y, -s)),
    }


def fast_fpr95_auroc(id_scores, ood_scores) -> tuple[float, float]:
    """(FPR95, AUROC) with one sort and integer counts — equal to :func:`ood_metrics` incl. ties.

    Sort all scores descending; at the end of each run of equal scores (one ROC point per distinct score)
    count ``tp`` (ID kept) and ``fp`` (OOD kept). FPR95 = fp/n_ood at the first point with
    ``100 tp >= 95 n_id`` (exact integer test). AUROC = trapezoid rule over the ROC points, which gives a tie
    half credit: ``sum_k (fp_k - fp_{k-1}) (tp_k + tp_{k-1}) / (2 n_id n_ood)``.
    """
    i, o, y, s = _labels_and_scores(id_scores, ood_scores)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s) - 1]  # last index of each tie group
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    n_id, n_ood = len(i), len(o)
    k = int(np.argmax(100 * tp >= 95 * n_id))
    fpr95 = fp[k] / n_ood
    tp_prev, fp_prev = np.r_[0, tp[:-1]], np.r_[0, fp[:-1]]
    auroc = float(np.sum((fp - fp_prev) * (tp + tp_prev))) / (2.0 * n_id * n_ood)
    return float(fpr95), float(auroc)


def holistic_score(id_acc: float, shift_acc: float, auroc: float) -> float:
    """Holistic score H = (ID acc + mean covariate-shift acc + AUROC) / 3, all fractions in [0, 1].

    One number for the paper's "holistic" view (Geng & Chen, arXiv 2403.10800: ID accuracy, generalisation
    under covariate shift and detection of semantic shift). An unweighted arithmetic mean, so every part counts
    equally and a gain in one part can hide a loss in another — that is why reprolab always shows H next to its
    three parts, never alone. NaN in any part gives NaN.
    """
    parts = np.array([id_acc, shift_acc, auroc], dtype=np.float64)
    if np.any((parts < 0) | (parts > 1)):
        raise ShapeError(f"holistic_score needs fractions in [0,1], got {parts.tolist()}; divide percentages by 100")
    return float(parts.mean())
