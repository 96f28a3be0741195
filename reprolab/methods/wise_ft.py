"""WiSE-FT (Wortsman et al., 2022, "Robust fine-tuning of zero-shot models"): weight-space ensembling.

With θ_ZS the zero-shot weights (pretrained image encoder + zero-shot head W = s·f_T, b = 0) and θ_FT the
fine-tuned weights (a :class:`~reprolab.methods.finetune.FineTune` / ``LPFT`` run), WiSE-FT evaluates

    θ(α) = (1 − α) · θ_ZS + α · θ_FT            over every image-encoder tensor and the head

**Here α = ``alpha_finetuned`` is the weight on the *fine-tuned* weights** (α = 0 → zero-shot, α = 1 → FT), as in
the WiSE-FT paper — the opposite of the Residual Reprogrammer's ``alpha_zeroshot`` (:mod:`reprolab.reprogramming.residual`).
Floating-point BatchNorm statistics are interpolated too; integer counters are taken from the nearer end point.

Nothing is trained: θ_ZS and θ_FT are stored once, and :meth:`WiSEFT.set_alpha` rewrites the model's weights in
place, so an α sweep costs one evaluation per α. At α = 0 and α = 1 the end points are *copied* (no arithmetic),
so the model is bit-identical to the zero-shot-initialised fine-tuning model resp. to the fine-tuned model.
"""

from __future__ import annotations

import torch
from torch import Tensor

from reprolab.errors import CheckpointError, ConfigError, ReprolabError
from reprolab.methods.base import DEFAULT_TEMPLATE, Method
from reprolab.methods.finetune import FineTune


def check_alpha_finetuned(alpha_finetuned: float) -> float:
    a = float(alpha_finetuned)
    if not 0.0 <= a <= 1.0:  # also rejects NaN
        raise ReprolabError(
            f"alpha_finetuned={alpha_finetuned!r} is outside [0, 1]; it is the weight on the "
            "fine-tuned weights (0 = zero-shot, 1 = fine-tuned)"
        )
    return a


class WiSEFT(Method):
    name = "wise_ft"
    clip_style = False

    def __init__(
        self,
        zeroshot_encoder,
        finetuned_method: FineTune | None = None,
        alpha_finetuned: float = 0.5,
        template: str = DEFAULT_TEMPLATE,
    ):
        """``finetuned_method`` may be None: then θ_FT = θ_ZS until a fine-tuning checkpoint is loaded with
        :meth:`load_trainable_state` (it takes a ``finetune``/``lp_ft`` checkpoint's tensors as they are)."""
        alpha = check_alpha_finetuned(alpha_finetuned)
        if finetuned_method is not None and not isinstance(finetuned_method, FineTune):
            raise ConfigError("WiSEFT needs a trained FineTune or LPFT method as finetuned_method (or None)")
        template = finetuned_method.template if finetuned_method is not None else template
        model = FineTune(zeroshot_encoder, template=template)  # private copy whose weights set_alpha rewrites
        super().__init__(model.encoder, template)
        self.model = model
        self.model.requires_grad_(False)
        self.alpha_finetuned = alpha
        self._ft_ref = [finetuned_method]  # a list: not registered as a sub-module (not moved, not trained)
        self.theta_zs: dict[str, Tensor] = {}
        self.theta_ft: dict[str, Tensor] = {}
        if finetuned_method is not None and finetuned_method.classnames:
            self.setup(finetuned_method.classnames)

    def setup(self, classnames):
        super().setup(classnames)
        self.model.setup(classnames)
        self.model.head.requires_grad_(False)
        self.theta_zs = {k: v.detach().clone() for k, v in self.model.interpolation_state().items()}
        ft = self._ft_ref[0]
        if ft is not None:
            if list(ft.classnames) != list(self.classnames):
                raise ConfigError("the fine-tuned method was set up with other classes; use the same class list")
            self.theta_ft = self._check({k: v.detach().clone() for k, v in ft.interpolation_state().items()})
        else:
            self.theta_ft = {k: v.clone() for k, v in self.theta_zs.items()}
        self.set_alpha(self.alpha_finetuned)
        return self

    def _check(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        wrong = [k for k in self.theta_zs if k not in state or state[k].shape != self.theta_zs[k].shape]
        if wrong:
            raise CheckpointError(
                f"fine-tuned weights lack or mis-shape {wrong[0]}; the fine-tuned model must use "
                "the same encoder and classes as the zero-shot one"
            )
        return {k: state[k] for k in self.theta_zs}

    @torch.no_grad()
    def set_alpha(self, alpha_finetuned: float) -> WiSEFT:
        """Re-interpolate the model's weights in place: θ = (1 − α)·θ_ZS + α·θ_FT (no training)."""
        a = check_alpha_finetuned(alpha_finetuned)
        if not self.theta_zs:
            raise ConfigError("WiSEFT: call setup(classnames) before set_alpha")
        for k, live in self.model.interpolation_state().items():
            zs, ft = self.theta_zs[k].to(live.device), self.theta_ft[k].to(live.device)
            if a == 0.0 or (a < 0.5 and not live.is_floating_point()):
                live.copy_(zs)
            elif a == 1.0 or not live.is_floating_point():
                live.copy_(ft)
            else:
                live.copy_((1.0 - a) * zs + a * ft)
        self.alpha_finetuned = a
        return self

    # ----- the Method protocol ------------------------------------------------------------------------------------
    def image_features(self, images: Tensor) -> Tensor:
        return self.model.image_features(images)

    def logits(self, images: Tensor) -> Tensor:
        return self.model.logits(images)

    def trainable_state(self) -> dict[str, Tensor]:
        """θ_FT, keyed like a FineTune checkpoint (the interpolated weights follow from it and α)."""
        return {k: v.clone() for k, v in self.theta_ft.items()}

    def load_trainable_state(self, state: dict[str, Tensor]) -> None:
        if not self.theta_zs:
            raise ConfigError("WiSEFT: call setup(classnames) before loading fine-tuned weights")
        self.theta_ft = {k: v.detach().clone() for k, v in self._check(state).items()}
        self.set_alpha(self.alpha_finetuned)

    def config(self) -> dict:
        ft = self._ft_ref[0].config() if self._ft_ref[0] is not None else None
        return dict(super().config(), alpha_finetuned=self.alpha_finetuned, finetuned=ft)
