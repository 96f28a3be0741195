"""reprolab.evaluation.scores: MCM, energy and max-logit against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from reprolab.errors import ReprolabError
from reprolab.evaluation.scores import energy, max_logit, mcm, mcm_from_logits


def test_mcm_hand_computed():
    cos = np.array([[0.30, 0.20], [0.25, 0.25], [0.1, 0.4]])
    # row 0: logits 30, 20 -> max softmax = 1 / (1 + e^-10); row 1: tie -> 1/2; row 2: 1 / (1 + e^-30)
    want = [1 / (1 + math.exp(-10)), 0.5, 1 / (1 + math.exp(-30))]
    np.testing.assert_allclose(mcm(cos, T=0.01), want, rtol=1e-12)
    np.testing.assert_allclose(mcm_from_logits(100 * cos), want, rtol=1e-12)
    # T = 1 on cosines: 1 / (1 + e^-0.1) for row 0
    assert mcm(cos, T=1.0)[0] == pytest.approx(1 / (1 + math.exp(-0.1)))
    # T_scale rescales already-scaled logits: logits/10
    assert mcm_from_logits(100 * cos, T_scale=10)[0] == pytest.approx(1 / (1 + math.exp(-1)))


def test_mcm_bounds_and_uniform():
    c = 5
    out = mcm(np.zeros((3, c)), T=0.01)
    np.testing.assert_allclose(out, 1 / c)
    rng = np.random.default_rng(0)
    s = mcm(rng.uniform(-1, 1, (100, 10)))
    assert np.all((s >= 0.1 - 1e-12) & (s <= 1))


def test_energy_hand_computed():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(energy(logits), [math.log(math.e + math.e**2 + math.e**3), math.log(3)], rtol=1e-12)
    # T = 2: 2 * log(e^0.5 + e^1 + e^1.5)
    assert energy(logits, T=2.0)[0] == pytest.approx(2 * math.log(math.exp(0.5) + math.e + math.exp(1.5)))


def test_max_logit_and_torch_input():
    logits = torch.tensor([[1.0, -2.0, 0.5], [-1.0, -3.0, -0.5]])
    out = max_logit(logits)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, [1.0, -0.5])
    np.testing.assert_allclose(energy(logits), energy(logits.numpy()))
    np.testing.assert_allclose(mcm_from_logits(logits.half()), mcm_from_logits(logits.numpy()), rtol=1e-3)


def test_large_logits_are_stable():
    z = np.array([[1000.0, 999.0], [-1000.0, -1000.0]])
    assert np.all(np.isfinite(energy(z))) and np.all(np.isfinite(mcm_from_logits(z)))
    assert energy(z)[1] == pytest.approx(-1000 + math.log(2))
    assert mcm_from_logits(z)[0] == pytest.approx(1 / (1 + math.exp(-1)))


def test_higher_is_more_id():
    confident, unsure = np.array([[10.0, 0.0, 0.0]]), np.array([[1.0, 1.0, 1.0]])
    for f in (mcm_from_logits, energy, max_logit):
        assert f(confident)[0] > f(unsure)[0]


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((0, 3)), np.array([[0.1, np.nan]])])
def test_bad_input_raises(bad):
    for f in (mcm, energy, max_logit):
        with pytest.raises(ReprolabError) as e:
            f(bad)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("T", [0, -1, float("nan")])
def test_bad_temperature_raises(T):
    with pytest.raises(ReprolabError):
        mcm(np.zeros((1, 2)), T=T)
    with pytest.raises(ReprolabError):
        energy(np.zeros((1, 2)), T=T)
