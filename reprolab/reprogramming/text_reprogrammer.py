"""Text-side reprogramming (paper §3.2; official code trains CLIP's whole 49408×512 token table).

The token-embedding table E₀ (V×W) and the positional embedding P₀ (L×W) become trainable, everything else in the
text tower stays frozen:

    E = E₀ + ΔE ,   P = P₀ + ΔP ,   f_T(t) = TextTower(E[t] + P)      (ΔE, ΔP initialised to 0)

What is learned is stored as the *difference* ΔE, ΔP from the pretrained tables, so a checkpoint can hold only the
rows that changed (:meth:`TextReprogrammer.sparse_state`) and a notebook can ask which tokens moved
(:meth:`token_shift`) and decode a learned embedding to its nearest vocabulary tokens (:meth:`nearest_tokens`).
The same holds for the offline stand-in, whose MiniLM word and position embeddings play the roles of E₀ and P₀.

Weight decay. The official code puts AdamW (weight decay 0.1) on the *whole* table, which shrinks E itself toward
zero: E ← E − lr·wd·E. With ΔE as the parameter, AdamW's own decay pulls ΔE toward 0 (i.e. E toward E₀); the
official behaviour needs the extra term −lr·wd·E₀, which :meth:`post_step` adds when
``decay_target="zero"`` (the default, as the official code). ``decay_target="pretrained"`` keeps only the pull
toward E₀, which leaves untouched rows exactly at zero difference (sparse checkpoints).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolab.errors import ReprolabError


class TextReprogrammer(nn.Module):
    def __init__(self, encoder, train_tokens: bool = True, train_positional: bool = True, decay_target: str = "zero"):
        super().__init__()
        if decay_target not in ("zero", "pretrained"):
            raise ReprolabError(f"decay_target={decay_target!r}; use 'zero' (official) or 'pretrained'")
        self.encoder = [encoder]  # a list, so the frozen encoder is not registered as a sub-module of ours
        self.decay_target = decay_target
        self.token_delta = nn.Parameter(torch.zeros_like(encoder.token_embedding.weight), requires_grad=train_tokens)
        self.pos_delta = nn.Parameter(torch.zeros_like(encoder.positional_embedding), requires_grad=train_positional)

    @property
    def enc(self):
        return self.encoder[0]

    def tables(self) -> tuple[Tensor, Tensor]:
        """(E₀ + ΔE, P₀ + ΔP)."""
        return (self.enc.token_embedding.weight + self.token_delta, self.enc.positional_embedding + self.pos_delta)

    def forward(self, tokens) -> Tensor:
        """L2-normalised text features with the reprogrammed tables."""
        E, P = self.tables()
        return self.enc.encode_text_embeddings(tokens, E, P)

    @torch.no_grad()
    def post_step(self, lr_wd: dict) -> None:
        """Official decay toward zero: add −lr·wd·E₀ (AdamW already applied −lr·wd·ΔE). ``lr_wd``: id(param) → (lr, wd)."""
        if self.decay_target != "zero":
            return
        for delta, base in (
            (self.token_delta, self.enc.token_embedding.weight),
            (self.pos_delta, self.enc.positional_embedding),
        ):
            if delta.requires_grad and id(delta) in lr_wd:
                lr, wd = lr_wd[id(delta)]
                if lr * wd:
                    delta.sub_(lr * wd * base)

    # ----- inspection ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def token_shift(self) -> Tensor:
        """‖ΔE_v‖ for every vocabulary row v (V,)."""
        return self.token_delta.norm(dim=-1)

    @torch.no_grad()
    def nearest_tokens(self, embeddings: Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """Decode embeddings (N×W) to their k nearest *pretrained* vocabulary rows by cosine similarity."""
        vocab = self.enc.vocab()
        sims = F.normalize(embeddings, dim=-1) @ F.normalize(self.enc.token_embedding.weight, dim=-1).t()
        vals, idx = sims.topk(k, dim=-1)
        return [[(vocab[i], float(v)) for v, i in zip(vr, ir)] for vr, ir in zip(vals.tolist(), idx.tolist())]

    # ----- storage ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sparse_state(self) -> dict[str, Tensor]:
        """Only the rows of ΔE that changed (+ their indices) and ΔP."""
        rows = (self.token_delta != 0).any(dim=-1).nonzero().flatten()
        return {
            "token_rows": rows.to(torch.int64),
            "token_delta_rows": self.token_delta[rows].clone(),
            "pos_delta": self.pos_delta.detach().clone(),
        }

    @torch.no_grad()
    def load_sparse_state(self, state: dict[str, Tensor]) -> None:
        if (
            state["pos_delta"].shape != self.pos_delta.shape
            or state["token_delta_rows"].shape[-1:] != self.token_delta.shape[-1:]
        ):
            raise ReprolabError(
                "text reprogrammer checkpoint does not match this encoder's tables; "
                "load it with the encoder it was trained on"
            )
        self.token_delta.zero_()
        self.token_delta[state["token_rows"].long()] = state["token_delta_rows"].to(self.token_delta.dtype)
        self.pos_delta.copy_(state["pos_delta"])
