"""Image-side reprogramming (paper §3.1; official ``clip/remodel.py``).

An input image x ∈ [0,1]^{3×h×w} is turned into the encoder's canvas (side S, 224 for CLIP) by

    x̃ = clamp( pad_S( up_u( resize_r(x) ) ) + δ , 0, 1 ),      δ = Dropout_p( M ⊙ tanh(W) )

* ``resize_r``: resize to ``image_res`` r (64 for CIFAR in the official runs, 128 for ImageNet);
* ``up_u``: upsample to ``up_res`` u; ``pad_S``: centre it in an S×S canvas of zeros;
* W ∈ R^{3×S×S} is the only learned tensor, initialised N(0, 1); tanh bounds |δ| ≤ 1;
* M is 1 outside a centred ``mr_res``×``mr_res`` square and 0 inside (default 192 ⇒ a 16-px frame on 224), so
  the learned perturbation is a frame around the image;
* then the frozen encoder applies its *own* normalisation (inside ``Encoder.encode_image``).

With W = 0 the perturbation vanishes and x̃ is the plain resized/upsampled/padded image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolab.errors import ShapeError


def centre_mask(canvas: int, inner: int) -> Tensor:
    """M: 1×S×S float mask, 0 inside the centred ``inner``×``inner`` square, 1 outside."""
    if not 0 <= inner <= canvas:
        raise ShapeError(f"mr_res={inner} must lie in [0, canvas={canvas}]; lower mr_res")
    m = torch.ones(1, canvas, canvas)
    lo = (canvas - inner) // 2
    m[:, lo : lo + inner, lo : lo + inner] = 0
    return m


class ImageReprogrammer(nn.Module):
    def __init__(
        self,
        canvas: int = 224,
        image_res: int = 64,
        up_res: int = 224,
        mr_res: int = 192,
        dropout: float = 0.0,
        init_std: float = 1.0,
    ):
        super().__init__()
        if not 0 < image_res and 0 < up_res <= canvas:
            raise ShapeError(f"need 0 < image_res and 0 < up_res ≤ canvas ({canvas}); got {image_res}, {up_res}")
        self.canvas, self.image_res, self.up_res, self.mr_res = canvas, image_res, up_res, mr_res
        self.W = nn.Parameter(torch.randn(3, canvas, canvas) * init_std)
        self.register_buffer("mask", centre_mask(canvas, mr_res))
        self.dropout = nn.Dropout(dropout)

    def delta(self) -> Tensor:
        """δ = Dropout(M ⊙ tanh W) — 3×S×S; dropout is active only in training mode."""
        return self.dropout(self.mask * torch.tanh(self.W))

    def place(self, x: Tensor) -> Tensor:
        """resize → upsample → pad: the image in the canvas, before the perturbation."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ShapeError(f"images must be B×3×H×W in [0,1], got {tuple(x.shape)}")
        if x.shape[-1] != self.image_res or x.shape[-2] != self.image_res:
            x = F.interpolate(
                x, size=(self.image_res, self.image_res), mode="bilinear", antialias=True, align_corners=False
            )
        if self.up_res != self.image_res:
            x = F.interpolate(x, size=(self.up_res, self.up_res), mode="bilinear", align_corners=False)
        lo = (self.canvas - self.up_res) // 2
        hi = self.canvas - self.up_res - lo
        return F.pad(x, (lo, hi, lo, hi)).clamp(0, 1)

    def forward(self, x: Tensor) -> Tensor:
        """The reprogrammed image x̃ in [0,1] (clamped *before* the encoder's normalisation)."""
        return (self.place(x) + self.delta()).clamp(0, 1)

    def extra_repr(self) -> str:
        return (
            f"canvas={self.canvas}, image_res={self.image_res}, up_res={self.up_res}, mr_res={self.mr_res}, "
            f"dropout={self.dropout.p}"
        )
