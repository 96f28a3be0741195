"""The one evaluation harness: ID accuracy, covariate-shift accuracy and OOD detection for any method.

Rows. :func:`evaluate_method` returns one row per evaluation set,
``{"eval_set": name, "kind": "id"|"shift"|"ood", "n": int, "metrics": {...}}``: "id"/"shift" rows hold
``acc``; "ood" rows hold ``fpr95, auroc, aupr_in, aupr_out`` from :func:`reprolab.evaluation.metrics.ood_metrics` with the
ID set's scores as the positive class (the one metric convention lives in :mod:`reprolab.evaluation.metrics`). The runner
adds method/encoder/seed/... to make :mod:`reprolab.experiment.results` rows.

Scores (:func:`ood_score`, definitions in :mod:`reprolab.evaluation.scores`). CLIP-style methods (``method.clip_style``)
return ``logits = s · cos`` with ``s = encoder.logit_scale = 100``; the harness recovers ``cos = logits / s`` and
uses MCM ``max softmax(cos / T)`` (paper: T = 0.01, so the default equals ``max softmax(logits)``) and energy
``T · logsumexp(cos / T)``. Classifier baselines (``clip_style = False``: linear probe, fine-tuning heads) use their
own logits: MCM = max softmax(logits) (MSP), energy with T = 1; ``T`` is ignored for them. ``max_logit`` is
``max_c logits_c`` for both.

Sweeps over the two α's live in :mod:`reprolab.evaluation.alpha_sweeps`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from reprolab.errors import ReprolabError
from reprolab.evaluation import scores as S
from reprolab.evaluation.drift import cosine_drift, drift_summary
from reprolab.evaluation.features import FeatureCache, extract, method_key, method_outputs, state_hash
from reprolab.evaluation.metrics import accuracy, holistic_score, ood_metrics, to_numpy

__all__ = [
    "SCORES",
    "ood_score",
    "collect",
    "rows_from_logits",
    "evaluate_method",
    "split_sets",
    "shift_mean",
    "summary",
    "drift_rows",
]

SCORES = ("mcm", "energy", "max_logit")


def ood_score(
    logits, clip_style: bool = True, logit_scale: float = 100.0, T: float = 0.01, score: str = "mcm"
) -> np.ndarray:
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


def collect(
    method, sets, cache=None, batch_size: int = 256, features: bool = False, progress: bool = True
) -> dict[str, dict]:
    """``{set name: {"logits", "labels"[, "image_features"]}}`` (CPU tensors), in eval mode, cached if asked.

    ``cache``: a :class:`~reprolab.evaluation.features.FeatureCache`, a directory, or None. CLIP-style methods always come
    with ``image_features``; others only with ``features=True``. Each set is read through ``method.input_view`` (the
    set itself, except for a reprogrammer with ``reduce_from="raw"``: the official loader's view).
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
            ds = method.input_view(ds) if hasattr(method, "input_view") else ds  # e.g. the official loader's view
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


def rows_from_logits(
    entries: list[dict],
    T: float = 0.01,
    score: str = "mcm",
    clip_style: bool = True,
    logit_scale: float = 100.0,
    convention: str = "kit",
) -> list[dict]:
    """Rows from ``entries`` = [{"name", "kind", "logits", "labels"[, "class_subset"]}, ...] (one "id" entry
    is required when any is "ood"). The shared back end of :func:`evaluate_method` and the sweeps.
    ``convention``: the OOD metric convention of :func:`~reprolab.evaluation.metrics.ood_metrics`."""
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
            m = ood_metrics(id_scores, ood_score(e["logits"], clip_style, logit_scale, T, score), convention)
        else:
            logits, labels = _restrict(e["logits"], e["labels"], e.get("class_subset"))
            m = {"acc": accuracy(logits, labels)}
        rows.append({"eval_set": e["name"], "kind": e["kind"], "n": int(len(e["logits"])), "metrics": m})
    return rows


def _check_setup(method, id_set) -> None:
    names = getattr(method, "classnames", None)
    if names is not None and list(names) != list(id_set.classnames):
        raise ReprolabError(
            f"method {method.name} is set up for classes {list(names)[:3]}…, the ID set "
            f"{id_set.name} has {list(id_set.classnames)[:3]}…; call method.setup(id_set.classnames)"
        )


def evaluate_method(
    method,
    id_set,
    shift_sets,
    ood_sets,
    T: float = 0.01,
    cache=None,
    batch_size: int = 256,
    score: str = "mcm",
    progress: bool = True,
    convention: str = "kit",
) -> list[dict]:
    """One row per evaluation set (ID first, then shifts, then OOD); see the module docstring."""
    _check_setup(method, id_set)
    kinds = [(id_set, "id")] + [(d, "shift") for d in shift_sets] + [(d, "ood") for d in ood_sets]
    outs = collect(method, [d for d, _ in kinds], cache, batch_size, progress=progress)
    entries = [
        {
            "name": d.name,
            "kind": k,
            "logits": outs[d.name]["logits"],
            "labels": outs[d.name]["labels"],
            "class_subset": getattr(d, "class_subset", None),
        }
        for d, k in kinds
    ]
    clip_style = getattr(method, "clip_style", True)
    return rows_from_logits(entries, T, score, clip_style, method.encoder.logit_scale, convention)


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
    out = {
        "id_acc": next((r["metrics"]["acc"] for r in rows if r["kind"] == "id"), math.nan),
        "shift_acc": shift_mean(rows),
    }
    for k in ("fpr95", "auroc", "aupr_in", "aupr_out"):
        out[k] = float(np.mean([m[k] for m in ood])) if ood else math.nan
    out["holistic"] = holistic_score(out["id_acc"], out["shift_acc"], out["auroc"])
    return out


def drift_rows(
    method,
    zeroshot_method,
    sets,
    other_task=None,
    cache=None,
    batch_size: int = 256,
    per_sample: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Image-feature drift of ``method`` from the pretrained encoder (``zeroshot_method``) on the same images.

    One row per set: ``{"eval_set", "kind", "n", "metrics": {cosine_mean, cosine_std, cka}}`` (see
    :mod:`reprolab.evaluation.drift`; with ``per_sample=True`` a row also holds ``"cosine"``, the per-image array).
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
