"""Reprogrammer (RP, paper §3) and Residual Reprogrammer (RRP, §3.4) as methods.

RP: the encoder stays frozen; an :class:`~reprolab.reprogramming.image_reprogrammer.ImageReprogrammer` (learned frame) and/or a
:class:`~reprolab.reprogramming.text_reprogrammer.TextReprogrammer` (token/positional tables) are trained with the symmetric
in-batch focal loss of :mod:`reprolab.reprogramming.losses`. ``mode`` selects ``"image"``, ``"text"`` or ``"both"`` (paper).
Optimisers (official defaults): image — Adam, lr 5e-3, weight decay 0.1; text — AdamW, lr 5e-4,
betas (0.9, 0.98), eps 1e-6, weight decay 0.1.

RRP: the equation lives in :mod:`reprolab.reprogramming.residual`; here it is wired to a trained RP and the zero-shot encoder.
"""

from __future__ import annotations

import torch
from torch import Tensor

from reprolab.errors import ReprolabError
from reprolab.methods.base import DEFAULT_TEMPLATE, Method
from reprolab.reprogramming.image_reprogrammer import ImageReprogrammer
from reprolab.reprogramming.losses import contrastive_loss
from reprolab.reprogramming.residual import check_alpha, residual_logits
from reprolab.reprogramming.text_reprogrammer import TextReprogrammer


class Reprogrammer(Method):
    name = "reprogrammer"

    def __init__(
        self,
        encoder,
        mode: str = "both",
        image_res: int | None = None,
        up_res: int | None = None,
        mr_res: int | None = None,
        dropout: float = 0.0,
        init_std: float = 1.0,
        loss: str = "focal",
        focal_alpha: float = 0.8,
        focal_gamma: float = 4.0,
        lr_image: float = 5e-3,
        wd_image: float = 0.1,
        lr_text: float = 5e-4,
        wd_text: float = 0.1,
        text_decay_target: str = "zero",
        template: str = DEFAULT_TEMPLATE,
        seed: int = 0,
    ):
        super().__init__(encoder, template)
        if mode not in ("image", "text", "both"):
            raise ReprolabError(f"mode={mode!r}; use 'image', 'text' or 'both'")
        S = encoder.image_size
        # Official CIFAR geometry on a 224 canvas: 64 → 224, frame outside the centre 192. Scaled to other canvases.
        self.geometry = dict(
            canvas=S,
            image_res=image_res or max(8, round(64 * S / 224)),
            up_res=up_res or S,
            mr_res=mr_res or round(192 * S / 224),
            dropout=dropout,
            init_std=init_std,
        )
        self.mode, self.loss_kind, self.focal = mode, loss, (focal_alpha, focal_gamma)
        self.hp = dict(
            lr_image=lr_image,
            wd_image=wd_image,
            lr_text=lr_text,
            wd_text=wd_text,
            text_decay_target=text_decay_target,
            seed=seed,
        )
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.image_rp = ImageReprogrammer(**self.geometry).to(encoder.device)
        self.text_rp = TextReprogrammer(encoder, decay_target=text_decay_target).to(encoder.device)
        self.image_rp.requires_grad_(mode in ("image", "both"))
        self.text_rp.requires_grad_(mode in ("text", "both"))

    def trainable_parameters(self) -> list[dict]:
        groups = []
        if self.mode in ("image", "both"):
            groups.append(
                dict(
                    params=[self.image_rp.W], lr=self.hp["lr_image"], weight_decay=self.hp["wd_image"], optimizer="adam"
                )
            )
        if self.mode in ("text", "both"):
            groups.append(
                dict(
                    params=[self.text_rp.token_delta, self.text_rp.pos_delta],
                    lr=self.hp["lr_text"],
                    weight_decay=self.hp["wd_text"],
                    optimizer="adamw",
                    betas=(0.9, 0.98),
                    eps=1e-6,
                )
            )
        return groups

    def post_step(self, lr_wd: dict) -> None:
        self.text_rp.post_step(lr_wd)

    # ----- features -----------------------------------------------------------------------------------------------
    def reprogram(self, images: Tensor) -> Tensor:
        """The image the frozen encoder sees (RP's frame added), or the plain resize when the image side is off."""
        if self.mode == "text":
            return self.encoder.resize(images)
        return self.image_rp(images)

    def image_features(self, images: Tensor) -> Tensor:
        return self.encoder.encode_image(self.reprogram(images))

    def text_features(self, rows: Tensor | None = None) -> Tensor:
        if self.mode == "image":
            zs = self.zero_shot_text_features()
            return zs if rows is None else zs[rows]
        return self.text_rp(self.class_tokens(rows))

    def training_loss(self, images, labels):
        if images.ndim == 2:  # a batch of precomputed frozen image features (FeatureSet): text mode only
            return self.training_loss_from_features(images, labels)
        fi = self.image_features(images)
        ft = self.batch_text_features(labels)
        loss, s = contrastive_loss(fi, ft, self.encoder.logit_scale, self.loss_kind, *self.focal)
        preds = labels[s.argmax(dim=1)]  # in-batch prediction: the class of the best-matching prompt
        return loss, preds

    def batch_text_features(self, labels: Tensor) -> Tensor:
        """The prompt features of a batch, one row per image: each distinct class's prompt runs through the text
        tower once and the rows are picked by label — the same values and gradients as running one prompt per
        image (32 → 10 text sequences at batch 32 on CIFAR-10; the in-batch loss still pairs image i with row i)."""
        classes, inverse = labels.cpu().unique(return_inverse=True)
        return self.text_features(rows=classes)[inverse.to(labels.device)]

    def training_loss_from_features(self, image_features: Tensor, labels: Tensor):
        """The text reprogrammer's loss from cached image features: with ``mode="text"`` the image side is the frozen
        encoder's plain resize, so ``image_features`` of :class:`~reprolab.evaluation.frozen.FeatureSet` (the
        frozen encoder's output) give the same loss and gradients as the images, with no image pass per step."""
        if self.mode != "text":
            raise ReprolabError(
                f"training from cached image features needs mode='text' (this reprogrammer has mode={self.mode!r}: "
                "its learned frame changes the image features); train it on the images"
            )
        fi = image_features.to(self.text_rp.token_delta.device)
        ft = self.batch_text_features(labels)
        loss, s = contrastive_loss(fi, ft, self.encoder.logit_scale, self.loss_kind, *self.focal)
        return loss, labels[s.argmax(dim=1)]

    # ----- state --------------------------------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, Tensor]:
        state = {}
        if self.mode in ("image", "both"):
            state["image.W"] = self.image_rp.W.detach().clone()
        if self.mode in ("text", "both"):
            state.update({f"text.{k}": v for k, v in self.text_rp.sparse_state().items()})
        return state

    def load_trainable_state(self, state: dict[str, Tensor]) -> None:
        with torch.no_grad():
            if "image.W" in state:
                if state["image.W"].shape != self.image_rp.W.shape:
                    raise ReprolabError("image reprogrammer checkpoint has a different canvas; use the same encoder")
                self.image_rp.W.copy_(state["image.W"])
            text = {k[5:]: v for k, v in state.items() if k.startswith("text.")}
            if text:
                self.text_rp.load_sparse_state(text)

    def config(self) -> dict:
        return dict(
            super().config(), mode=self.mode, loss=self.loss_kind, focal=list(self.focal), **self.geometry, **self.hp
        )


