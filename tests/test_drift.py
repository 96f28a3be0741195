"""reprolab.evaluation.drift: cosine drift and linear CKA properties (Kornblith et al. 2019)."""

import numpy as np
import pytest
import torch

from reprolab.errors import ReprolabError
from reprolab.evaluation.drift import cosine_drift, drift_summary, linear_cka, zero_shot_accuracy_change


def feats(n=300, d=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_cosine_drift_identical_and_known():
    x = feats()
    np.testing.assert_allclose(cosine_drift(x, x), 1.0)
    np.testing.assert_allclose(cosine_drift(x, 3 * x), 1.0)  # scale-free
    np.testing.assert_allclose(cosine_drift(x, -x), -1.0)
    a, b = np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[0.0, 2.0], [1.0, 0.0]])
    np.testing.assert_allclose(cosine_drift(a, b), [0.0, 1 / np.sqrt(2)])
    np.testing.assert_allclose(cosine_drift(torch.tensor(a), torch.tensor(b)), [0.0, 1 / np.sqrt(2)])


def test_cka_self_is_one():
    x = feats()
    assert linear_cka(x, x) == pytest.approx(1.0)


def test_cka_invariant_to_orthogonal_and_isotropic_scaling():
    x = feats(d=16)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(16, 16)))
    y = feats(d=8, seed=2) + x[:, :8]  # related but different features, different width
    base = linear_cka(x, y)
    assert 0.05 < base < 0.99
    assert linear_cka(x @ q, y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(7.5 * x, 0.1 * y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x + 5.0, y - 3.0) == pytest.approx(base, rel=1e-10)  # centring
    assert linear_cka(y, x) == pytest.approx(base, rel=1e-10)  # symmetric


def test_cka_matches_centred_gram_formula():
    # HSIC form: CKA = <HKH, HLH>_F / (||HKH||_F ||HLH||_F), K = XX^T, L = YY^T, H = I - 11^T/n.
    x, y = feats(n=40, d=5, seed=3), feats(n=40, d=7, seed=4) + np.c_[feats(n=40, d=5, seed=3), np.zeros((40, 2))]
    h = np.eye(40) - 1 / 40
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    want = np.sum(k * l_) / (np.linalg.norm(k) * np.linalg.norm(l_))
    assert linear_cka(x, y) == pytest.approx(want, rel=1e-10)


def test_cka_independent_features_small():
    assert linear_cka(feats(n=2000, d=10, seed=5), feats(n=2000, d=10, seed=6)) < 0.05


def test_zero_shot_change_and_summary():
    assert zero_shot_accuracy_change(0.9, 0.75) == pytest.approx(-0.15)
    x = feats()
    s = drift_summary(x, x)
    assert s["cosine_mean"] == pytest.approx(1.0) and s["cka"] == pytest.approx(1.0)
    assert np.isnan(drift_summary(x, x[:, :4])["cosine_mean"])


def test_bad_input_raises_one_line():
    x = feats()
    bad_cka = [(x, x[:10]), (x[:1], x[:1]), (np.ones((5, 3)), x[:5]), (np.full((4, 2), np.nan), x[:4, :2]), (x[0], x)]
    bad_cos = [(x, x[:, :3]), (x, x[:10]), (np.zeros((2, 3)), np.ones((2, 3)))]
    for f, cases in ((linear_cka, bad_cka), (cosine_drift, bad_cos)):
        for a, b in cases:
            with pytest.raises(ReprolabError) as e:
                f(a, b)
            assert "\n" not in str(e.value)
