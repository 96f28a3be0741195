"""The α sweeps of the two interpolating methods, as harness rows (see :mod:`reprolab.evaluation.evaluate`).

The Residual Reprogrammer's α (weight on the *zero-shot* features) is swept from cached features with
no encoder pass per α (:func:`rrp_features`, :func:`rrp_sweep`; the fast slider is
:mod:`reprolab.course.alpha_explorer`). WiSE-FT's α (weight on the *fine-tuned* weights) interpolates encoder weights,
so :func:`wise_ft_sweep` needs one encoder pass per α — inherent to weight-space ensembling.

The two α's mean opposite things: RRP's is the weight on the ZERO-SHOT side, WiSE-FT's on the FINE-TUNED side.
"""

from __future__ import annotations

import torch

from reprolab.errors import ReprolabError
from reprolab.evaluation.evaluate import collect, evaluate_method, rows_from_logits, split_sets
from reprolab.reprogramming.residual import residual_logits


def rrp_features(rp_method, sets, cache=None, batch_size: int = 256, progress: bool = True) -> dict:
    """Everything the Residual Reprogrammer needs for any α, from one pass of RP and one of zero-shot.

    Returns ``{"logit_scale", "text_rp" [C,D], "text_zs" [C,D], "sets": {name: {"kind", "labels", "image_rp",
    "image_zs", "class_subset"}}}``. ``rp_method`` is a Reprogrammer or a ResidualReprogrammer (its RP is used).
    """
    from reprolab.methods.base import ZeroShot
    from reprolab.methods.reprogrammer import Reprogrammer
    from reprolab.methods.residual_reprogrammer import ResidualReprogrammer

    rp = rp_method.rp if isinstance(rp_method, ResidualReprogrammer) else rp_method
    if not isinstance(rp, Reprogrammer):
        raise ReprolabError(f"rrp_features needs a Reprogrammer or ResidualReprogrammer, got {type(rp).__name__}")
    if not rp.classnames:
        raise ReprolabError("the reprogrammer has no classes; call rp.setup(id_set.classnames) first")
    if isinstance(rp_method, ResidualReprogrammer):  # its zero-shot half: ``zs_input`` and ``zs_dtype``
        zs = rp_method.zero_shot_branch()
    else:
        zs = ZeroShot(rp.encoder, rp.template).setup(rp.classnames)
    f_rp = collect(rp, sets, cache, batch_size, progress=progress)
    f_zs = collect(zs, sets, cache, batch_size, progress=progress)
    was = rp.training
    rp.eval()
    with torch.no_grad():
        text_rp, text_zs = rp.text_features().detach().float().cpu(), zs.text_features().detach().float().cpu()
    rp.train(was)
    return {
        "logit_scale": float(rp.encoder.logit_scale),
        "text_rp": text_rp,
        "text_zs": text_zs,
        "sets": {
            d.name: {
                "kind": d.kind,
                "labels": f_rp[d.name]["labels"],
                "image_rp": f_rp[d.name]["image_features"],
                "image_zs": f_zs[d.name]["image_features"],
                "class_subset": getattr(d, "class_subset", None),
            }
            for d in sets
        },
    }


def rrp_sweep(
    feats: dict, alphas, T: float = 0.01, score: str = "mcm", renormalise: bool = False, convention: str = "kit"
) -> list[dict]:
    """Rows (as :func:`evaluate_method`) for each α = ``alpha_zeroshot`` via :func:`reprolab.reprogramming.residual.residual_logits`,
    each with ``"alpha"`` and ``"alpha_meaning": "zero-shot weight (RRP)"``. No encoder pass."""
    rows = []
    for a in alphas:
        entries = [
            {
                "name": n,
                "kind": f["kind"],
                "labels": f["labels"],
                "class_subset": f["class_subset"],
                "logits": residual_logits(
                    f["image_rp"],
                    f["image_zs"],
                    feats["text_rp"],
                    feats["text_zs"],
                    a,
                    feats["logit_scale"],
                    renormalise,
                ),
            }
            for n, f in feats["sets"].items()
        ]
        for r in rows_from_logits(entries, T, score, True, feats["logit_scale"], convention):
            rows.append(dict(r, alpha=float(a), alpha_meaning="zero-shot weight (RRP)"))
    return rows


def wise_ft_sweep(
    wise_method,
    sets,
    alphas,
    T: float = 0.01,
    cache=None,
    batch_size: int = 256,
    score: str = "mcm",
    progress: bool = True,
    convention: str = "kit",
) -> list[dict]:
    """Rows for each WiSE-FT α (weight on the *fine-tuned* weights), via ``wise_method.set_alpha(α)``; one encoder
    pass per α (weights change). Rows carry ``"alpha"`` and ``"alpha_meaning": "fine-tuned weight (WiSE-FT)"``;
    the method's own α is restored afterwards."""
    id_set, shift_sets, ood_sets = split_sets(sets)
    original, rows = getattr(wise_method, "alpha_finetuned", None), []
    try:
        for a in alphas:
            wise_method.set_alpha(a)
            rows_a = evaluate_method(
                wise_method, id_set, shift_sets, ood_sets, T, cache, batch_size, score, progress, convention
            )
            for r in rows_a:
                rows.append(dict(r, alpha=float(a), alpha_meaning="fine-tuned weight (WiSE-FT)"))
    finally:
        if original is not None:
            wise_method.set_alpha(original)
    return rows
