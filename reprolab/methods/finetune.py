"""Full fine-tuning (FT) and LP-FT — the paper's "fine-tuning" baselines.

FT (as in WiSE-FT, Wortsman et al., 2022, whose code the paper's baselines follow): the whole image encoder θ and a
linear head (W, b) are trained end to end with cross-entropy, AdamW (lr 3e-5, weight decay 0.1, cosine schedule):

    logits(x) = W f_I(resize(x); θ) + b ,     f_I L2-normalised ,     W₀ = s · f_T("a photo of a {c}.") ,  b₀ = 0

so at step 0 the model *is* the zero-shot classifier (up to float rounding: s·(f_I·f_Tᵀ) vs f_I·(s·f_T)ᵀ).
The text tower is not trained. ``lr`` is a constructor argument: 3e-5 is the paper's value for CLIP. On the offline
stand-ins the kit's fair comparison (docs/results.md: 100 steps of batch 32, lr chosen on validation from 1e-5 … 1e-3)
chose 3e-5 for the weak prior (``standin``; 1e-4 fell to 30 % validation accuracy, 3e-4 and 1e-3 to chance) and
3e-4 for the strong one (``standin:strong``; 1e-3 collapsed).

The encoder is **deep-copied** (``load_encoder`` shares one cached instance per process), so fine-tuning never
changes anyone else's encoder. BatchNorm: the stand-in's EfficientNet has BatchNorm layers; with the small batches
of a CPU run their batch statistics are noisy and updating the running statistics would drift them away from the
pretrained ones, so by default (``freeze_bn=True``) every BatchNorm layer stays in eval mode (running statistics
frozen, its affine weights still trained). CLIP's ViT has no BatchNorm, so this changes nothing there.

LP-FT (Kumar et al., 2022, "Fine-tuning can distort pretrained features and underperform out-of-distribution"):
stage 1 fits a linear probe on frozen features; stage 2 is FT starting from the probe's head (W₀, b₀ = probe's).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolab.errors import CheckpointError, ConfigError
from reprolab.methods.base import DEFAULT_TEMPLATE, Method
from reprolab.methods.linear_probe import LinearProbe


def image_state_names(encoder) -> list[str]:
    """state_dict names of the image tower: its parameters and the buffers of the modules that own them (BN stats)."""
    ids = {id(p) for p in encoder.image_parameters()}
    names = []
    for mod_name, mod in encoder.named_modules():
        own = dict(mod.named_parameters(recurse=False))
        if not any(id(p) in ids for p in own.values()):
            continue
        prefix = f"{mod_name}." if mod_name else ""
        names += [prefix + n for n, p in own.items() if id(p) in ids]
        names += [prefix + n for n, b in mod.named_buffers(recurse=False) if b is not None]
    return names


class FineTune(Method):
    name = "finetune"
    clip_style = False  # the head stops being text features once trained; image_features is still exposed
    trains_encoder = True

    def __init__(
        self,
        encoder,
        lr: float = 3e-5,
        weight_decay: float = 0.1,
        freeze_bn: bool = True,
        template: str = DEFAULT_TEMPLATE,
    ):
        super().__init__(copy.deepcopy(encoder), template)
        self.hp = dict(lr=lr, weight_decay=weight_decay, freeze_bn=freeze_bn)
        for p in self.encoder.image_parameters():
            p.requires_grad_(True)
        self._state_names = image_state_names(self.encoder)
        self.head: nn.Linear | None = None

    def setup(self, classnames):
        super().setup(classnames)
        zs = self.zero_shot_text_features()
        self.head = nn.Linear(zs.shape[1], len(self.classnames)).to(zs.device)
        with torch.no_grad():
            self.head.weight.copy_(self.encoder.logit_scale * zs)
            self.head.bias.zero_()
        return self

    def _need_setup(self):
        if self.head is None:
            raise ConfigError(f"{self.name}: call setup(classnames) before training or evaluating")

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.hp["freeze_bn"]:
            for m in self.encoder.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    # ----- the Method protocol ------------------------------------------------------------------------------------
    def image_features(self, images: Tensor) -> Tensor:
        return self.encoder.encode_image(self.encoder.resize(images))

    def logits(self, images: Tensor) -> Tensor:
        self._need_setup()
        return self.head(self.image_features(images))

    def trainable_parameters(self) -> list[dict]:
        self._need_setup()
        params = [p for p in self.encoder.image_parameters()] + list(self.head.parameters())
        return [dict(params=params, lr=self.hp["lr"], weight_decay=self.hp["weight_decay"], optimizer="adamw")]

    def training_loss(self, images, labels):
        logits = self.logits(images)
        return F.cross_entropy(logits, labels), logits.argmax(dim=1)

    # ----- state: image tower (parameters + BatchNorm statistics) and head ----------------------------------------
    def interpolation_state(self) -> dict[str, Tensor]:
        """Live references to every tensor fine-tuning can change, keyed as in the checkpoint."""
        self._need_setup()
        sd = self.encoder.state_dict(keep_vars=True)
        state = {f"encoder.{n}": sd[n] for n in self._state_names}
        state.update({"head.weight": self.head.weight, "head.bias": self.head.bias})
        return state

    def trainable_state(self) -> dict[str, Tensor]:
        return {k: v.detach().clone() for k, v in self.interpolation_state().items()}

    def load_trainable_state(self, state: dict[str, Tensor]) -> None:
        own = self.interpolation_state()
        wrong = [k for k in state if k not in own or own[k].shape != state[k].shape]
        if wrong:
            raise CheckpointError(
                f"checkpoint tensor {wrong[0]} does not fit {self.name} on {self.encoder.id}; "
                "load it with the same encoder and classes it was trained with"
            )
        with torch.no_grad():
            for k, v in state.items():
                own[k].copy_(v)

    def config(self) -> dict:
        return dict(super().config(), **self.hp)


class LPFT(FineTune):
    """LP-FT: ``LPFT.from_probe(probe, lr=...)`` or ``LPFT(encoder).fit_probe(train_set)``, then ``fit``."""

    name = "lp_ft"

    def __init__(
        self,
        encoder,
        lr: float = 3e-5,
        weight_decay: float = 0.1,
        freeze_bn: bool = True,
        template: str = DEFAULT_TEMPLATE,
        probe_backend: str = "sklearn",
        probe_kwargs: dict | None = None,
    ):
        super().__init__(encoder, lr, weight_decay, freeze_bn, template)
        self.probe_backend, self.probe_kwargs = probe_backend, dict(probe_kwargs or {})
        self.probe_config: dict | None = None

    @classmethod
    def from_probe(cls, probe: LinearProbe, **ft_kwargs) -> LPFT:
        """Stage 2 of LP-FT: a fine-tuning method on the probe's encoder whose head is a copy of the probe's."""
        if probe.head is None:
            raise ConfigError("the linear probe is not set up; fit it (probe.fit_features(train_set)) first")
        kw = dict(template=probe.template, probe_backend=probe.backend)
        kw.update(ft_kwargs)
        m = cls(probe.encoder, **kw)
        m.setup(probe.classnames)
        m.copy_head(probe)
        return m

    def copy_head(self, probe: LinearProbe) -> None:
        self._need_setup()
        if probe.head.weight.shape != self.head.weight.shape:
            raise ConfigError("probe and fine-tuning heads differ in shape; use the same encoder and classes")
        with torch.no_grad():
            self.head.weight.copy_(probe.head.weight)
            self.head.bias.copy_(probe.head.bias)
        self.probe_config = probe.config()

    def fit_probe(self, train_set, batch_size: int = 256, progress: bool = True) -> LPFT:
        """Stage 1 on this method's (not yet fine-tuned) encoder, then copy the probe's head into ours."""
        if self.head is None:
            self.setup(train_set.classnames)
        probe = LinearProbe(self.encoder, backend=self.probe_backend, template=self.template, **self.probe_kwargs)
        probe.setup(self.classnames).fit_features(train_set, batch_size, progress)
        self.copy_head(probe)
        return self

    prepare = fit_probe  # harness hook run before fit()

    def config(self) -> dict:
        return dict(
            super().config(), probe_backend=self.probe_backend, probe_kwargs=self.probe_kwargs, probe=self.probe_config
        )
