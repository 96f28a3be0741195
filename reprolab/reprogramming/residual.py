"""The Residual Reprogrammer (paper §3.4): blend reprogrammed and zero-shot features at inference.

On both towers, with L2-normalised features,

    f_I = (1 − α)·f_I^RP + α·f_I^ZS ,     f_T = (1 − α)·f_T^RP + α·f_T^ZS ,     logits = s · f_I f_Tᵀ  (s = 100)

and *no* renormalisation by default (as the official code; ``renormalise=True`` re-projects both onto the sphere).

**α here is the weight on the zero-shot features** — the code calls it ``alpha_zeroshot``. α = 1 is zero-shot,
α = 0 is the plain reprogrammer. WiSE-FT's α means the opposite (the weight on the *fine-tuned* weights), see
:mod:`reprolab.methods.wise_ft`.

What f_I^ZS is computed from differs between the kit and the official code. The official code encodes the image the
reprogrammer sees before its frame: reduced to ``image_res``, then upsampled to the canvas (r = 128 → 224 for
ImageNet), in fp16. The kit's default encodes the dataset image resized to the canvas, in fp32.
``ResidualReprogrammer(zs_input="reduced", zs_dtype="fp16")`` (:mod:`reprolab.methods.residual_reprogrammer`;
the default in ``configs/paper/``) gives the official input and precision (fp16 on CUDA only). Every result row
records which were used (``zs_input``, ``zs_dtype``), and ``docs/fidelity.md`` measures the difference.

Everything here works on features, so with cached features a change of α costs no encoder pass.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from reprolab.errors import ReprolabError


def check_alpha(alpha_zeroshot: float) -> float:
    a = float(alpha_zeroshot)
    if not 0.0 <= a <= 1.0:  # also rejects NaN
        raise ReprolabError(
            f"alpha_zeroshot={alpha_zeroshot!r} is outside [0, 1]; it is the weight on the "
            "zero-shot features (0 = reprogrammer, 1 = zero-shot)"
        )
    return a


def blend(f_rp: Tensor, f_zs: Tensor, alpha_zeroshot: float, renormalise: bool = False) -> Tensor:
    """(1 − α)·f_RP + α·f_ZS."""
    a = check_alpha(alpha_zeroshot)
    if f_rp.shape != f_zs.shape:
        raise ReprolabError(
            f"cannot blend features of shapes {tuple(f_rp.shape)} and {tuple(f_zs.shape)}; "
            "compute both on the same images / class prompts"
        )
    f = (1.0 - a) * f_rp + a * f_zs
    return F.normalize(f, dim=-1) if renormalise else f


def residual_logits(
    image_rp: Tensor,
    image_zs: Tensor,
    text_rp: Tensor,
    text_zs: Tensor,
    alpha_zeroshot: float,
    logit_scale: float = 100.0,
    renormalise: bool = False,
) -> Tensor:
    """s · blend(f_I) · blend(f_T)ᵀ from cached features (N×D images, C×D class prompts)."""
    fi = blend(image_rp, image_zs, alpha_zeroshot, renormalise)
    ft = blend(text_rp, text_zs, alpha_zeroshot, renormalise)
    return logit_scale * fi @ ft.t()
