"""The evaluation harness, the RRP / WiSE-FT α sweeps and the fast α explorer."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import TinySet

from reprolab.course.alpha_explorer import AlphaExplorer
from reprolab.errors import ReprolabError, ShapeError
from reprolab.evaluation import scores
from reprolab.evaluation.alpha_sweeps import rrp_features, rrp_sweep, wise_ft_sweep
from reprolab.evaluation.evaluate import (
    collect,
    drift_rows,
    evaluate_method,
    ood_score,
    rows_from_logits,
    shift_mean,
    summary,
)
from reprolab.evaluation.features import FeatureCache
from reprolab.evaluation.metrics import accuracy, ood_metrics
from reprolab.methods.base import Method, ZeroShot
from reprolab.methods.reprogrammer import Reprogrammer
from reprolab.methods.residual_reprogrammer import ResidualReprogrammer
from reprolab.reprogramming.residual import residual_logits

CLASSES = ["cat", "dog", "car", "ship"]


def sets():
    return (
        TinySet(n=24, seed=0, name="id"),
        [TinySet(n=16, seed=1, name="shift", kind="shift")],
        [TinySet(n=20, seed=2, name="ood_a", kind="ood"), TinySet(n=12, seed=3, size=16, name="ood_b", kind="ood")],
    )


def trained_like_rp(encoder, mode="both", seed=0):
    """A Reprogrammer whose state is far from its initialisation (a stand-in for a trained one)."""
    rp = Reprogrammer(encoder, mode=mode, seed=seed).setup(CLASSES)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        rp.image_rp.W.add_(0.5 * torch.randn(rp.image_rp.W.shape, generator=g))
        rp.text_rp.row_delta.add_(0.05 * torch.randn(rp.text_rp.row_delta.shape, generator=g))
    return rp


class Classifier(Method):
    """A classifier baseline: a linear head on frozen image features (clip_style False)."""

    name, clip_style = "head", False

    def __init__(self, encoder):
        super().__init__(encoder)
        self.head = torch.nn.Linear(encoder.encode_image(torch.zeros(1, 3, 32, 32)).shape[1], len(CLASSES))

    def logits(self, images):
        return self.head(self.encoder.encode_image(self.encoder.resize(images)))


class FakeWise(ZeroShot):
    """WiSE-FT stand-in: α (fine-tuned weight) mixes the zero-shot image features with a fixed rotation of them."""

    name = "wise_ft"

    def __init__(self, encoder, alpha_finetuned=0.5):
        super().__init__(encoder)
        self.alpha_finetuned = alpha_finetuned
        self.passes = 0

    def set_alpha(self, a):
        self.alpha_finetuned = float(a)

    def image_features(self, images):
        self.passes += 1
        f = super().image_features(images)
        return F.normalize((1 - self.alpha_finetuned) * f + self.alpha_finetuned * f.roll(1, dims=1), dim=-1)


def test_rows_kinds_and_metrics_match_the_metric_functions(tiny):
    id_set, shift, ood = sets()
    zs = ZeroShot(tiny).setup(CLASSES)
    rows = evaluate_method(zs, id_set, shift, ood, batch_size=7, progress=False)
    assert [(r["eval_set"], r["kind"], r["n"]) for r in rows] == [
        ("id", "id", 24),
        ("shift", "shift", 16),
        ("ood_a", "ood", 20),
        ("ood_b", "ood", 12),
    ]
    out = collect(zs, [id_set, *shift, *ood], progress=False)
    id_scores = scores.mcm(out["id"]["logits"] / 100.0, 0.01)
    assert rows[0]["metrics"] == {"acc": accuracy(out["id"]["logits"], id_set.labels)}
    assert rows[1]["metrics"] == {"acc": accuracy(out["shift"]["logits"], shift[0].labels)}
    for r in rows[2:]:
        assert r["metrics"] == pytest.approx(ood_metrics(id_scores, scores.mcm(out[r["eval_set"]]["logits"] / 100.0)))
    assert shift_mean(rows) == rows[1]["metrics"]["acc"]
    s = summary(rows)
    assert s["auroc"] == pytest.approx(np.mean([r["metrics"]["auroc"] for r in rows[2:]]))
    assert s["holistic"] == pytest.approx((s["id_acc"] + s["shift_acc"] + s["auroc"]) / 3)


@pytest.mark.parametrize("score", ["energy", "max_logit"])
def test_other_scores_and_classifier_convention(tiny, score):
    id_set, shift, ood = sets()
    torch.manual_seed(0)
    clf = Classifier(tiny).setup(CLASSES)
    out = collect(clf, [id_set, ood[0]], progress=False)
    assert "image_features" not in out["id"]
    rows = evaluate_method(clf, id_set, [], ood[:1], progress=False)  # default score: MSP of the head's logits
    assert rows[1]["metrics"] == pytest.approx(
        ood_metrics(scores.mcm_from_logits(out["id"]["logits"]), scores.mcm_from_logits(out["ood_a"]["logits"]))
    )
    rows = evaluate_method(clf, id_set, [], ood[:1], score=score, progress=False)
    ref = {"energy": lambda x: scores.energy(x, 1.0), "max_logit": scores.max_logit}[score]
    assert rows[1]["metrics"] == pytest.approx(ood_metrics(ref(out["id"]["logits"]), ref(out["ood_a"]["logits"])))
    cos = np.random.default_rng(0).uniform(-1, 1, (5, 4))
    assert np.allclose(ood_score(100 * cos, True, 100.0, 0.05, "energy"), scores.energy(cos, 0.05))
    with pytest.raises(ReprolabError, match="score"):
        ood_score(cos, score="msp")


def test_zeroshot_equals_residual_reprogrammer_at_alpha_one(tiny, tmp_path):
    id_set, shift, ood = sets()
    zs = ZeroShot(tiny).setup(CLASSES)
    rrp = ResidualReprogrammer(trained_like_rp(tiny), alpha_zeroshot=1.0).setup(CLASSES)
    all_sets = [id_set, *shift, *ood]
    a, b = collect(zs, all_sets, progress=False), collect(rrp, all_sets, FeatureCache(tmp_path), progress=False)
    for name in a:
        assert torch.equal(a[name]["logits"], b[name]["logits"])
    assert evaluate_method(zs, id_set, shift, ood, progress=False) == evaluate_method(
        rrp, id_set, shift, ood, cache=tmp_path, progress=False
    )


def test_rrp_sweep_matches_rp_zeroshot_and_rrp_methods(tiny, tmp_path):
    id_set, shift, ood = sets()
    all_sets = [id_set, *shift, *ood]
    rp = trained_like_rp(tiny)
    feats = rrp_features(rp, all_sets, FeatureCache(tmp_path), batch_size=8, progress=False)
    own = collect(rp, all_sets, tmp_path, progress=False)  # cache hit: same key as inside rrp_features
    for name, f in feats["sets"].items():
        at0 = residual_logits(f["image_rp"], f["image_zs"], feats["text_rp"], feats["text_zs"], 0.0)
        assert torch.allclose(at0, own[name]["logits"], atol=1e-5)
    rows = rrp_sweep(feats, [0.0, 0.4, 1.0])
    assert {r["alpha"] for r in rows} == {0.0, 0.4, 1.0} and rows[0]["alpha_meaning"] == "zero-shot weight (RRP)"
    by_alpha = {
        a: [{k: r[k] for k in ("eval_set", "kind", "n", "metrics")} for r in rows if r["alpha"] == a]
        for a in (0.0, 0.4, 1.0)
    }
    expect = {0.0: rp, 0.4: ResidualReprogrammer(rp, 0.4).setup(CLASSES), 1.0: ZeroShot(tiny).setup(CLASSES)}
    for a, method in expect.items():
        ref = evaluate_method(method, id_set, shift, ood, cache=tmp_path, progress=False)
        for got, want in zip(by_alpha[a], ref):
            assert got["eval_set"] == want["eval_set"] and got["metrics"] == pytest.approx(want["metrics"], abs=1e-9)


@pytest.mark.parametrize("renormalise", [False, True])
def test_alpha_explorer_equals_direct_computation(renormalise):
    g = torch.Generator().manual_seed(0)

    def feats(n, d=24):
        return F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1)

    C = 5
    t_rp, t_zs = feats(C), feats(C)
    data = {
        "id": (feats(300), feats(300), torch.randint(0, C, (300,), generator=g)),
        "s1": (feats(80), feats(80), torch.randint(0, C, (80,), generator=g)),
        "s2": (feats(50), feats(50), torch.randint(0, C, (50,), generator=g)),
        "o1": (feats(200), feats(200), None),
        "o2": (feats(90), feats(90), None),
    }
    ex = AlphaExplorer(
        *data["id"][:2],
        t_rp,
        t_zs,
        data["id"][2],
        shift={k: data[k] for k in ("s1", "s2")},
        ood={k: data[k][:2] for k in ("o1", "o2")},
        T=0.02,
        renormalise=renormalise,
    )
    for a in (0.0, 0.25, 0.6, 1.0):
        logits = {k: residual_logits(v[0], v[1], t_rp, t_zs, a, 100.0, renormalise) for k, v in data.items()}
        got_logits = ex.logits_at(a)
        for k in data:
            assert np.allclose(got_logits[k], logits[k].numpy(), atol=1e-10)
        sc = {k: scores.mcm(v / 100.0, 0.02) for k, v in logits.items()}
        ood = [ood_metrics(sc["id"], sc[k]) for k in ("o1", "o2")]
        m = ex.metrics_at(a, per_set=True)
        assert m["id_acc"] == accuracy(logits["id"], data["id"][2])
        assert m["shift_acc"] == pytest.approx(np.mean([accuracy(logits[k], data[k][2]) for k in ("s1", "s2")]))
        assert m["fpr95"] == pytest.approx(np.mean([o["fpr95"] for o in ood]))
        assert m["auroc"] == pytest.approx(np.mean([o["auroc"] for o in ood]))
        assert m["sets"]["o2"]["auroc"] == pytest.approx(ood[1]["auroc"])
    curve = ex.curve([0.0, 0.5, 1.0])
    assert isinstance(curve, pd.DataFrame) and list(curve["alpha"]) == [0.0, 0.5, 1.0]
    assert {"id_acc", "shift_acc", "fpr95", "auroc", "holistic"} <= set(curve.columns)
    with pytest.raises(ReprolabError, match="alpha_zeroshot"):
        ex.metrics_at(1.5)
    with pytest.raises(ShapeError, match="same images"):
        AlphaExplorer(feats(4), feats(5), t_rp, t_zs, torch.zeros(4))


def test_alpha_explorer_from_methods_matches_rrp_sweep(tiny, tmp_path):
    id_set, shift, ood = sets()
    rp = trained_like_rp(tiny, mode="image")
    ex = AlphaExplorer.from_methods(rp, id_set, shift, ood, cache=tmp_path, progress=False)
    feats = rrp_features(rp, [id_set, *shift, *ood], tmp_path, progress=False)  # all cache hits now
    for a in (0.0, 0.5):
        s = summary(rrp_sweep(feats, [a]))
        m = ex.metrics_at(a)
        for k in ("id_acc", "shift_acc", "fpr95", "auroc"):
            assert m[k] == pytest.approx(s[k], abs=1e-6)


def test_drift_rows(tiny):
    id_set, shift, _ = sets()
    other = TinySet(n=20, seed=5, name="other")
    other.classnames = ["tree", "boat", "bird", "house"]
    zs = ZeroShot(tiny).setup(CLASSES)
    same = drift_rows(zs, zs, [id_set], other_task=other, progress=False)
    assert same[0]["metrics"]["cosine_mean"] == pytest.approx(1.0) and same[0]["metrics"]["cka"] == pytest.approx(1.0)
    assert same[1]["kind"] == "other_task" and same[1]["metrics"]["zs_acc_change"] == 0.0
    rows = drift_rows(
        trained_like_rp(tiny, mode="image"), zs, [id_set, *shift], other_task=other, per_sample=True, progress=False
    )
    assert [r["eval_set"] for r in rows] == ["id", "shift", "other"]
    assert rows[0]["metrics"]["cosine_mean"] < 0.999 and rows[0]["cosine"].shape == (24,)
    m = rows[2]["metrics"]
    assert m["zs_acc_before"] == same[1]["metrics"]["zs_acc_before"]
    assert m["zs_acc_change"] == pytest.approx(m["zs_acc_after"] - m["zs_acc_before"])


def test_wise_ft_sweep_sets_alpha_per_pass_and_restores_it(tiny, tmp_path):
    id_set, shift, ood = sets()
    wise = FakeWise(tiny, alpha_finetuned=0.3).setup(CLASSES)
    rows = wise_ft_sweep(wise, [id_set, *shift, *ood], [0.0, 1.0], cache=tmp_path, progress=False)
    assert wise.alpha_finetuned == 0.3
    assert [r["alpha"] for r in rows] == [0.0] * 4 + [1.0] * 4
    assert rows[0]["alpha_meaning"] == "fine-tuned weight (WiSE-FT)"
    zs_rows = evaluate_method(ZeroShot(tiny).setup(CLASSES), id_set, shift, ood, progress=False)
    assert [r["metrics"] for r in rows[:4]] == [r["metrics"] for r in zs_rows]
    passes = wise.passes
    wise_ft_sweep(wise, [id_set, *shift, *ood], [0.0, 1.0], cache=tmp_path, progress=False)
    assert wise.passes == passes  # second sweep: every α came from the cache


def test_harness_input_errors(tiny):
    id_set, shift, ood = sets()
    zs = ZeroShot(tiny).setup(["a", "b", "c", "d"])
    with pytest.raises(ReprolabError, match="setup"):
        evaluate_method(zs, id_set, shift, ood, progress=False)
    zs.setup(CLASSES)
    with pytest.raises(ReprolabError, match="twice"):
        evaluate_method(zs, id_set, [id_set], [], progress=False)
    with pytest.raises(ReprolabError, match="one ID set"):
        rows_from_logits([{"name": "o", "kind": "ood", "logits": torch.zeros(2, 4), "labels": torch.zeros(2)}])


def test_class_subset_sets_use_only_their_classes():
    # ImageNet-A/R protocol: a set holding classes {0, 2} is scored on those two columns only
    logits = torch.tensor([[0.0, 9.0, 1.0], [2.0, 9.0, 1.0], [0.0, 9.0, 3.0]])
    labels = torch.tensor([2, 0, 2])
    rows = rows_from_logits(
        [{"name": "r", "kind": "shift", "logits": logits, "labels": labels, "class_subset": torch.tensor([0, 2])}]
    )
    assert rows[0]["metrics"]["acc"] == 1.0  # column 1 (absent class) would have won every row
