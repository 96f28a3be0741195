"""The one evaluation harness: ID accuracy, covariate-shift accuracy and OOD detection for any method.

Rows. :func:`evaluate_method` returns one row per evaluation set,
``{"eval_set": name, "kind": "id"|"shift"|"ood", "n": int, "metrics": {...}}``: "id"/"shift" rows hold
``acc``; "ood" rows hold ``fpr95, auroc, aupr_in, aupr_out`` from :func:`reprolab.metrics.ood_metrics` with the
ID set's scores as the positive class (the one metric convention lives in :mod:`reprolab.metrics`). The runner
adds method/encoder/seed/... to make :mod:`reprolab.results` rows.

Scores (:func:`ood_score`, definitions in :mod:`reprolab.scores`). CLIP-style methods (``method.clip_style``)
return ``logits = s · cos`` with ``s = encoder.logit_scale = 100``; the harness recovers ``cos = logits / s`` and
uses MCM ``max softmax(cos / T)`` (paper: T = 0.01, so the default equals ``max softmax(logits)``) and energy
``T · logsumexp(cos / T)``. Classifier baselines (``clip_style = False``: linear probe, fine-tuning heads) use their
own logits: MCM = max softmax(logits) (MSP), energy with T = 1; ``T`` is ignored for them. ``max_logit`` is
``max_c logits_c`` for both.

Sweeps. The Residual Reprogrammer's α (weight on the *zero-shot* features) is swept from cached features with
no encoder pass per α (:func:`rrp_features`, :func:`rrp_sweep`; the fast slider is
:mod:`reprolab.alpha_explorer`). WiSE-FT's α (weight on the *fine-tuned* weights) interpolates encoder weights,
so :func:`wise_ft_sweep` needs one encoder pass per α — inherent to weight-space ensembling.
"""

from __future__ import annotations

import math
import numpy as np
import torch

from . import scores as S
from .drift import cosine_drift, drift_summary
from .errors import ReprolabError
from .features import FeatureCache, extract, method_key, method_outputs, state_hash
from .metrics import accuracy, holistic_score, ood_metrics, to_numpy
from .residual import residual_logits

__all__ = ["SCORES", "ood_score", "collect", "rows_from_logits", "evaluate_method", "split_sets", "shift_mean",
           "summary", "drift_rows", "rrp_features", "rrp_sweep", "wise_ft_sweep"]

SCORES = ("mcm", "energy", "max_logit")


def ood_score(logits, clip_style: bool = True, logit_scale: float = 100.0, T: float = 0.01,
              score: str = "mcm") -> np.ndarray:
    """Per-image OOD score [N] (higher = more ID) from logits [N, C]; see the module docstring."""
    if score not in SCORES:
        raise ReprolabError(f"score={score!r}; use one of {SCORES}")
    if score == "max_logit":
        return S.max_logit(logits)
    if clip_style:
        cos = to_numpy(logits, "logits") / float(logit_scale)
        return S.mcm(cos, T) if score == "mcm" else S.energy(cos, T)
    return S.mcm_from_logits(logits) if score == "mcm" else S.energy(logits, 1.0)


def _as_cache(cache):
    return cache if cache is None or isinstance(cache, FeatureCache) else FeatureCache(cache)


def _check_names(sets) -> None:
    names = [ds.name for ds in sets]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ReprolabError(f"evaluation sets {dup} appear twice; give each set a distinct name")


def collect(method, sets, cache=None, batch_size: int = 256, features: bool = False,
            progress: bool = True) -> dict[str, dict]:
    """``{set name: {"logits", "labels"[, "image_features"]}}`` (CPU tensors), in eval mode, cached if asked.

    ``cache``: a :class:`~reprolab.features.FeatureCache`, a directory, or None. CLIP-style methods always come
    with ``image_features``; others only with ``features=True``.
    """
    _check_names(sets)
    cache, was_training = _as_cache(cache), method.training
    method.eval()
    try:
        fn, outputs = method_outputs(method, features)
        device = method.encoder.device
        state = state_hash(method.trainable_state()) if cache is not None else None
        out = {}
        for ds in sets:
            if cache is None:
                out[ds.name] = extract(fn, ds, batch_size, progress, device)
            else:
                key = method_key(method, ds, outputs, state)
                out[ds.name] = cache.get_or_compute(key, fn, ds, batch_size, progress, device)
        return out
    finally:
        method.train(was_training)


def _restrict(logits: torch.Tensor, labels: torch.Tensor, class_subset):
    """Keep only the ID classes present in the set (ImageNet-A/R protocol); labels become column positions."""
    if class_subset is None:
        return logits, labels
    sub = torch.as_tensor(class_subset, dtype=torch.long)
    pos = torch.full((int(sub.max()) + 1,), -1, dtype=torch.long)
    pos[sub] = torch.arange(len(sub))
    return logits[:, sub], torch.where(labels >= 0, pos[labels.clamp(min=0, max=len(pos) - 1)], labels)


