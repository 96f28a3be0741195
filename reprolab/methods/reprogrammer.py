"""Reprogrammer (RP, paper §3) as a method; the Residual Reprogrammer (RRP, §3.4) is in
:mod:`reprolab.methods.residual_reprogrammer`.

RP: the encoder stays frozen; an :class:`~reprolab.reprogramming.image_reprogrammer.ImageReprogrammer` (learned frame) and/or a
:class:`~reprolab.reprogramming.text_reprogrammer.TextReprogrammer` (token/positional tables) are trained with the symmetric
in-batch focal loss of :mod:`reprolab.reprogramming.losses`. ``mode`` selects ``"image"``, ``"text"`` or ``"both"`` (paper).
Optimisers (official defaults): image — Adam, lr 5e-3, weight decay 0.1; text — AdamW, lr 5e-4,
betas (0.9, 0.98), eps 1e-6, weight decay 0.1.

Resizing (``resize``): ``"bilinear"`` (the kit's default) or ``"official"`` (PIL bicubic with the official code's
uint8 round trips; ``configs/paper/``), see :mod:`reprolab.reprogramming.image_reprogrammer`.

Where the reduction to ``image_res`` starts (``reduce_from``):

* ``"dataset"`` (the kit's default): from the image the run's set hands every method, at the config's
  ``image_size`` (224 px for ImageNet). ImageNet then goes raw → 224 (dataset, bilinear) → 128 → 224.
* ``"raw"`` (the official order; ``configs/paper/imagenet.yaml``): the set's image files are re-read and resized
  once, straight to ``image_res``, with PIL bicubic + centre crop. This is the official data loader
  (:func:`reprolab.datasets.loader_view.loader_view`). ImageNet goes raw → 128 → 224, and the reprogrammer's own
  first resize has nothing left to do. It needs ``resize="official"``. The harness asks each method for its
  input through :meth:`Method.input_view`, in :func:`~reprolab.evaluation.evaluate.collect` and in
  :func:`~reprolab.training.fit`. So only the reprogrammer (and RRP's reduced zero-shot half) reads the view.
  Zero-shot, fine-tuning and the other methods of the same run keep the set's 224-px images. Pixels:
  ``docs/fidelity.md``. Calling ``logits(images)`` directly uses whatever images it is given.

Every result row records ``template``, ``resize`` and ``reduce_from`` (:meth:`Method.row_settings`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from reprolab import distributed
from reprolab.errors import ReprolabError
from reprolab.methods.base import DEFAULT_TEMPLATE, Method
from reprolab.reprogramming.image_reprogrammer import ImageReprogrammer
from reprolab.reprogramming.losses import contrastive_loss
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
        resize: str = "bilinear",
        reduce_from: str = "dataset",
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
        check_reduce_from(reduce_from, resize, mode)
        self.reduce_from = reduce_from
        S = encoder.image_size
        # Official CIFAR geometry on a 224 canvas: 64 → 224, frame outside the centre 192. Scaled to other canvases.
        self.geometry = dict(
            canvas=S,
            image_res=image_res or max(8, round(64 * S / 224)),
            up_res=up_res or S,
            mr_res=mr_res or round(192 * S / 224),
            dropout=dropout,
            init_std=init_std,
            resize=resize,
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

    def setup(self, classnames: list[str]) -> Reprogrammer:
        super().setup(classnames)
        # only the class prompts' tokens ever get a gradient: the text side keeps own rows for those (exact; see
        # TextReprogrammer), so a step never passes over the whole 49,408-row table
        self.text_rp.learn_only(self.encoder.token_ids(self._class_tokens))
        return self

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
                    params=[self.text_rp.row_delta, self.text_rp.pos_delta],
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

    def input_view(self, dataset):
        """``reduce_from="raw"``: the set's files resized straight to ``image_res`` (the official loader)."""
        if self.reduce_from == "dataset":
            return dataset
        from reprolab.datasets.loader_view import loader_view

        return loader_view(dataset, self.geometry["image_res"])

    def row_settings(self) -> dict:
        return dict(super().row_settings(), resize=self.geometry["resize"], reduce_from=self.reduce_from)

    def training_loss(self, images, labels):
        if images.ndim == 2:  # a batch of precomputed frozen image features (FeatureSet): text mode only
            return self.training_loss_from_features(images, labels)
        # under torchrun the in-batch loss needs the whole global batch: gather it (reprolab.distributed)
        fi = distributed.gather_with_grad(self.image_features(images))
        ft = distributed.gather_with_grad(self.batch_text_features(labels))
        y = distributed.gather_plain(labels)
        loss, s = contrastive_loss(fi, ft, self.encoder.logit_scale, self.loss_kind, *self.focal)
        preds = y[s.argmax(dim=1)]  # in-batch prediction: the class of the best-matching prompt
        return loss, distributed.local_rows(preds)

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
        fi = distributed.gather_plain(image_features.to(self.text_rp.row_delta.device))  # frozen: no gradient
        ft = distributed.gather_with_grad(self.batch_text_features(labels))
        y = distributed.gather_plain(labels)
        loss, s = contrastive_loss(fi, ft, self.encoder.logit_scale, self.loss_kind, *self.focal)
        return loss, distributed.local_rows(y[s.argmax(dim=1)])

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
        extra = {"reduce_from": "raw"} if self.reduce_from == "raw" else {}  # "dataset": the keys the kit always had
        return dict(
            super().config(),
            mode=self.mode,
            loss=self.loss_kind,
            focal=list(self.focal),
            **self.geometry,
            **self.hp,
            **extra,
        )


def check_reduce_from(reduce_from: str, resize: str, mode: str) -> None:
    """One-line errors for ``reduce_from`` (module docstring)."""
    if reduce_from not in ("dataset", "raw"):
        raise ReprolabError(f"reduce_from={reduce_from!r}; use 'dataset' (kit) or 'raw' (official loader order)")
    if reduce_from == "raw" and resize != "official":
        raise ReprolabError(
            "reduce_from='raw' is the official loader's PIL bicubic step; use it with resize='official'"
        )
    if reduce_from == "raw" and mode == "text":
        raise ReprolabError("reduce_from='raw' changes the image reprogrammer's input; mode='text' has none, drop it")
