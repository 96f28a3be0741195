"""CoOp — context optimisation (Zhou et al., 2022, "Learning to prompt for vision-language models", IJCV).

Both towers stay frozen. The prompt of class c is M learned context vectors followed by the class-name tokens,

    t_c = [SOS] v_1 … v_M [CLASS_c] . [EOS] ,   f_T(c) = TextTower(t_c) ,   logits = s · f_I(x) f_T(c)ᵀ  (s = 100)

with one shared (unified) context v_1..v_M (M = 16, v_m ~ N(0, 0.02²) as the official code), trained with
cross-entropy over the C class logits. It is built by tokenising ``"X X … X {classname}."`` (M placeholders) and
replacing the word embeddings at the M placeholder positions — positions 1..M right after the start token — by
the learned vectors, then running :meth:`Encoder.encode_token_embeddings`. The placeholder ``X`` is one token for
both tokenizers (CLIP BPE: ``x</w>``-style token; the stand-in's uncased BERT: lower-cased ``x``); this is checked
for every prompt, together with the class-name tokens following the context (prompts that do not fit the text
encoder's context length raise a :class:`ConfigError`).

Deviation: the paper trains with SGD (lr 0.002, momentum 0.9, weight decay 5e-4); the kit's training loop offers
Adam/AdamW only, so the default is AdamW, lr 2e-3, weight decay 5e-4 (decoupled), with the loop's cosine schedule.
Class-specific context (CSC) is not implemented.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolab.errors import ConfigError
from reprolab.methods.base import DEFAULT_TEMPLATE, Method


class CoOp(Method):
    name = "coop"

    def __init__(
        self,
        encoder,
        n_ctx: int = 16,
        init_std: float = 0.02,
        lr: float = 2e-3,
        weight_decay: float = 5e-4,
        placeholder: str = "X",
        seed: int = 0,
    ):
        super().__init__(encoder, template="{}.")
        if n_ctx < 1:
            raise ConfigError(f"n_ctx={n_ctx}; CoOp needs at least one context vector (paper: 16)")
        self.hp = dict(
            n_ctx=n_ctx, init_std=init_std, lr=lr, weight_decay=weight_decay, placeholder=placeholder, seed=seed
        )
        width = encoder.token_embedding.weight.shape[1]
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            ctx = torch.randn(n_ctx, width) * init_std
        self.ctx = nn.Parameter(ctx.to(encoder.token_embedding.weight))

    def _content(self, text: str) -> list[int]:
        """Token ids of ``text`` between the start and end tokens (pad id 0 for both tokenizers)."""
        ids = self.encoder.token_ids(self.encoder.tokenize([text]))[0]
        n = int((ids != 0).sum())
        return ids[1 : n - 1].tolist()

    def setup(self, classnames):
        self.classnames = list(classnames)
        M, X = self.hp["n_ctx"], self.hp["placeholder"]
        prompts = [" ".join([X] * M) + f" {c}." for c in self.classnames]
        self._class_tokens = self.encoder.tokenize(prompts)
        self._zs_text = None
        x_ids = self._content(X)
        if len(x_ids) != 1:
            raise ConfigError(
                f"placeholder {X!r} is {len(x_ids)} tokens for this tokenizer; pass a one-token placeholder such as 'X'"
            )
        ids = self.encoder.token_ids(self._class_tokens)
        for row, c in zip(ids, self.classnames):
            want = x_ids * M + self._content(f"{c}.")
            if row[1 : 1 + len(want)].tolist() != want:
                raise ConfigError(
                    f"CoOp prompt for class {c!r} does not fit the text encoder's context "
                    f"({ids.shape[1]} tokens) with n_ctx={M}; use a smaller n_ctx or a shorter name"
                )
        return self

    def zero_shot_text_features(self) -> Tensor:
        """Zero-shot text features with the usual template (not the learned context)."""
        if self._zs_text is None or self._zs_text.device != self.encoder.device:
            self._zs_text = self.encoder.encode_text_prompts([DEFAULT_TEMPLATE.format(c) for c in self.classnames])
        return self._zs_text

    def text_features(self) -> Tensor:
        tokens = self.class_tokens()
        embeds = F.embedding(self.encoder.token_ids(tokens), self.encoder.token_embedding.weight)
        M = self.hp["n_ctx"]
        ctx = self.ctx.to(embeds.dtype).unsqueeze(0).expand(embeds.shape[0], -1, -1)
        embeds = torch.cat([embeds[:, :1], ctx, embeds[:, 1 + M :]], dim=1)
        return self.encoder.encode_token_embeddings(embeds, tokens)

    def image_features(self, images: Tensor) -> Tensor:
        with torch.no_grad():  # frozen image tower: no graph needed
            return self.encoder.encode_image(self.encoder.resize(images))

    def trainable_parameters(self) -> list[dict]:
        return [dict(params=[self.ctx], lr=self.hp["lr"], weight_decay=self.hp["weight_decay"], optimizer="adamw")]

    def training_loss(self, images, labels):
        logits = self.logits(images)
        return F.cross_entropy(logits, labels), logits.argmax(dim=1)

    def trainable_state(self) -> dict[str, Tensor]:
        return {"ctx": self.ctx.detach().clone()}

    def config(self) -> dict:
        return dict(super().config(), **self.hp)
