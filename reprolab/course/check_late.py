"""Checkers of notebooks 04–07 (see :mod:`reprolab.course.check`, which re-exports them)."""

from __future__ import annotations

import numpy as np
import torch

from reprolab.course.check_result import NONE, NOT_YET, RIGHT, Result, _close, _tuple


# ----- 04 · fine-tuning vs reprogramming -------------------------------------------------------------------------
def nb04_1(answer, feats) -> Result:
    """answer: the α_zeroshot in {0, 0.1, …, 1} with the best holistic score of RRP on the cached features."""
    from reprolab.evaluation.alpha_sweeps import rrp_sweep
    from reprolab.evaluation.evaluate import summary

    if answer is None:
        return NOT_YET(NONE)
    grid = np.round(np.linspace(0, 1, 11), 2)
    scores = {float(a): summary(rrp_sweep(feats, [a]))["holistic"] for a in grid}
    if not any(_close(answer, a, 1e-9) for a in grid):
        return NOT_YET("pick α from the grid 0, 0.1, …, 1")
    if scores[round(float(answer), 1)] < max(scores.values()) - 1e-12:
        return NOT_YET("another α of the grid has a higher holistic score — sweep all eleven")
    return RIGHT("the best holistic α of this run; compare it with the α the table used (0.4)")


def nb04_2(answer, methods, test, shifts, oods, cache) -> Result:
    """answer: {label: {"mcm": AUROC, "energy": AUROC}} for the methods in ``methods`` ({label: method})."""
    from reprolab.evaluation.evaluate import evaluate_method, summary

    if not isinstance(answer, dict) or set(answer) != set(methods):
        return NOT_YET(NONE if answer is None else f"give a dict with the keys {sorted(methods)}")
    for label, m in methods.items():
        for score in ("mcm", "energy"):
            ref = summary(evaluate_method(m, test, shifts, oods, cache=cache, score=score, progress=False))["auroc"]
            got = answer[label].get(score) if isinstance(answer[label], dict) else None
            if got is not None and _close(got, 100 * ref, 0.05):
                return NOT_YET("give AUROC as a fraction (0..1), as `summary` returns it")
            if not _close(got, ref, 1e-6):
                return NOT_YET(f"the {score} AUROC of {label!r} differs from its mean AUROC over the OOD sets")
    return RIGHT("same cached logits, two scores — compare the ranking under each")


# ----- 05 · embedding drift --------------------------------------------------------------------------------------
def nb05_1(answer, features, alpha=0.4) -> Result:
    """answer: mean cosine between the pretrained features and RRP's (α_zs = 0.4, L2-normalised) features."""
    from reprolab.evaluation.drift import cosine_drift
    from reprolab.reprogramming.residual import blend

    if answer is None:
        return NOT_YET(NONE)
    rrp = torch.nn.functional.normalize(blend(features["reprogrammed"], features["pretrained"], alpha), dim=-1)
    ref = float(np.mean(cosine_drift(features["pretrained"], rrp)))
    if not _close(answer, ref, 1e-4):
        return NOT_YET("blend with α = weight on the ZERO-SHOT (pretrained) features, normalise, then compare")
    return RIGHT(f"RRP sits between the reprogrammer and the pretrained encoder (mean cosine {ref:.3f})")


def nb05_2(answer, features, labels) -> Result:
    """answer: the mean cosine (pretrained vs fine-tuned) of each class, in class order (one number per class)."""
    from reprolab.evaluation.drift import cosine_drift

    if answer is None:
        return NOT_YET(NONE)
    c = np.asarray(cosine_drift(features["pretrained"], features["fine-tuned"]))
    y = np.asarray(labels)
    ref = np.array([c[y == k].mean() for k in np.unique(y)])
    mine = np.asarray(answer, dtype=float).ravel()
    if mine.shape != ref.shape:
        return NOT_YET(f"give one number per class ({len(ref)}), in class order")
    if not np.allclose(mine, ref, atol=1e-4):
        return NOT_YET("group the per-image cosines by the true class and average each group")
    return RIGHT("per-class drift of the fine-tuned features")


