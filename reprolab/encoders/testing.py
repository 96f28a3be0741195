"""A CLIP-shaped encoder for checks: an open_clip architecture with random weights, saved to a local file.

Real CLIP weights may be out of reach (no internet, a classroom proxy), but CLIP's *cost* is not: a random-init
``ViT-B-32-quickgelu`` has exactly the real model's shapes (224-px canvas, 77-token context, a 49,408-row token
table, the ViT image tower), so it takes the same time and memory and runs every line the real one runs.

    from reprolab.encoders.testing import save_random_clip
    path = save_random_clip("runs/weights/vit-b-32-random.safetensors")
    enc = load_encoder(f"openclip:ViT-B-32-quickgelu:{path}")      # or REPROLAB_CLIP_WEIGHTS=path with "auto"

The file is safetensors (never a pickle) and carries ``{"reprolab": "random-init", "arch", "seed"}`` in its
metadata. :func:`mark_if_random` reads it back when the file is loaded, so such an encoder is labelled everywhere
as random — its id contains ``random-init`` (reports and tables key on the id) and its display name says that
its accuracies mean nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from reprolab.errors import ReprolabError

MARK = "random-init"
NOTE = "random weights — accuracies mean nothing; shapes, time and memory are CLIP's"


def save_random_clip(path, arch: str = "ViT-B-32-quickgelu", seed: int = 0) -> Path:
    """Write a random-init open_clip ``arch`` as ``path`` (safetensors + metadata); returns the path.

    Load it as ``openclip:ARCH:PATH``. An existing file written by this function for the same arch and seed is
    reused (the weights are a pure function of them), so the call is cheap the second time.
    """
    import open_clip
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ReprolabError(f"{path}: name the file *.safetensors (open_clip reads safetensors by its suffix)")
    info = random_info(path) if path.exists() else None
    if info and info.get("arch") == arch and info.get("seed") == str(seed):
        return path
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = open_clip.create_model(arch, pretrained=None)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata={"reprolab": MARK, "arch": arch, "seed": str(seed)})
    os.replace(tmp, path)
    return path


def random_info(path) -> dict | None:
    """The metadata of a file written by :func:`save_random_clip`, else None (any other file, or unreadable)."""
    if not str(path).endswith(".safetensors") or not os.path.isfile(path):
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:  # not a safetensors file after all: not ours
        return None
    return meta if meta.get("reprolab") == MARK else None


def mark_if_random(encoder, path):
    """Relabel an encoder loaded from ``path`` when that file holds random weights (see the module docstring)."""
    info = random_info(path)
    if info is None:
        return encoder
    arch = info.get("arch", "?")
    encoder.id = f"openclip-{arch}-{MARK}-s{info.get('seed', '?')}"
    encoder.display_name = f"CLIP-shaped {arch}, {NOTE}"
    return encoder