class ResidualReprogrammer(Method):
    """RRP: logits from (1−α)·RP + α·zero-shot features on both towers; α = ``alpha_zeroshot``."""

    name = "residual_reprogrammer"

    def __init__(self, reprogrammer: Reprogrammer, alpha_zeroshot: float = 0.4, renormalise: bool = False):
        super().__init__(reprogrammer.encoder, reprogrammer.template)
        self.rp = reprogrammer
        self.alpha_zeroshot = check_alpha(alpha_zeroshot)
        self.renormalise = renormalise

    def setup(self, classnames):
        super().setup(classnames)
        self.rp.setup(classnames)
        return self

    def image_features(self, images):  # blended image features (for drift and caching)
        from reprolab.reprogramming.residual import blend

        return blend(
            self.rp.image_features(images), super().image_features(images), self.alpha_zeroshot, self.renormalise
        )

    def text_features(self):
        from reprolab.reprogramming.residual import blend

        return blend(self.rp.text_features(), self.zero_shot_text_features(), self.alpha_zeroshot, self.renormalise)

    def logits(self, images):
        return residual_logits(
            self.rp.image_features(images),
            super().image_features(images),
            self.rp.text_features(),
            self.zero_shot_text_features(),
            self.alpha_zeroshot,
            self.encoder.logit_scale,
            self.renormalise,
        )

    def trainable_state(self):
        return self.rp.trainable_state()

    def load_trainable_state(self, state):
        self.rp.load_trainable_state(state)

    def config(self):
        return dict(
            self.rp.config(), method=self.name, alpha_zeroshot=self.alpha_zeroshot, renormalise=self.renormalise
        )
