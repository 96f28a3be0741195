"""The one protocol every method (reprogrammers and baselines) implements, so that the training loop, checkpoints
and the evaluation harness treat them alike.

A method turns raw images in [0,1] (at the dataset's own size) into class logits. CLIP-style methods produce
L2-normalised image and text features and logits = s · f_I f_Tᵀ with s = ``encoder.logit_scale`` = 100 (T = 0.01);
classifier baselines (linear probe, fine-tuning) produce head outputs directly. Either way, ``logits`` is what
accuracy and the OOD scores (MCM, energy, max-logit) are computed from.

Class prompts come from ``template`` (``str.format`` with the class name; every CLIP-style method takes it as a
parameter, so a run config sets it per method). The kit's default is ``"a photo of a {}."``; the official code uses
``OFFICIAL_TEMPLATE = "a photo of a {}"`` (no period, ``utils/label_map.py``) for CIFAR and ImageNet, and
``configs/paper/`` uses that. Every result row records the template (:meth:`Method.row_settings`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from reprolab.errors import CheckpointError

DEFAULT_TEMPLATE = "a photo of a {}."
OFFICIAL_TEMPLATE = "a photo of a {}"


class Method(nn.Module):
    name = "method"
    clip_style = True  # has image_features / text_features
    trains_encoder = False  # True only for fine-tuning methods

    def train(self, mode: bool = True):
        """Train mode for the method's own modules; a frozen encoder stays in eval mode (BatchNorm statistics and
        dropout of the pretrained network must not change while reprogramming)."""
        super().train(mode)
        if not self.trains_encoder:
            self.encoder.eval()
        return self

    def __init__(self, encoder, template: str = DEFAULT_TEMPLATE):
        super().__init__()
        self.encoder = encoder
        self.template = template
        self.classnames: list[str] = []

    # ----- set-up and training ------------------------------------------------------------------------------------
    def setup(self, classnames: list[str]) -> Method:
        self.classnames = list(classnames)
        self._class_tokens = self.encoder.tokenize([self.template.format(c) for c in self.classnames])
        self._zs_text = None
        return self

    def trainable_parameters(self) -> list[dict]:
        """Optimiser param groups: dicts with params, lr, weight_decay, optimizer ('adam'|'adamw'), betas, eps."""
        return []

    def training_loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor | None]:
        """(loss, predicted labels or None) for one batch."""
        raise NotImplementedError(f"{self.name} has nothing to train")

    def post_step(self, lr_wd: dict) -> None:
        """Hook after each optimiser step (e.g. the text reprogrammer's official weight decay)."""

    def epoch_start(self, epoch: int, train_set) -> None:
        """Hook at the start of each training epoch (the visual reprogrammer's iterative label mapping)."""

    # ----- inference ----------------------------------------------------------------------------------------------
    def input_view(self, dataset):
        """The dataset as this method reads it: the set itself, or a view of the same items (a reprogrammer with
        ``reduce_from="raw"``). The harness (``collect``, ``fit``) asks every method, so methods of one run can
        read the same items differently."""
        return dataset

    def class_tokens(self, rows: Tensor | None = None):
        toks = self._class_tokens
        if rows is not None:
            toks = {k: v[rows] for k, v in toks.items()} if isinstance(toks, dict) else toks[rows]
        return self.encoder.to_device(toks)

    def zero_shot_text_features(self) -> Tensor:
        """f_T^ZS of the class prompts with the frozen encoder (cached)."""
        if self._zs_text is None or self._zs_text.device != self.encoder.device:
            with torch.no_grad():
                self._zs_text = self.encoder.encode_text(self.class_tokens())
        return self._zs_text

    def image_features(self, images: Tensor) -> Tensor:
        return self.encoder.encode_image(self.encoder.resize(images))

    def text_features(self) -> Tensor:
        return self.zero_shot_text_features()

    def logits(self, images: Tensor) -> Tensor:
        return self.encoder.logit_scale * self.image_features(images) @ self.text_features().t()

    # ----- state --------------------------------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, Tensor]:
        return {n: p.detach().clone() for n, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, Tensor]) -> None:
        own = dict(self.named_parameters())
        missing = [k for k in state if k not in own]
        if missing:
            raise CheckpointError(
                f"checkpoint holds {missing[:3]} which {self.name} does not have; "
                "load it into the method (and config) it was saved from"
            )
        with torch.no_grad():
            for k, v in state.items():
                if own[k].shape != v.shape:
                    raise CheckpointError(
                        f"checkpoint tensor {k} has shape {tuple(v.shape)}, {self.name} expects "
                        f"{tuple(own[k].shape)}; use the same encoder and config"
                    )
                own[k].copy_(v)

    def config(self) -> dict:
        return {"method": self.name, "encoder": self.encoder.id, "template": self.template}

    def row_settings(self) -> dict:
        """Settings every result row of this method records (where the kit and the official code may differ)."""
        return {"template": self.template}

    def frozen_named_parameters(self):
        """The encoder's weights (frozen for every method but fine-tuning)."""
        return self.encoder.named_parameters()


class ZeroShot(Method):
    """Zero-shot classification (paper §2): logits = s · f_I(x) f_T("a photo of a {c}")ᵀ, nothing trained.

    ``templates="ensemble"`` averages the class-prompt features over open_clip's 80 OpenAI ImageNet templates
    (Radford et al., 2021) and renormalises; the default is the paper's single template.
    """

    name = "zeroshot"

    def __init__(self, encoder, template: str = DEFAULT_TEMPLATE, templates: str = "single"):
        super().__init__(encoder, template)
        self.templates = templates

    def zero_shot_text_features(self) -> Tensor:
        if self.templates != "ensemble":
            return super().zero_shot_text_features()
        if self._zs_text is None:
            import open_clip

            feats = []
            for c in self.classnames:
                prompts = [t(c) for t in open_clip.OPENAI_IMAGENET_TEMPLATES]
                feats.append(torch.nn.functional.normalize(self.encoder.encode_text_prompts(prompts).mean(0), dim=-1))
            self._zs_text = torch.stack(feats)
        return self._zs_text

    def config(self) -> dict:
        return dict(super().config(), templates=self.templates)