# ----- 06 · OOD detection ----------------------------------------------------------------------------------------
def nb06_1(answer, zs, test, oods, cache) -> Result:
    """answer: {T: mean AUROC of the zero-shot MCM score over the OOD sets} for T in 0.001, 0.01, 0.1, 1."""
    from reprolab.evaluation.evaluate import collect, ood_score
    from reprolab.evaluation.metrics import ood_metrics

    if not isinstance(answer, dict) or not {0.001, 0.01, 0.1, 1.0} <= set(answer):
        return NOT_YET(NONE if answer is None else "give a dict {T: mean AUROC} for T = 0.001, 0.01, 0.1 and 1")
    outs = collect(zs, [test, *oods], cache, batch_size=128, progress=False)
    for t in (0.001, 0.01, 0.1, 1.0):
        sc = {d.name: ood_score(outs[d.name]["logits"], T=t) for d in [test, *oods]}
        ref = float(np.mean([ood_metrics(sc[test.name], sc[d.name])["auroc"] for d in oods]))
        if not _close(answer[t], ref, 1e-6):
            return NOT_YET(f"the AUROC at T = {t} is off — recompute the scores from the cached logits at that T")
    return RIGHT("the best T depends on how spread the encoder's cosines are")


def nb06_2(answer, s, ood="dtd10") -> Result:
    """answer: (threshold t, number of ID images rejected at t): the smallest t that rejects ≥ 90% of ``ood``."""
    if not _tuple(answer, 2):
        return NOT_YET(NONE if answer is None else "give a pair (threshold, number of ID images rejected)")
    t, n = float(answer[0]), answer[1]
    o = np.asarray(s[ood])
    if (o < t).mean() < 0.9:
        return NOT_YET(f"at that threshold fewer than 90% of {ood} are rejected (rejected means s < t)")
    below = np.unique(o[o < t])
    if len(below) and (o < below[-1]).mean() >= 0.9:
        return NOT_YET("a smaller threshold still rejects 90% — find the smallest")
    if int(n) != int((np.asarray(s["ID"]) < t).sum()):
        return NOT_YET("count the ID images with a score below your threshold")
    return RIGHT("the smallest such threshold, and its price in ID images")


# ----- 07 · full benchmark ---------------------------------------------------------------------------------------
def nb07_1(answer, df) -> Result:
    """answer: {method label: name of its hardest OOD set (lowest mean AUROC)} for every method label of ``df``."""
    if not isinstance(answer, dict) or not answer:
        return NOT_YET(NONE if answer is None else "give a dict {method label: hardest OOD set}")
    ood = df[df.kind == "ood"].copy()
    ood["label"] = [m if a is None or np.isnan(a) else f"{m} (α={a:g})" for m, a in zip(ood["method"], ood["alpha"])]
    ref = ood.pivot_table(index="label", columns="eval_set", values="auroc", aggfunc="mean").idxmin(axis=1)
    if set(answer) != set(ref.index):
        return NOT_YET(f"one entry per method label ({len(ref)}: every method and every α of the sweeps)")
    wrong = [m for m in ref.index if answer[m] != ref[m]]
    if wrong:
        return NOT_YET(f"{len(wrong)} method(s) have another hardest set, e.g. {wrong[0]!r}")
    return RIGHT("the hardest set per method — is it the same for all?")


def nb07_2(answer, rp, x, scales=None) -> Result:
    """answer: number of images (of ``x``) whose prediction at λ = 0 differs from λ = 1."""
    from reprolab.course.perturbation_explorer import perturbed_probs

    if answer is None:
        return NOT_YET(NONE)
    p, _ = perturbed_probs(rp, x, np.array([0.0, 1.0]))
    pred = np.asarray(p).argmax(axis=2)
    ref = int((pred[0] != pred[-1]).sum())
    if int(answer) != ref:
        return NOT_YET("compare each image's prediction without the frame (λ = 0) and with it (λ = 1)")
    return RIGHT(f"the frame changes {ref} of {len(x)} predictions")


# ----- 08 · reprogramming a classifier -----------------------------------------------------------------------------
def nb08_1(answer, models: dict, test, ood) -> Result:
    """answer: {model name: OOD AUROC with the energy score} for every model of ``models`` (same names)."""
    from reprolab.evaluation.evaluate import evaluate_method, summary

    if not isinstance(answer, dict) or not answer:
        return NOT_YET(NONE if answer is None else "give a dict {model name: AUROC with the energy score}")
    if set(answer) != set(models):
        return NOT_YET(f"one entry per model: {', '.join(models)}")
    for name, m in models.items():
        ref = summary(evaluate_method(m, test, [], ood, score="energy", progress=False))["auroc"]
        if not _close(answer[name], ref, 1e-6):
            return NOT_YET(f"the AUROC for {name!r} is not its energy score's — score= 'energy', same OOD sets")
    return RIGHT("each model scored by energy on the same OOD sets; now compare the order with MSP's")
