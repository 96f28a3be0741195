"""Exercise checkers: ``check.nbNN_k(answer, ...)`` says **right** or **not yet**, and why — never the solution.

Every exercise of notebook NN puts its result in ``answer_NN_k`` (its cell says in what form); the cell after it calls
the checker with that answer and the notebook objects it is checked against (passed explicitly, so the checker
recomputes the reference itself and nothing is hidden in globals). A student copy (``reprolab.course.student``)
starts each answer at ``None``, which the checker reports as "no answer yet". The result shows as one line in a
notebook and is truthy only when right, so tests can ``assert`` it.
"""

from __future__ import annotations

import numpy as np
import torch

from reprolab.course.check_result import NONE, NOT_YET, RIGHT, Result, _acc, _close, _tuple  # noqa: F401


# ----- 00 · zero-shot --------------------------------------------------------------------------------------------
def nb00_1(answer, feats, labels, encoder, classnames) -> Result:
    """answer: {template with "{}": zero-shot accuracy on ``feats``} for two or more templates of your own."""
    if not isinstance(answer, dict) or len(answer) < 2:
        return NOT_YET(NONE if answer is None else "give a dict {template: accuracy} with at least two templates")
    for t, a in answer.items():
        if "{}" not in t:
            return NOT_YET(f"{t!r} has no '{{}}' where the class name goes")
        if t == "a photo of a {}.":
            return NOT_YET("'a photo of a {}.' is the baseline — write templates of your own")
        with torch.no_grad():
            text = encoder.encode_text_prompts([t.format(c) for c in classnames]).cpu()
        if not _close(a, _acc(encoder.logit_scale * feats @ text.t(), labels), 1e-3):
            return NOT_YET(f"the accuracy for {t!r} is not what its prompts give on `feats` — score all 10 prompts")
    return RIGHT(f"{len(answer)} templates, each accuracy measured on the cached image features")


def nb00_2(answer, labels, preds, classnames) -> Result:
    """answer: the three (true class, predicted class) name pairs with the most mistakes, most first."""
    if not _tuple(answer, 3) or not all(_tuple(p, 2) for p in answer):
        return NOT_YET(NONE if answer is None else "give a list of three (true, predicted) class-name pairs")
    counts: dict = {}
    for t, q in zip(labels.tolist(), preds.tolist()):
        if t != q:
            counts[(classnames[t], classnames[q])] = counts.get((classnames[t], classnames[q]), 0) + 1
    top = sorted(counts.values(), reverse=True)[:3]
    mine = [counts.get(tuple(p), 0) for p in answer]
    if any(p[0] == p[1] for p in answer):
        return NOT_YET("a pair with the same class twice is a correct prediction, not a confusion")
    if mine != top:
        return NOT_YET(f"your pairs have {mine} mistakes; the three most frequent confusions have more")
    return RIGHT(f"these are the three most frequent confusions ({top} images)")


# ----- 01 · image reprogramming ----------------------------------------------------------------------------------
def nb01_1(answer) -> Result:
    """answer: (mean |grad W| inside the mask, mean |grad W| on the frame), after one backward pass."""
    if not _tuple(answer, 2):
        return NOT_YET(NONE if answer is None else "give a pair (inside, frame) of mean absolute gradients")
    inside, frame = (float(a) for a in answer)
    if frame <= 0:
        return NOT_YET("the frame's gradient is zero — did `backward()` run before you read `W.grad`?")
    if inside != 0.0:
        return NOT_YET("inside the mask the gradient should be exactly what M ⊙ tanh(W) lets through — look again")
    return RIGHT("the mask multiplies the gradient inside the square by exactly 0; only the frame learns")


def nb01_2(answer, rp, tracker) -> Result:
    """answer: test accuracy (``tracker.accuracy``) of the trained frame placed around the image (up_res = mr_res)."""
    from reprolab.methods.reprogrammer import Reprogrammer

    if answer is None:
        return NOT_YET(NONE)
    alt = Reprogrammer(rp.encoder, mode=rp.mode, up_res=rp.image_rp.mr_res).setup(rp.classnames)
    alt.load_trainable_state(rp.trainable_state())
    if not _close(answer, tracker.accuracy(alt), 1e-6):
        return NOT_YET("that is not the accuracy of the trained frame with up_res = mr_res (no retraining)")
    return RIGHT("same W, different placement: the frame now surrounds a smaller image")


