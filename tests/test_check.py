"""Exercise checkers (reprolab/course/check.py): right on the reference answer, "not yet" on a wrong one, and the
reason never contains the reference value. Small synthetic contexts; the notebooks' own solutions are checked by
tests/test_student.py."""

import numpy as np
import pandas as pd
import pytest
import torch

from reprolab.course import check


def test_result_is_truthy_only_when_right_and_says_so():
    assert check.RIGHT("x") and not check.NOT_YET("y")
    assert repr(check.RIGHT("x")).startswith("✓ right") and repr(check.NOT_YET("y")).startswith("✗ not yet")
    assert "no answer yet" in repr(check.nb01_1(None))


def test_gradient_inside_the_mask_must_be_exactly_zero():
    assert check.nb01_1((0.0, 3e-4))
    assert not check.nb01_1((1e-9, 3e-4))  # "almost zero" is not the point of the exercise
    assert not check.nb01_1((0.0, 0.0))  # no backward pass


def test_confused_pairs_compare_counts_not_order_of_ties():
    names = ["cat", "dog", "car"]
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    preds = torch.tensor([1, 1, 1, 0, 0, 0, 1, 2, 2])  # cat→dog 3, dog→cat 2, car→cat 1, car→dog 1
    assert check.nb00_2([("cat", "dog"), ("dog", "cat"), ("car", "dog")], labels, preds, names)
    assert check.nb00_2([("cat", "dog"), ("dog", "cat"), ("car", "cat")], labels, preds, names)  # a tie
    wrong = check.nb00_2([("dog", "cat"), ("cat", "dog"), ("car", "dog")], labels, preds, names)
    assert not wrong and "[2, 3, 1]" in wrong.why


def test_prompt_row_fraction():
    shift = torch.tensor([3.0, 0.0, 4.0, 1.0])
    rows = [0, 2]
    assert check.nb02_2(25 / 26, shift, rows)
    assert "percentage" in check.nb02_2(100 * 25 / 26, shift, rows).why
    assert not check.nb02_2(7 / 8, shift, rows)  # norms summed instead of squares


def test_smallest_threshold_rejecting_90_percent():
    s = {"ID": np.linspace(0.5, 1.0, 20), "dtd10": np.arange(10) / 10}  # dtd10 scores 0.0 … 0.9
    t = np.nextafter(0.8, 1)  # rejects 0.0 … 0.8: 9 of 10
    n_id = int((s["ID"] < t).sum())
    assert check.nb06_2((t, n_id), s)
    assert "smaller threshold" in check.nb06_2((0.95, int((s["ID"] < 0.95).sum())), s).why
    assert "fewer than 90%" in check.nb06_2((0.8, n_id), s).why  # 0.8 itself is kept (s < t rejects)
    assert "count the ID" in check.nb06_2((t, n_id + 1), s).why
    # notebook 06's solution on 100 scores is right; the 90% quantile ("higher") rejects 91 and is not the smallest
    s = {"ID": np.linspace(0.5, 1.0, 20), "dtd10": np.random.default_rng(0).random(100)}
    k = int(np.ceil(0.9 * 100))
    t = np.nextafter(np.sort(s["dtd10"])[k - 1], np.inf)
    assert check.nb06_2((t, int((s["ID"] < t).sum())), s)
    q = np.nextafter(np.quantile(s["dtd10"], 0.9, method="higher"), np.inf)
    assert "smaller threshold" in check.nb06_2((q, int((s["ID"] < q).sum())), s).why


def test_per_class_drift_and_rrp_cosine():
    g = torch.Generator().manual_seed(0)
    pre = torch.nn.functional.normalize(torch.randn(12, 8, generator=g), dim=-1)
    feats = {
        "pretrained": pre,
        "fine-tuned": pre + 0.3 * torch.randn(12, 8, generator=g),
        "reprogrammed": torch.nn.functional.normalize(torch.randn(12, 8, generator=g), dim=-1),
    }
    labels = torch.arange(12) % 3
    from reprolab.evaluation.drift import cosine_drift

    c = cosine_drift(pre, feats["fine-tuned"])
    ref = [c[labels.numpy() == k].mean() for k in range(3)]
    assert check.nb05_2(ref, feats, labels) and not check.nb05_2(ref[::-1], feats, labels)
    assert not check.nb05_2(ref[:2], feats, labels)
    rrp = torch.nn.functional.normalize(0.4 * feats["reprogrammed"] + 0.6 * pre, dim=-1)
    assert not check.nb05_1(float(cosine_drift(pre, rrp).mean()), feats)  # α on the wrong side
    rrp = torch.nn.functional.normalize(0.6 * feats["reprogrammed"] + 0.4 * pre, dim=-1)
    assert check.nb05_1(float(cosine_drift(pre, rrp).mean()), feats)


