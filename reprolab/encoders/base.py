"""The one interface every text-image encoder in the kit implements.

An encoder maps

* an image ``x`` with pixels in ``[0, 1]`` (shape ``B×3×S×S``, ``S = image_size``) to an L2-normalised feature
  ``f_I(x) = g(normalise_pixels(x)) / ‖g(·)‖``. The pixel normalisation (mean/std) happens *inside*
  :meth:`Encoder.encode_image`, so a reprogrammer can act on raw pixels exactly as in the paper (§3: the learned
  frame is added before CLIP's own normalisation);
* tokens to an L2-normalised text feature ``f_T(t)``. The token-embedding table and the positional embedding are
  reachable (:attr:`token_embedding`, :attr:`positional_embedding`) and :meth:`encode_text_embeddings` runs the text
  tower with *replacement* tables, which is all the text reprogrammer (and CoOp) need.

Cosine similarities are turned into logits with a fixed ``logit_scale = 100`` (temperature ``T = 0.01``).
Subclasses implement four primitives: ``_image_forward``, ``_embed_tokens``, ``_text_forward`` and ``tokenize``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolab.errors import ShapeError


class Encoder(nn.Module):
    id: str = "encoder"
    display_name: str = "encoder"
    image_size: int = 224
    logit_scale: float = 100.0
    mean: tuple = (0.5, 0.5, 0.5)
    std: tuple = (0.5, 0.5, 0.5)

    # ----- primitives a subclass provides -------------------------------------------------------------------------
    def _image_forward(self, x_normalised: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _text_forward(self, embeds: Tensor, tokens, positional_embedding: Tensor) -> Tensor:  # pragma: no cover
        """Run the text tower on word embeddings ``embeds`` (B×L×W) with the given positional table."""
        raise NotImplementedError

    def tokenize(self, texts: Sequence[str]):  # pragma: no cover - abstract
        raise NotImplementedError

    def token_ids(self, tokens) -> Tensor:
        """The B×L id tensor inside ``tokens`` (tokens may be a dict for Hugging Face tokenizers)."""
        return tokens["input_ids"] if isinstance(tokens, dict) else tokens

    def vocab(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def token_embedding(self) -> nn.Embedding:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def positional_embedding(self) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def image_parameters(self) -> Iterator[nn.Parameter]:  # pragma: no cover - abstract
        """The image tower's weights: what full fine-tuning updates."""
        raise NotImplementedError

    # ----- the public interface built on them ---------------------------------------------------------------------
    def check_images(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ShapeError(
                f"images must be B×3×H×W in [0,1], got shape {tuple(x.shape)}; "
                "convert greyscale to 3 channels and add a batch dimension"
            )

    def resize(self, x: Tensor) -> Tensor:
        """Plain preprocessing: resize a [0,1] batch to the encoder canvas (bilinear, antialiased)."""
        self.check_images(x)
        if x.shape[-1] == self.image_size and x.shape[-2] == self.image_size:
            return x
        return F.interpolate(
            x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True, align_corners=False
        ).clamp(0, 1)

    def normalise_pixels(self, x: Tensor) -> Tensor:
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def encode_image(self, x: Tensor) -> Tensor:
        """``[0,1]`` images at ``image_size`` → L2-normalised features (B×D)."""
        self.check_images(x)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ShapeError(
                f"encode_image expects {self.image_size}×{self.image_size} images, got "
                f"{tuple(x.shape[-2:])}; call encoder.resize(x) first (or use a reprogrammer)"
            )
        return F.normalize(self._image_forward(self.normalise_pixels(x)), dim=-1)

    def encode_text(self, tokens) -> Tensor:
        return self.encode_text_embeddings(tokens)

    def encode_text_embeddings(
        self, tokens, token_embedding: Tensor | None = None, positional_embedding: Tensor | None = None
    ) -> Tensor:
        """Text features with (optionally) replacement token/positional tables — the text reprogrammer's hook."""
        table = self.token_embedding.weight if token_embedding is None else token_embedding
        pos = self.positional_embedding if positional_embedding is None else positional_embedding
        embeds = F.embedding(self.token_ids(tokens), table)
        return F.normalize(self._text_forward(embeds, tokens, pos), dim=-1)

    def encode_token_embeddings(self, embeds: Tensor, tokens, positional_embedding: Tensor | None = None) -> Tensor:
        """Text features from given word embeddings (B×L×W), e.g. CoOp's learned context spliced into a prompt."""
        pos = self.positional_embedding if positional_embedding is None else positional_embedding
        return F.normalize(self._text_forward(embeds, tokens, pos), dim=-1)

    @torch.no_grad()
    def encode_text_prompts(self, prompts: Sequence[str], batch_size: int = 256) -> Tensor:
        out = [
            self.encode_text(self.to_device(self.tokenize(prompts[i : i + batch_size])))
            for i in range(0, len(prompts), batch_size)
        ]
        return torch.cat(out)

    def to_device(self, tokens):
        dev = self.device
        if isinstance(tokens, dict):
            return {k: v.to(dev) for k, v in tokens.items()}
        return tokens.to(dev)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def freeze(self) -> Encoder:
        self.requires_grad_(False)
        self.eval()
        return self

    def describe(self) -> str:
        return f"{self.display_name} [{self.id}], canvas {self.image_size}px, logit scale {self.logit_scale:g}"