def nb01_3(answer, tracker, encoder, classnames) -> Result:
    """answer: {init_std: accuracy at step 0} for init_std 1.0 and 0.01 (image mode, seed 0, no training)."""
    from reprolab.methods.reprogrammer import Reprogrammer

    if not isinstance(answer, dict) or not {1.0, 0.01} <= set(answer):
        return NOT_YET(NONE if answer is None else "give a dict {1.0: accuracy, 0.01: accuracy}")
    for s in (1.0, 0.01):
        ref = tracker.accuracy(Reprogrammer(encoder, mode="image", init_std=s, seed=0).setup(classnames))
        if not _close(answer[s], ref, 1e-6):
            return NOT_YET(f"the step-0 accuracy for init_std={s} differs from a fresh Reprogrammer(seed=0)'s")
    return RIGHT("a random N(0,1) frame hides much of what the encoder knew; a small frame starts near zero-shot")


# ----- 02 · text reprogramming -----------------------------------------------------------------------------------
def nb02_1(answer, rp, tracker, template="a blurry photo of a {}.") -> Result:
    """answer: (zero-shot accuracy, learned-tables accuracy) under the new template."""
    from reprolab.methods import Reprogrammer, ZeroShot

    if not _tuple(answer, 2):
        return NOT_YET(NONE if answer is None else "give a pair (zero-shot accuracy, with the learned tables)")
    zs = tracker.accuracy(ZeroShot(rp.encoder, template=template).setup(rp.classnames))
    new = Reprogrammer(rp.encoder, mode="text", template=template).setup(rp.classnames)
    new.load_trainable_state(rp.trainable_state())
    if not _close(answer[0], zs, 1e-6):
        return NOT_YET(f"the zero-shot accuracy is not that of {template!r}")
    if not _close(answer[1], tracker.accuracy(new), 1e-6):
        return NOT_YET("the second number is not the trained tables under the new template")
    return RIGHT("rows shared by both templates carry the learning over; new words never got a gradient")


def nb02_2(answer, shift, prompt_rows) -> Result:
    """answer: fraction (0..1) of Σ‖ΔE_v‖² that lies in the prompt rows."""
    if answer is None:
        return NOT_YET(NONE)
    sq = shift.double() ** 2
    ref = float(sq[list(prompt_rows)].sum() / sq.sum())
    if _close(answer, 100 * ref, 1e-3):
        return NOT_YET("give a fraction between 0 and 1, not a percentage")
    if not _close(answer, ref, 1e-4):
        return NOT_YET("square the per-row shifts before summing, and divide by the total over all rows")
    return RIGHT(f"{ref:.1%} of the squared change sits in the {len(prompt_rows)} prompt rows")


# ----- 03 · residual α -------------------------------------------------------------------------------------------
def _best(curve_fn, answer, column, higher=True, tol=1e-9):
    grid = np.linspace(0, 1, 101)
    vals = np.array([curve_fn(a)[column] for a in grid])
    best = vals.max() if higher else vals.min()
    mine = curve_fn(float(answer))[column]
    return (mine >= best - tol) if higher else (mine <= best + tol)


def nb03_1(answer, explorer) -> Result:
    """answer: (α with the best holistic score, α with the lowest FPR95) on a grid of 0.01 or finer."""
    if not _tuple(answer, 2):
        return NOT_YET(NONE if answer is None else "give a pair (α_holistic, α_fpr95)")
    if not all(0 <= float(a) <= 1 for a in answer):
        return NOT_YET("α_zeroshot lies in [0, 1]")
    if not _best(explorer.metrics_at, answer[0], "holistic"):
        return NOT_YET("another α on a 0.01 grid has a higher holistic score")
    if not _best(explorer.metrics_at, answer[1], "fpr95", higher=False):
        return NOT_YET("another α on a 0.01 grid has a lower FPR95 (lower is better)")
    return RIGHT("both optima found; compare them — and ask which you could choose without OOD data")


def nb03_2(answer, explorer, wise_curve) -> Result:
    """answer: (WiSE-FT ID accuracy at α_ft = 0, RRP ID accuracy at α_zs = 1)."""
    if not _tuple(answer, 2):
        return NOT_YET(NONE if answer is None else "give a pair (WiSE-FT at α_ft=0, RRP at α_zs=1)")
    wise0 = float(wise_curve.loc[wise_curve["alpha"] == 0.0, "id_acc"].iloc[0])
    rrp1 = float(explorer.metrics_at(1.0)["id_acc"])
    if not (_close(answer[0], wise0, 1e-9) and _close(answer[1], rrp1, 1e-9)):
        return NOT_YET("read WiSE-FT at α_finetuned = 0 and RRP at α_zeroshot = 1 (the zero-shot ends)")
    if not _close(wise0, rrp1, 0.005):  # equal up to float rounding (a tie may flip one image)
        return NOT_YET("the two ends differ — both should be the zero-shot classifier; check the α directions")
    return RIGHT("both ends are the zero-shot classifier — the α's point in opposite directions")


from reprolab.course.check_late import (  # noqa: E402, F401
    nb04_1,
    nb04_2,
    nb05_1,
    nb05_2,
    nb06_1,
    nb06_2,
    nb07_1,
    nb07_2,
    nb08_1,
)
