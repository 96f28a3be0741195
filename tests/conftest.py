"""Shared fixtures. Tests use the tiny random-init open_clip model for speed and the offline stand-in (real
pretrained weights) where behaviour must be real. Real data comes from ../shared/datasets (REPROLAB_DATA)."""

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REPROLAB_SHARED", ROOT.parent / "shared" / "datasets"))
if SHARED.exists():
    os.environ.setdefault("REPROLAB_DATA", str(SHARED))


class TinySet(torch.utils.data.Dataset):
    """Random 32-px images, 4 classes — the ImageSet attributes without any files."""

    def __init__(self, n=32, seed=0, size=32, kind="id", name="tiny"):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, size, size, generator=g)
        self.labels = torch.arange(n) % 4 if kind != "ood" else torch.full((n,), -1)
        self.classnames = ["cat", "dog", "car", "ship"]
        self.name, self.kind, self.id_task, self.key = name, kind, "tiny", f"{name}-{n}-{seed}-{size}"

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])


@pytest.fixture(scope="session")
def tiny():
    from reprolab.encoders import load_encoder

    return load_encoder("tiny")


@pytest.fixture(scope="session")
def standin():
    from reprolab.encoders import load_encoder

    return load_encoder("standin")


@pytest.fixture
def tiny_set():
    return TinySet()


@pytest.fixture(scope="session")
def shared_datasets():
    if not SHARED.exists():
        pytest.fail(
            f"real test data not found at {SHARED}; put the project's shared/datasets beside the repo "
            "or set REPROLAB_SHARED"
        )
    return SHARED