def rows_from_logits(entries: list[dict], T: float = 0.01, score: str = "mcm", clip_style: bool = True,
                     logit_scale: float = 100.0) -> list[dict]:
    """Rows from ``entries`` = [{"name", "kind", "logits", "labels"[, "class_subset"]}, ...] (one "id" entry
    is required when any is "ood"). The shared back end of :func:`evaluate_method` and the sweeps."""
    rows, id_scores = [], None
    ids = [e for e in entries if e["kind"] == "id"]
    if len(ids) > 1 or (not ids and any(e["kind"] == "ood" for e in entries)):
        raise ReprolabError("OOD metrics need exactly one ID set; pass one id_set")
    if ids:
        id_scores = ood_score(ids[0]["logits"], clip_style, logit_scale, T, score)
    for e in entries:
        if e["kind"] not in ("id", "shift", "ood"):
            raise ReprolabError(f"set {e['name']}: kind {e['kind']!r}; use 'id', 'shift' or 'ood'")
        if e["kind"] == "ood":
            m = ood_metrics(id_scores, ood_score(e["logits"], clip_style, logit_scale, T, score))
        else:
            logits, labels = _restrict(e["logits"], e["labels"], e.get("class_subset"))
            m = {"acc": accuracy(logits, labels)}
        rows.append({"eval_set": e["name"], "kind": e["kind"], "n": int(len(e["logits"])), "metrics": m})
    return rows


def _check_setup(method, id_set) -> None:
    names = getattr(method, "classnames", None)
    if names is not None and list(names) != list(id_set.classnames):
        raise ReprolabError(f"method {method.name} is set up for classes {list(names)[:3]}…, the ID set "
                            f"{id_set.name} has {list(id_set.classnames)[:3]}…; call method.setup(id_set.classnames)")


def evaluate_method(method, id_set, shift_sets, ood_sets, T: float = 0.01, cache=None, batch_size: int = 256,
                    score: str = "mcm", progress: bool = True) -> list[dict]:
    """One row per evaluation set (ID first, then shifts, then OOD); see the module docstring."""
    _check_setup(method, id_set)
    kinds = [(id_set, "id")] + [(d, "shift") for d in shift_sets] + [(d, "ood") for d in ood_sets]
    outs = collect(method, [d for d, _ in kinds], cache, batch_size, progress=progress)
    entries = [{"name": d.name, "kind": k, "logits": outs[d.name]["logits"], "labels": outs[d.name]["labels"],
                "class_subset": getattr(d, "class_subset", None)} for d, k in kinds]
    return rows_from_logits(entries, T, score, getattr(method, "clip_style", True), method.encoder.logit_scale)


def split_sets(sets) -> tuple:
    """``(id_set, shift_sets, ood_sets)`` from a list of sets by their ``.kind`` (exactly one "id")."""
    ids = [d for d in sets if d.kind == "id"]
    if len(ids) != 1:
        raise ReprolabError(f"found {len(ids)} sets of kind 'id' among {[d.name for d in sets]}; pass exactly one")
    return ids[0], [d for d in sets if d.kind == "shift"], [d for d in sets if d.kind == "ood"]


def shift_mean(rows: list[dict]) -> float:
    """Mean accuracy over the "shift" rows (NaN when there are none)."""
    accs = [r["metrics"]["acc"] for r in rows if r["kind"] == "shift"]
    return float(np.mean(accs)) if accs else math.nan


def summary(rows: list[dict]) -> dict:
    """``id_acc, shift_acc, fpr95, auroc, aupr_in, aupr_out`` (means over OOD rows) and ``holistic``."""
    ood = [r["metrics"] for r in rows if r["kind"] == "ood"]
    out = {"id_acc": next((r["metrics"]["acc"] for r in rows if r["kind"] == "id"), math.nan),
           "shift_acc": shift_mean(rows)}
    for k in ("fpr95", "auroc", "aupr_in", "aupr_out"):
        out[k] = float(np.mean([m[k] for m in ood])) if ood else math.nan
    out["holistic"] = holistic_score(out["id_acc"], out["shift_acc"], out["auroc"])
    return out


