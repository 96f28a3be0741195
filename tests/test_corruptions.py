"""CIFAR-10-C-style corruptions: every family at severities 1 and 5 is shaped right, in [0,1], deterministic in
the seed, and reachable as a registry dataset."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reprolab.datasets import CORRUPTIONS, corrupt, load_dataset
from reprolab.datasets.corruptions import BENCHMARK_15, GROUPS
from reprolab.errors import ReprolabError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if not (SHARED / "cifar10").is_dir():
    SHARED = Path("/work/shared/datasets")
RANDOM = {
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "glass_blur",
    "motion_blur",
    "snow",
    "frost",
    "fog",
    "elastic_transform",
}


@pytest.fixture(scope="module")
def image():
    path = SHARED / "cifar10/test/cat/0000.jpg"
    if path.is_file():
        return np.asarray(Image.open(path).convert("RGB"))
    rng = np.random.default_rng(0)  # fallback: a smooth synthetic image
    return np.uint8(np.clip(rng.normal(128, 40, (4, 4, 3)).repeat(8, 0).repeat(8, 1), 0, 255))


def test_family_list():
    assert len(BENCHMARK_15) == 15 and set(BENCHMARK_15) <= set(CORRUPTIONS)
    assert sorted(f for g in GROUPS.values() for f in g) == sorted(CORRUPTIONS)


@pytest.mark.parametrize("family", list(CORRUPTIONS))
@pytest.mark.parametrize("severity", [1, 5])
def test_corruption_shape_range_determinism(image, family, severity):
    a = corrupt(image, family, severity, seed=0, index=7)
    b = corrupt(image, family, severity, seed=0, index=7)
    assert a.shape == (32, 32, 3) and a.dtype == np.float32
    assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0
    assert a.tobytes() == b.tobytes()
    if severity == 5:
        assert np.abs(a - image / 255.0).mean() > 0.005  # it really corrupts
    other = corrupt(image, family, severity, seed=1, index=7)
    if family in RANDOM:
        assert a.tobytes() != other.tobytes()
        assert a.tobytes() != corrupt(image, family, severity, seed=0, index=8).tobytes()
    else:
        assert a.tobytes() == other.tobytes()


def test_severity_grows_for_noise(image):
    err = [np.abs(corrupt(image, "gaussian_noise", s) - image / 255.0).mean() for s in range(1, 6)]
    assert err == sorted(err)


def test_bad_family_or_severity(image):
    with pytest.raises(ReprolabError, match="unknown corruption"):
        corrupt(image, "gaussian", 3)
    with pytest.raises(ReprolabError, match="1..5"):
        corrupt(image, "fog", 6)


@pytest.mark.skipif(not (SHARED / "cifar10").is_dir(), reason="course CIFAR-10 copy missing")
def test_cifar10c_dataset_matches_clean_subset(monkeypatch):
    monkeypatch.setenv("REPROLAB_DATA", str(SHARED))
    clean = load_dataset("cifar10", subset=20, seed=4)
    ds = load_dataset("cifar10c:shot_noise:5", subset=20, seed=4)
    assert ds.ids == clean.ids and ds.kind == "shift" and ds.classnames == clean.classnames
    assert "corruption=shot_noise:5" in ds.key and torch.equal(ds.labels, clean.labels)
    x, _ = ds[3]
    raw = np.asarray(Image.open(SHARED / "cifar10" / ds.ids[3]).convert("RGB"))
    expect = corrupt(raw, "shot_noise", 5, seed=4, index=int(ds.indices[3]))
    assert torch.equal(x, torch.from_numpy(expect).permute(2, 0, 1))
    xb, yb = next(iter(ds.loader(batch_size=8)))
    assert xb.shape == (8, 3, 32, 32) and torch.equal(xb[3], x) and 0 <= xb.min() <= xb.max() <= 1
    assert not torch.equal(x, load_dataset("cifar10c:shot_noise:5", seed=5)[int(ds.indices[3])][0])
