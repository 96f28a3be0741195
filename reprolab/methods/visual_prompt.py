"""Visual prompting (Bahng et al., 2022, "Exploring visual prompts for adapting large-scale models"): a learned
padding prompt added to the image, both towers frozen, text side = zero-shot prompts "a photo of a {c}.".

    x̃ = clamp(resize_S(x) + M ⊙ P, 0, 1) ,    logits = s · f_I(x̃) f_T^ZSᵀ  (s = 100),  cross-entropy

where S is the encoder canvas, M the frame mask of width p (outer p pixels on every side, zero inside) and P the
learned 3×S×S prompt (only its frame is stored: four pads, as Bahng et al.'s ``PadPrompter``). Width p = 30 on a
224 canvas (the paper), scaled to other canvases: p = round(30·S/224) (17 px at 128, 4 px at 32).

Unlike the Reprogrammer (paper §3.1), the image is resized to the *full* canvas — no shrinking, no up-sampling /
padding schedule — and the prompt overlaps its border.

Deviations from Bahng et al., stated: (1) they add the prompt to the *normalised* image (after CLIP's mean/std);
we add it in pixel space, before the encoder's own normalisation, and clamp to [0,1] (no tanh), like the kit's
reprogrammer, so prompted images are valid images. (2) They initialise the pads with ``randn``; the default here is
``init="zeros"``, so training starts exactly at the zero-shot model (``init="randn"`` with ``init_std`` is offered;
note that std 1 in normalised units is ≈ 0.27 in pixels). (3) They train with SGD lr 40 (momentum 0.9); the kit's
loop has Adam/AdamW, so the default is Adam, lr 1e-2, no weight decay.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolab.errors import ConfigError
from reprolab.methods.base import DEFAULT_TEMPLATE, Method


class PadPrompter(nn.Module):
    """The learned frame: four pads of width p around a canvas of side S (the centre is not learned)."""

    def __init__(self, canvas: int, pad: int, init: str = "zeros", init_std: float = 1.0):
        super().__init__()
        if not 0 < 2 * pad < canvas:
            raise ConfigError(f"pad={pad} does not fit a {canvas}px canvas; use 0 < 2·pad < {canvas}")
        if init not in ("zeros", "randn"):
            raise ConfigError(f"init={init!r}; use 'zeros' (starts at zero-shot) or 'randn' (Bahng et al.)")
        self.canvas, self.pad = canvas, pad
        inner = canvas - 2 * pad
        make = (lambda *s: torch.randn(*s) * init_std) if init == "randn" else torch.zeros
        self.pad_up = nn.Parameter(make(1, 3, pad, canvas))
        self.pad_down = nn.Parameter(make(1, 3, pad, canvas))
        self.pad_left = nn.Parameter(make(1, 3, inner, pad))
        self.pad_right = nn.Parameter(make(1, 3, inner, pad))

    def prompt(self) -> Tensor:
        """The 1×3×S×S prompt M ⊙ P (zero inside the frame)."""
        inner = self.canvas - 2 * self.pad
        centre = torch.zeros(1, 3, inner, inner, dtype=self.pad_up.dtype, device=self.pad_up.device)
        middle = torch.cat([self.pad_left, centre, self.pad_right], dim=3)
        return torch.cat([self.pad_up, middle, self.pad_down], dim=2)

    def forward(self, x: Tensor) -> Tensor:
        return (x + self.prompt().to(x.dtype)).clamp(0, 1)


class VisualPrompt(Method):
    name = "visual_prompt"

    def __init__(
        self,
        encoder,
        pad: int | None = None,
        init: str = "zeros",
        init_std: float = 1.0,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        template: str = DEFAULT_TEMPLATE,
        seed: int = 0,
    ):
        super().__init__(encoder, template)
        S = encoder.image_size
        pad = round(30 * S / 224) if pad is None else pad
        self.hp = dict(canvas=S, pad=pad, init=init, init_std=init_std, lr=lr, weight_decay=weight_decay, seed=seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.prompter = PadPrompter(S, pad, init, init_std).to(encoder.device)

    def prompted(self, images: Tensor) -> Tensor:
        """The image the frozen encoder sees: resized to the full canvas, prompt added, clamped to [0,1]."""
        return self.prompter(self.encoder.resize(images))

    def image_features(self, images: Tensor) -> Tensor:
        return self.encoder.encode_image(self.prompted(images))

    def trainable_parameters(self) -> list[dict]:
        return [
            dict(
                params=list(self.prompter.parameters()),
                lr=self.hp["lr"],
                weight_decay=self.hp["weight_decay"],
                optimizer="adam",
            )
        ]

    def training_loss(self, images, labels):
        logits = self.logits(images)
        return F.cross_entropy(logits, labels), logits.argmax(dim=1)

    def trainable_state(self) -> dict[str, Tensor]:
        return {f"prompter.{n}": p.detach().clone() for n, p in self.prompter.named_parameters()}

    def config(self) -> dict:
        return dict(super().config(), **self.hp)