def drift_rows(method, zeroshot_method, sets, other_task=None, cache=None, batch_size: int = 256,
               per_sample: bool = False, progress: bool = True) -> list[dict]:
    """Image-feature drift of ``method`` from the pretrained encoder (``zeroshot_method``) on the same images.

    One row per set: ``{"eval_set", "kind", "n", "metrics": {cosine_mean, cosine_std, cka}}`` (see
    :mod:`reprolab.drift`; with ``per_sample=True`` a row also holds ``"cosine"``, the per-image array).
    ``other_task``: a labelled set of a task the method was *not* trained on; its row adds ``zs_acc_before``,
    ``zs_acc_after`` and ``zs_acc_change``: zero-shot accuracy with the *pretrained* text head on that task's
    classes, from the pretrained vs the method's image features.
    """
    all_sets = list(sets) + ([other_task] if other_task is not None else [])
    fm = collect(method, all_sets, cache, batch_size, features=True, progress=progress)
    fz = collect(zeroshot_method, all_sets, cache, batch_size, features=True, progress=progress)
    rows = []
    for d in all_sets:
        a, b = fz[d.name]["image_features"], fm[d.name]["image_features"]
        row = {"eval_set": d.name, "kind": getattr(d, "kind", "?"), "n": len(a), "metrics": drift_summary(a, b)}
        if per_sample and a.shape == b.shape:
            row["cosine"] = cosine_drift(a, b)
        if d is other_task:
            enc = zeroshot_method.encoder
            head = enc.encode_text_prompts([zeroshot_method.template.format(c) for c in d.classnames]).cpu()
            before, after = accuracy(a @ head.t(), fz[d.name]["labels"]), accuracy(b @ head.t(), fm[d.name]["labels"])
            row["kind"] = "other_task"
            row["metrics"].update(zs_acc_before=before, zs_acc_after=after, zs_acc_change=after - before)
        rows.append(row)
    return rows


def rrp_features(rp_method, sets, cache=None, batch_size: int = 256, progress: bool = True) -> dict:
    """Everything the Residual Reprogrammer needs for any α, from one pass of RP and one of zero-shot.

    Returns ``{"logit_scale", "text_rp" [C,D], "text_zs" [C,D], "sets": {name: {"kind", "labels", "image_rp",
    "image_zs", "class_subset"}}}``. ``rp_method`` is a Reprogrammer or a ResidualReprogrammer (its RP is used).
    """
    from .methods.base import ZeroShot
    from .methods.reprogrammer import Reprogrammer, ResidualReprogrammer
    rp = rp_method.rp if isinstance(rp_method, ResidualReprogrammer) else rp_method
    if not isinstance(rp, Reprogrammer):
        raise ReprolabError(f"rrp_features needs a Reprogrammer or ResidualReprogrammer, got {type(rp).__name__}")
    if not rp.classnames:
        raise ReprolabError("the reprogrammer has no classes; call rp.setup(id_set.classnames) first")
    zs = ZeroShot(rp.encoder, rp.template).setup(rp.classnames)
    f_rp = collect(rp, sets, cache, batch_size, progress=progress)
    f_zs = collect(zs, sets, cache, batch_size, progress=progress)
    was = rp.training
    rp.eval()
    with torch.no_grad():
        text_rp, text_zs = rp.text_features().detach().float().cpu(), zs.text_features().detach().float().cpu()
    rp.train(was)
    return {"logit_scale": float(rp.encoder.logit_scale), "text_rp": text_rp, "text_zs": text_zs,
            "sets": {d.name: {"kind": d.kind, "labels": f_rp[d.name]["labels"],
                              "image_rp": f_rp[d.name]["image_features"], "image_zs": f_zs[d.name]["image_features"],
                              "class_subset": getattr(d, "class_subset", None)} for d in sets}}


def rrp_sweep(feats: dict, alphas, T: float = 0.01, score: str = "mcm", renormalise: bool = False) -> list[dict]:
    """Rows (as :func:`evaluate_method`) for each α = ``alpha_zeroshot`` via :func:`reprolab.residual.residual_logits`,
    each with ``"alpha"`` and ``"alpha_meaning": "zero-shot weight (RRP)"``. No encoder pass."""
    rows = []
    for a in alphas:
        entries = [{"name": n, "kind": f["kind"], "labels": f["labels"], "class_subset": f["class_subset"],
                    "logits": residual_logits(f["image_rp"], f["image_zs"], feats["text_rp"], feats["text_zs"], a,
                                              feats["logit_scale"], renormalise)} for n, f in feats["sets"].items()]
        for r in rows_from_logits(entries, T, score, True, feats["logit_scale"]):
            rows.append(dict(r, alpha=float(a), alpha_meaning="zero-shot weight (RRP)"))
    return rows


def wise_ft_sweep(wise_method, sets, alphas, T: float = 0.01, cache=None, batch_size: int = 256,
                  score: str = "mcm", progress: bool = True) -> list[dict]:
    """Rows for each WiSE-FT α (weight on the *fine-tuned* weights), via ``wise_method.set_alpha(α)``; one encoder
    pass per α (weights change). Rows carry ``"alpha"`` and ``"alpha_meaning": "fine-tuned weight (WiSE-FT)"``;
    the method's own α is restored afterwards."""
    id_set, shift_sets, ood_sets = split_sets(sets)
    original, rows = getattr(wise_method, "alpha_finetuned", None), []
    try:
        for a in alphas:
            wise_method.set_alpha(a)
            for r in evaluate_method(wise_method, id_set, shift_sets, ood_sets, T, cache, batch_size, score, progress):
                rows.append(dict(r, alpha=float(a), alpha_meaning="fine-tuned weight (WiSE-FT)"))
    finally:
        if original is not None:
            wise_method.set_alpha(original)
    return rows
