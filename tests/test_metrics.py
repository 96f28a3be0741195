"""reprolab.evaluation.metrics: OOD metrics agree with scikit-learn and with hand computation (ID positive, higher = ID)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from reprolab.errors import ReprolabError
from reprolab.evaluation.metrics import accuracy, fast_fpr95_auroc, holistic_score, ood_metrics


def sklearn_reference(i, o):
    y = np.r_[np.ones(len(i)), np.zeros(len(o))]
    s = np.r_[i, o]
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return {
        "fpr95": fpr[np.flatnonzero(tpr >= 0.95)[0]],
        "auroc": roc_auc_score(y, s),
        "aupr_in": average_precision_score(y, s),
        "aupr_out": average_precision_score(1 - y, -s),
    }


def check_equal(i, o):
    ref, got = sklearn_reference(i, o), ood_metrics(i, o)
    assert set(got) == {"fpr95", "auroc", "aupr_in", "aupr_out"}
    for k in ref:
        assert got[k] == pytest.approx(ref[k], abs=1e-12), k
    fpr95, auroc = fast_fpr95_auroc(i, o)
    assert fpr95 == ref["fpr95"]  # same count / same n: bit-identical
    assert auroc == pytest.approx(ref["auroc"], abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_random_continuous_scores_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n_id, n_ood = rng.integers(1, 3000, size=2)
    check_equal(rng.normal(1.0, 1.0, n_id), rng.normal(0.0, 1.5, n_ood))


@pytest.mark.parametrize("seed", range(5))
def test_heavily_tied_scores_match_sklearn(seed):
    rng = np.random.default_rng(100 + seed)
    n_id, n_ood = rng.integers(1, 500, size=2)
    check_equal(rng.integers(0, 6, n_id).astype(float), rng.integers(0, 4, n_ood).astype(float))


def test_one_id_one_ood_per_score_is_not_skipped():
    # Every distinct score holds one ID and one OOD sample, so the ROC is a straight diagonal; drop_intermediate
    # would keep only its end points and report FPR95 = 1. The true value: keep scores >= 5 -> 95/100 ID, 95/100 OOD.
    s = np.arange(100.0)
    assert ood_metrics(s, s)["fpr95"] == pytest.approx(0.95)
    assert fast_fpr95_auroc(s, s) == (pytest.approx(0.95), pytest.approx(0.5))
    check_equal(s, s)


def test_hand_computed_fpr95_and_auroc():
    # 20 ID scores 1..20, 10 OOD scores. TPR >= 0.95 needs 19 of 20 ID kept -> largest such threshold t = 2
    # (t = 3 keeps 18/20 = 0.90). OOD scores >= 2: {2, 3, 5, 8, 12, 15, 25, 30} = 8 of 10 (the tie at 2 is kept)
    # -> FPR95 = 0.8.
    # AUROC = sum over OOD o of (#ID > o + 0.5 #ID == o) / (20*10):
    #   o=0:20  1.5:19  2:18.5  3:17.5  5:15.5  8:12.5  12:8.5  15:5.5  25:0  30:0  -> 117 / 200 = 0.585
    id_s = np.arange(1.0, 21.0)
    ood_s = np.array([0, 1.5, 2, 3, 5, 8, 12, 15, 25, 30], dtype=float)
    m = ood_metrics(id_s, ood_s)
    assert m["fpr95"] == pytest.approx(0.8)
    assert m["auroc"] == pytest.approx(0.585)
    assert fast_fpr95_auroc(id_s, ood_s) == (pytest.approx(0.8), pytest.approx(0.585))
    check_equal(id_s, ood_s)


def test_perfect_and_reversed_separation():
    hi, lo = np.linspace(1, 2, 50), np.linspace(-2, -1, 30)
    m = ood_metrics(hi, lo)
    assert m == pytest.approx({"fpr95": 0.0, "auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0}, abs=1e-12)
    r = ood_metrics(lo, hi)
    assert r["fpr95"] == 1.0 and r["auroc"] == 0.0
    assert fast_fpr95_auroc(lo, hi) == (1.0, 0.0)


def test_torch_input_and_column_vectors():
    rng = np.random.default_rng(0)
    i, o = rng.normal(size=200), rng.normal(size=100) - 1
    assert ood_metrics(torch.tensor(i), torch.tensor(o)[:, None]) == ood_metrics(i, o)


@pytest.mark.parametrize("bad", [[], [0.1, float("nan")], [0.2, float("inf")], [[0.1, 0.2], [0.3, 0.4]]])
def test_invalid_scores_raise_one_line(bad):
    for f in (ood_metrics, fast_fpr95_auroc):
        with pytest.raises(ReprolabError) as e:
            f(np.array(bad, dtype=float), [0.1, 0.2])
        assert "\n" not in str(e.value) and "id_scores" in str(e.value)


def test_accuracy_logits_and_predictions():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    labels = np.array([0, 1, 1, 0])
    assert accuracy(logits, labels) == 0.75
    assert accuracy(torch.tensor(logits), torch.tensor(labels)) == 0.75
    assert accuracy(np.array([0, 1, 2, 0]), labels) == 0.75
    with pytest.raises(ReprolabError):
        accuracy(logits, labels[:3])
    with pytest.raises(ReprolabError):
        accuracy(np.zeros((0, 3)), np.zeros(0))


def test_holistic_is_mean_of_parts():
    assert holistic_score(0.9, 0.6, 0.75) == pytest.approx(0.75)
    assert np.isnan(holistic_score(0.9, float("nan"), 0.75))
    with pytest.raises(ReprolabError):
        holistic_score(90.0, 60.0, 75.0)


# ----- convention="official": the official reprogrammer code's compute_metrics.py, hand-computed ------------------
# Tied set: ID = [1, 1, 2, 3], OOD = [1, 1, 0, 2]. Official FPR95: t = sorted(ID)[round(0.2) = 0] = 1 and OOD > 1
# (strict) is {2}: 1/4. Kit: TPR >= 0.95 needs all 4 ID images, threshold 1, OOD >= 1 is 3 of 4: 3/4.
# The official curve (ID kept, OOD kept) after removing the lowest scores, a tie group at once:
#   (4,4) (4,3) (2,1) (1,0) (0,0).
# AUIN = trapezoid of precision over recall, from the fixed point (recall 1, precision 0.5) through
#   (1, 4/8) (1, 4/7) (1/2, 2/3) (1/4, 1) [(0,0) has no precision and is skipped] to the fixed point (0, 0):
#   1/2·(4/7 + 2/3)/2 + 1/4·(2/3 + 1)/2 + 1/4·(1 + 0)/2 = 13/42 + 5/24 + 1/8 = 9/14.
# AUOUT = trapezoid of OOD-precision (OOD removed / removed) over 1 − FPR, from the fixed point (0, 0) through
#   (1/4, 1) (3/4, 3/5) (1, 4/7) (1, 4/8) to the fixed point (1, 0.5):
#   1/4·(0 + 1)/2 + 1/2·(1 + 3/5)/2 + 1/4·(3/5 + 4/7)/2 = 1/8 + 2/5 + 41/280 = 47/70.
# AUROC = (2 + 2 + 3.5 + 4)/16 = 23/32 in both conventions. The kit's average precision: AUPR-In
#   1/4·1 + 1/4·2/3 + 1/2·4/7 = 59/84, AUPR-Out 1/4·1 + 1/2·3/5 + 1/4·4/7 = 97/140.
TIED_ID, TIED_OOD = [1.0, 1.0, 2.0, 3.0], [1.0, 1.0, 0.0, 2.0]


def test_official_convention_on_a_tied_set_is_hand_computed():
    m = ood_metrics(TIED_ID, TIED_OOD, convention="official")
    assert m["fpr95"] == 0.25
    assert m["auroc"] == pytest.approx(23 / 32, abs=1e-15)
    assert m["aupr_in"] == pytest.approx(9 / 14, abs=1e-15)
    assert m["aupr_out"] == pytest.approx(47 / 70, abs=1e-15)
    k = ood_metrics(TIED_ID, TIED_OOD)
    assert k["fpr95"] == 0.75 and k["auroc"] == pytest.approx(23 / 32)
    assert k["aupr_in"] == pytest.approx(59 / 84) and k["aupr_out"] == pytest.approx(97 / 140)


def test_official_convention_on_the_small_n19_set_is_hand_computed():
    """ID = 1..19 (distinct), OOD = [0.5, 1.2, 1.4, 1.6, 1.8, 30, 40]: the issue's n = 19 case, 0.857 vs 0.286."""
    from fractions import Fraction as Fr

    ids, ood = list(range(1, 20)), [0.5, 1.2, 1.4, 1.6, 1.8, 30.0, 40.0]
    m, k = ood_metrics(ids, ood, convention="official"), ood_metrics(ids, ood)
    # official: t = sorted(ID)[round(0.95) = 1] = 2, OOD > 2 is {30, 40}; kit: all 19 ID kept (t = 1), OOD >= 1: 6
    assert m["fpr95"] == pytest.approx(2 / 7) and k["fpr95"] == pytest.approx(6 / 7)
    assert m["auroc"] == pytest.approx((19 + 4 * 18) / 133) == k["auroc"]
    # AUIN: the curve keeps (19,7) (19,6) (18,6) (18,5) … (18,2) (17,2) (16,2) … (0,2) (0,1) (0,0); recall drops by
    # 1/19 three kinds of times: 19/25 → 18/24, 18/20 → 17/19, then k/(k+2) → (k−1)/(k+1) for k = 17 … 1.
    steps = [(Fr(19, 25), Fr(18, 24)), (Fr(18, 20), Fr(17, 19))] + [
        (Fr(k, k + 2), Fr(k - 1, k + 1)) for k in range(1, 18)
    ]
    auin = sum((a + b) / 2 for a, b in steps) / 19
    assert m["aupr_in"] == pytest.approx(float(auin), abs=1e-15)
    # AUOUT: 1 − FPR rises by 1/7 at each OOD image removed; OOD-precision before → after each rise:
    # 0 → 1, 1/2 → 2/3, 2/3 → 3/4, 3/4 → 4/5, 4/5 → 5/6, 5/24 → 6/25, 6/25 → 7/26.
    rises = [(0, 1), (Fr(1, 2), Fr(2, 3)), (Fr(2, 3), Fr(3, 4)), (Fr(3, 4), Fr(4, 5)), (Fr(4, 5), Fr(5, 6))]
    rises += [(Fr(5, 24), Fr(6, 25)), (Fr(6, 25), Fr(7, 26))]
    auout = sum((a + b) / 2 for a, b in rises) / 7
    assert m["aupr_out"] == pytest.approx(float(auout), abs=1e-15)


def test_official_fpr95_counts_ties_with_the_threshold_as_rejected_and_rounds_half_to_even():
    assert ood_metrics([0.5] * 4, [0.5] * 3, convention="official")["fpr95"] == 0.0  # kit: 1.0
    assert ood_metrics([0.5] * 4, [0.5] * 3)["fpr95"] == 1.0
    # n_ID = 10: round(0.5) = 0 (half to even), so t = the lowest ID score 1 and OOD 1.5 counts
    assert ood_metrics(list(range(1, 11)), [1.5, 0.0], convention="official")["fpr95"] == 0.5
    # n_ID = 30: 0.05·30 = 1.5000000000000002 in floats, round → 2, t = 3 — OOD 2.5 is rejected
    assert ood_metrics(list(range(1, 31)), [2.5, 3.5], convention="official")["fpr95"] == 0.5


def test_unknown_convention_is_a_one_line_error():
    with pytest.raises(ReprolabError, match="'kit'") as e:
        ood_metrics([1.0], [0.0], convention="mcm")
    assert "\n" not in str(e.value)
