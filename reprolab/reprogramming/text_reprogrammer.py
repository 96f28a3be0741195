"""Text-side reprogramming (paper §3.2; official code trains CLIP's whole 49408×512 token table).

The token-embedding table E₀ (V×W) and the positional embedding P₀ (L×W) become trainable, everything else in the
text tower stays frozen:

    E = E₀ + ΔE ,   P = P₀ + ΔP ,   f_T(t) = TextTower(E[t] + P)      (ΔE, ΔP initialised to 0)

What is learned is stored as the *difference* ΔE, ΔP from the pretrained tables, so a notebook can ask which tokens
moved (:meth:`token_shift`) and decode a learned embedding to its nearest vocabulary tokens (:meth:`nearest_tokens`).
The same holds for the offline stand-in, whose MiniLM word and position embeddings play the roles of E₀ and P₀.

Weight decay. The official code puts AdamW (weight decay 0.1) on the *whole* table, which shrinks E itself toward
zero: E ← E − lr·wd·E. With ΔE as the parameter, AdamW's own decay pulls ΔE toward 0 (i.e. E toward E₀); the
official behaviour needs the extra term −lr·wd·E₀, which :meth:`post_step` adds when
``decay_target="zero"`` (the default, as the official code). ``decay_target="pretrained"`` keeps only the pull
toward E₀, which leaves untouched rows exactly at zero difference.

Only the prompts' rows are stored as parameters — exactly the same training, without 49,408-row passes. Why this
is hand-written (no library does it): a row v whose token never occurs in the training prompts gets a zero gradient
at every step, so AdamW's moments stay 0 and its update is exactly 0; the only thing that touches it is the decay,
so after any number of steps E_v = g·E₀_v with g = Π_t (1 − lr_t·wd) (g = 1 for ``decay_target="pretrained"``). The
module therefore keeps ΔE as ``row_delta`` for the learnable rows ``token_rows`` (the prompts' tokens,
:meth:`learn_only`; every row until it is called) plus the one number g (``untouched_scale``), and looks up a
prompt's embeddings without building the table. AdamW on the full table does about ten passes over 49,408×512
floats per step; here it touches a few dozen rows (``reprolab bench``: text-only steps per second). ``token_delta()``
assembles the whole ΔE when a notebook wants to look at it. Checkpoints hold those rows and g.
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
        E0 = encoder.token_embedding.weight
        V = E0.shape[0]
        self.register_buffer("token_rows", torch.arange(V, device=E0.device))  # rows with their own ΔE
        self.register_buffer("row_slot", torch.arange(V, device=E0.device))  # vocabulary id → row of row_delta, or −1
        self.register_buffer("untouched_scale", torch.ones((), dtype=E0.dtype, device=E0.device))  # g (module doc)
        self.row_delta = nn.Parameter(torch.zeros_like(E0), requires_grad=train_tokens)
        self.pos_delta = nn.Parameter(torch.zeros_like(encoder.positional_embedding), requires_grad=train_positional)

    @property
    def enc(self):
        return self.encoder[0]

    @torch.no_grad()
    def learn_only(self, token_ids: Tensor) -> TextReprogrammer:
        """Give own ΔE rows only to ``token_ids`` (the training prompts' ids) and to rows that already differ from
        g·E₀; every other row stays g·E₀, as on the full table (module doc). Exact; call it before training."""
        E0 = self.enc.token_embedding.weight
        moved = self.token_rows[(self.row_delta != E0[self.token_rows] * (self.untouched_scale - 1)).any(dim=-1)]
        rows = torch.unique(torch.cat([token_ids.flatten().to(moved), moved]))
        self._set_rows(rows, self._delta_of(rows, E0[rows]))
        return self

    def _delta_of(self, ids: Tensor, base: Tensor) -> Tensor:
        """ΔE of the vocabulary ids ``ids`` (any shape; ``base`` = E₀[ids]): own rows, else (g − 1)·E₀."""
        slot = self.row_slot[ids]
        own = self.row_delta[slot.clamp(min=0)]
        return torch.where((slot >= 0).unsqueeze(-1), own, base * (self.untouched_scale - 1))

    def _set_rows(self, rows: Tensor, deltas: Tensor) -> None:
        if torch.equal(rows, self.token_rows):  # same rows: in place, so an optimiser's references stay valid
            self.row_delta.data.copy_(deltas)
            return
        self.token_rows = rows
        self.row_slot = torch.full_like(self.row_slot, -1)
        self.row_slot[rows] = torch.arange(len(rows), device=rows.device)
        self.row_delta.data = deltas.clone().to(self.row_delta.dtype)

    def token_delta(self) -> Tensor:
        """ΔE for the whole vocabulary (V×W): the learnable rows' own ΔE, g·E₀ − E₀ everywhere else."""
        E0 = self.enc.token_embedding.weight
        return (E0 * (self.untouched_scale - 1)).index_copy(0, self.token_rows, self.row_delta)

    def tables(self) -> tuple[Tensor, Tensor]:
        """(E₀ + ΔE, P₀ + ΔP), the whole tables (for inspection; training looks up its rows only)."""
        return (self.enc.token_embedding.weight + self.token_delta(), self.enc.positional_embedding + self.pos_delta)

    def embed(self, tokens) -> Tensor:
        """(E₀ + ΔE)[t] for every token of ``tokens`` (B×L×W), without building the table."""
        ids = self.enc.token_ids(tokens)
        base = F.embedding(ids, self.enc.token_embedding.weight)
        return base + self._delta_of(ids, base)

    def forward(self, tokens) -> Tensor:
        """L2-normalised text features with the reprogrammed tables."""
        return self.enc.encode_token_embeddings(
            self.embed(tokens), tokens, self.enc.positional_embedding + self.pos_delta
        )

    @torch.no_grad()
    def post_step(self, lr_wd: dict) -> None:
        """Official decay toward zero: add −lr·wd·E₀ (AdamW already applied −lr·wd·ΔE); every other row scales by
        (1 − lr·wd) through g. ``lr_wd``: id(param) → (lr, wd)."""
        if self.decay_target != "zero":
            return
        if self.row_delta.requires_grad and id(self.row_delta) in lr_wd:
            lr, wd = lr_wd[id(self.row_delta)]
            if lr * wd:
                self.row_delta.sub_(lr * wd * self.enc.token_embedding.weight[self.token_rows])
                self.untouched_scale.mul_(1 - lr * wd)
        if self.pos_delta.requires_grad and id(self.pos_delta) in lr_wd:
            lr, wd = lr_wd[id(self.pos_delta)]
            if lr * wd:
                self.pos_delta.sub_(lr * wd * self.enc.positional_embedding)

    # ----- inspection ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def token_shift(self) -> Tensor:
        """‖ΔE_v‖ for every vocabulary row v (V,)."""
        return self.token_delta().norm(dim=-1)

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
        """The learnable rows' ΔE (+ their ids), g and ΔP: what fixes every row of the tables."""
        return {
            "token_rows": self.token_rows.to(torch.int64).clone(),
            "token_delta_rows": self.row_delta.detach().clone(),
            "untouched_scale": self.untouched_scale.detach().reshape(1).clone(),
            "pos_delta": self.pos_delta.detach().clone(),
        }

    @torch.no_grad()
    def load_sparse_state(self, state: dict[str, Tensor]) -> None:
        """Load :meth:`sparse_state` (checkpoints without ``untouched_scale`` listed every changed row: g = 1)."""
        rows, deltas = state["token_rows"].long().to(self.token_rows.device), state["token_delta_rows"]
        if (
            state["pos_delta"].shape != self.pos_delta.shape
            or deltas.shape[-1:] != self.row_delta.shape[-1:]
            or len(rows) != len(deltas)
            or (len(rows) and int(rows.max()) >= len(self.row_slot))
        ):
            raise ReprolabError(
                "text reprogrammer checkpoint does not match this encoder's tables; "
                "load it with the encoder it was trained on"
            )
        self.untouched_scale.fill_(float(state.get("untouched_scale", torch.ones(1)).reshape(-1)[0]))
        self.pos_delta.copy_(state["pos_delta"])
        keep = torch.unique(torch.cat([rows, self.token_rows]))  # this module's prompt rows stay learnable
        E0 = self.enc.token_embedding.weight
        full = E0[keep] * (self.untouched_scale - 1)
        full[torch.searchsorted(keep, rows)] = deltas.to(full)
        self._set_rows(keep, full)