class Curve:
    """An α explorer stand-in: holistic peaks at 0.3, FPR95 is lowest at 0.7."""

    def metrics_at(self, a):
        return {"holistic": -((a - 0.3) ** 2), "fpr95": (a - 0.7) ** 2, "id_acc": 0.5}


def test_best_alphas_and_the_zero_shot_ends():
    assert check.nb03_1((0.3, 0.7), Curve())
    assert "holistic" in check.nb03_1((0.7, 0.7), Curve()).why and "FPR95" in check.nb03_1((0.3, 0.3), Curve()).why
    wise = pd.DataFrame({"alpha": [0.0, 1.0], "id_acc": [0.5, 0.6]})
    assert check.nb03_2((0.5, 0.5), Curve(), wise) and not check.nb03_2((0.6, 0.5), Curve(), wise)


def test_hardest_ood_set_per_method():
    df = pd.DataFrame(
        {
            "kind": ["ood"] * 4 + ["id"],
            "method": ["zeroshot", "zeroshot", "residual_reprogrammer", "residual_reprogrammer", "zeroshot"],
            "alpha": [None, None, 0.2, 0.2, None],
            "eval_set": ["dtd10", "digits", "dtd10", "digits", "cifar10"],
            "auroc": [0.6, 0.8, 0.9, 0.7, np.nan],
        }
    )
    right = {"zeroshot": "dtd10", "residual_reprogrammer (α=0.2)": "digits"}
    assert check.nb07_1(right, df)
    assert not check.nb07_1({**right, "zeroshot": "digits"}, df)
    assert not check.nb07_1({"zeroshot": "dtd10"}, df)


@pytest.mark.parametrize("name", [f"nb0{n}_{k}" for n in range(8) for k in (1, 2)] + ["nb01_3"])
def test_every_exercise_has_a_checker_that_says_no_answer_yet(name):
    fn = getattr(check, name)
    assert fn.__doc__ and fn.__doc__.startswith("answer:")
    args = [None] * (fn.__code__.co_argcount - len(fn.__defaults__ or ()))
    r = fn(*args)  # every checker looks at the answer before it touches the notebook's objects
    assert not r and "no answer yet" in r.why


def test_tracker_remembers_a_method_it_measured_and_only_that_method(tiny, tiny_set, monkeypatch):
    """A checker re-deriving a student's answer costs no second pass (CLIP on a CPU: ≈ 13 s per pass) — but a method
    with another frame, placement, template or class order is measured, not served a remembered accuracy."""
    from reprolab.course.plots import AccuracyTracker
    from reprolab.methods import Reprogrammer, ZeroShot

    tracker, passes = AccuracyTracker(tiny_set), []
    real = AccuracyTracker.measure
    monkeypatch.setattr(AccuracyTracker, "measure", lambda self, m: passes.append(1) or real(self, m))
    names = tiny_set.classnames
    rp = Reprogrammer(tiny, mode="image", init_std=1.0, seed=0).setup(names)
    first = tracker.accuracy(rp)
    assert tracker.accuracy(Reprogrammer(tiny, mode="image", init_std=1.0, seed=0).setup(names)) == first
    assert len(passes) == 1  # the same frame, placement and classes: remembered
    with torch.no_grad():
        rp.image_rp.W.add_(0.5)
    tracker.accuracy(rp)  # trained a little: another state
    alt = Reprogrammer(tiny, mode="image", up_res=rp.image_rp.mr_res).setup(names)
    alt.load_trainable_state(rp.trainable_state())
    tracker.accuracy(alt)  # same W, other placement (notebook 01, exercise 2)
    tracker.accuracy(ZeroShot(tiny).setup(names))
    tracker.accuracy(ZeroShot(tiny, template="a blurry photo of a {}.").setup(names))
    tracker.accuracy(ZeroShot(tiny).setup(names[::-1]))
    assert len(passes) == 6
    assert tracker.measure(rp) == tracker.accuracy(rp) and len(passes) == 7
