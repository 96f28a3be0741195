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

Why this convention: it is MCM's (Ming et al., the OOD score the paper uses: ``roc_auc_score`` and
``average_precision_score``), scikit-learn's implementations are the field's reference, they treat tied scores
exactly, and the FPR95 threshold always keeps at least 95 % of the ID images.

The official reprogrammer code (``compute_metrics.py``) differs — ``ood_metrics(..., convention="official")``
reproduces it exactly (float for float):

* **FPR95**: threshold ``t = sorted(ID)[round(0.05·n_ID)]`` (Python's round, half to even), FPR = #{OOD > t}/n_OOD
  with a *strict* ``>``. It keeps fewer than 95 % of the ID images (n = 19: 17/19 = 0.895), and OOD scores tied
  with t count as rejected, so it is optimistic on small or tied sets: n_ID = 19 gives 0.857 here vs 0.286
  official on one measured set; all-equal scores give 1.0 vs 0.0. On large sets without ties (n_ID ∈ {1000, 10000,
  50000}) both agree.
* **AUROC**: a trapezoid over its tie-collapsed curve — equal to ``roc_auc_score`` on every set tried.
* **AUPR-In / AUPR-Out** ("AUIN"/"AUOUT"): a trapezoid of precision vs recall with fixed end points (precision 0.5
  at recall 1 and 0 at recall 0 for AUIN; 0 and 0.5 at the ends for AUOUT), instead of the step-wise average
  precision: ≈ 1e-3 apart on 1000-image sets, far apart on tiny or heavily tied sets (1 vs 1 image: 1.0 vs 0.5).
* **Scores in float32**: MCM at T = 0.01 saturates to exactly 1.0 once the top-2 cosine margin exceeds ≈ 0.17,
  adding ties (AUROC shifts of up to 0.01 measured). The kit computes scores in float64
  (:mod:`reprolab.evaluation.scores`); to mimic the official numbers, cast the scores to float32 before the metric.
  (MCM's own FPR95 picks the threshold whose recall is *closest* to 0.95 — a third variant, one plateau step away.)

:func:`fast_fpr95_auroc` is a numpy-only sort-based twin of FPR95 and AUROC (exact, ties included), used
where metrics are recomputed many times (e.g. the α slider); tests check it against scikit-learn.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from reprolab.errors import ShapeError

__all__ = ["accuracy", "ood_metrics", "official_ood_metrics", "fast_fpr95_auroc", "holistic_score", "to_numpy"]

CONVENTIONS = ("kit", "official")
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 names it trapz (the same function)


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


def ood_metrics(id_scores, ood_scores, convention: str = "kit") -> dict:
    """FPR95, AUROC, AUPR-In, AUPR-Out (fractions) from ID and OOD scores, higher = more ID.

    ``convention="kit"``: the reference implementation on scikit-learn; ``"official"``: the official reprogrammer
    code's formulas (:func:`official_ood_metrics`). See the module docstring for both.
    Returns ``{"fpr95", "auroc", "aupr_in", "aupr_out"}`` as Python floats.
    """
    if convention == "official":
        return official_ood_metrics(id_scores, ood_scores)
    if convention != "kit":
        raise ShapeError(f"convention={convention!r}; use 'kit' (scikit-learn, as MCM) or 'official'")
    _, _, y, s = _labels_and_scores(id_scores, ood_scores)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    k = int(np.argmax(tpr >= 0.95))  # first (largest-threshold) point with TPR >= 0.95; tpr[-1] == 1 always
    return {
        "fpr95": float(fpr[k]),
        "auroc": float(roc_auc_score(y, s)),
        "aupr_in": float(average_precision_score(y, s)),
        "aupr_out": float(average_precision_score(1 - y, -s)),
    }


def official_ood_metrics(id_scores, ood_scores) -> dict:
    """The official reprogrammer code's FPR95, AUROC, AUIN and AUOUT (``compute_metrics.py``), written from its
    definitions (module docstring) and equal to it float for float; same keys as :func:`ood_metrics`.

    Its curve has one point per removed image, lowest score first: point 0 keeps everything and point j ≥ 1 keeps
    the scores strictly above the j-th lowest score of all (so tied scores leave together).
    """
    i, o, _, _ = _labels_and_scores(id_scores, ood_scores)
    known, novel = np.sort(i), np.sort(o)
    n_k, n_n = len(known), len(novel)
    fpr95 = np.sum(novel > known[round(0.05 * n_k)]) / float(n_n)
    cut = np.sort(np.concatenate([known, novel]))
    tp = np.r_[n_k, n_k - np.searchsorted(known, cut, side="right")]  # ID kept at each point
    fp = np.r_[n_n, n_n - np.searchsorted(novel, cut, side="right")]  # OOD kept
    tpr = np.r_[1.0, tp / tp[0], 0.0]
    fpr = np.r_[1.0, fp / fp[0], 0.0]
    kept, removed = tp + fp, (tp[0] - tp) + (fp[0] - fp)
    use_in = np.r_[True, kept > 0, True]
    prec_in = np.r_[0.5, tp / np.where(kept > 0, kept, -1), 0.0]
    use_out = np.r_[True, removed > 0, True]
    prec_out = np.r_[0.0, (fp[0] - fp) / np.where(removed > 0, removed, -1), 0.5]
    return {
        "fpr95": float(fpr95),
        "auroc": float(-_trapezoid(1.0 - fpr, tpr)),
        "aupr_in": float(-_trapezoid(prec_in[use_in], tpr[use_in])),
        "aupr_out": float(_trapezoid(prec_out[use_out], (1.0 - fpr)[use_out])),
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
