"""Shared fixtures. Tests use the tiny random-init open_clip model for speed and the offline stand-in (real
pretrained weights) where behaviour must be real. Real data comes from ../shared/datasets (REPROLAB_DATA).

Tests never reach the real internet: ``REPROLAB_OFFLINE=1`` turns the datasets' ``download="auto"`` off (the
download tests switch it back on and serve archives from a server on 127.0.0.1, see ``data_server``).
Pieces that only CI is sure to have (Chromium, WordNet, Fashion-MNIST): :func:`require` skips a test that needs a
missing one, with the reason, and fails it when ``CI=true``.
"""

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REPROLAB_SHARED", ROOT.parent / "shared" / "datasets"))
if SHARED.exists():
    os.environ.setdefault("REPROLAB_DATA", str(SHARED))
os.environ.setdefault("REPROLAB_OFFLINE", "1")
CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(ok: bool, reason: str) -> None:
    """Skip (outside CI) or fail (CI=true) the calling test when ``ok`` is False; ``reason`` names the fix."""
    if not ok:
        (pytest.fail if CI else pytest.skip)(reason + (" (CI=true: failing instead of skipping)" if CI else ""))


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


@pytest.fixture
def no_fashion_mnist(monkeypatch, tmp_path):
    """Act as a machine without the Debian package dataset-fashion-mnist (its folder is looked for elsewhere)."""
    monkeypatch.setenv("REPROLAB_SYSTEM_DATA", str(tmp_path / "no-system-data"))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no request lines in the test output
        pass


@pytest.fixture
def data_server(tmp_path):
    """A static HTTP server on 127.0.0.1 standing in for the internet: ``(base_url, folder_it_serves)``."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", folder
    server.shutdown()
    server.server_close()
