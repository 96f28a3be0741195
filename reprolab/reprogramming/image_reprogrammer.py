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

How ``resize_r`` and ``up_u`` resample (``resize=``):

* ``"official"`` (``configs/paper/``): as the official code, per image through PIL — torchvision's
  ``to_pil_image`` (×255, truncated to uint8), ``Resize(r, bicubic)`` + ``CenterCrop(r)``, ``to_tensor`` (the
  official data loader, so a uint8 round trip), then again ``to_pil_image``, ``Resize(u, bicubic)`` +
  ``CenterCrop(u)``, ``to_tensor`` (the official ``preprocess``) before padding. PIL is needed because torch's
  bicubic kernel differs from PIL's (up to 6 grey levels here). Not differentiable with respect to x (only W is
  learned) and runs on the CPU.
* ``"bilinear"`` (the kit's default): ``F.interpolate`` bilinear (antialiased when shrinking) for both steps, on
  the images' device, differentiable. On real photos the two paths differ by ≈ 0.01 per pixel on average
  (``docs/fidelity.md``).

Mask geometry for an odd ``mr_res``: the hole is exactly ``mr_res``×``mr_res`` here; the official
``build_reprogramming_mask`` cuts ``[112 − mr//2, 112 + mr//2)``, a (mr − 1)² hole. The kit keeps mr² because the
parameter then means what it says; every official setting (192) is even, where the two agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch import Tensor, nn
from torchvision.transforms import InterpolationMode

from reprolab.errors import ShapeError

RESIZES = ("official", "bilinear")


def centre_mask(canvas: int, inner: int) -> Tensor:
    """M: 1×S×S float mask, 0 inside the centred ``inner``×``inner`` square, 1 outside."""
    if not 0 <= inner <= canvas:
        raise ShapeError(f"mr_res={inner} must lie in [0, canvas={canvas}]; lower mr_res")
    m = torch.ones(1, canvas, canvas)
    lo = (canvas - inner) // 2
    m[:, lo : lo + inner, lo : lo + inner] = 0
    return m


def pil_bicubic(x: Tensor, size: int) -> Tensor:
    """Per image: uint8 PIL image → ``Resize(size, bicubic)`` (shorter side) → ``CenterCrop(size)`` → [0,1] floats.

    The official code's resize step. Pixels come back as k/255 on ``x``'s device; no gradient flows to ``x``."""
    out = []
    for im in x.detach().clamp(0, 1).cpu():
        pil = TF.center_crop(TF.resize(TF.to_pil_image(im), size, InterpolationMode.BICUBIC), size)
        out.append(TF.to_tensor(pil))
    return torch.stack(out).to(x.device)


def bilinear(x: Tensor, size: int, antialias: bool) -> Tensor:
    """The kit's resize step: bilinear, differentiable, on ``x``'s device (the input's first resize is
    antialiased, the upsampling is not — kept exactly as the kit's earlier runs did it)."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=antialias, align_corners=False)


class ImageReprogrammer(nn.Module):
    def __init__(
        self,
        canvas: int = 224,
        image_res: int = 64,
        up_res: int = 224,
        mr_res: int = 192,
        dropout: float = 0.0,
        init_std: float = 1.0,
        resize: str = "bilinear",
    ):
        super().__init__()
        if not (0 < image_res and 0 < up_res <= canvas):
            raise ShapeError(f"need 0 < image_res and 0 < up_res ≤ canvas ({canvas}); got {image_res}, {up_res}")
        if resize not in RESIZES:
            raise ShapeError(f"resize={resize!r}; use 'official' (PIL bicubic, as the official code) or 'bilinear'")
        self.canvas, self.image_res, self.up_res, self.mr_res = canvas, image_res, up_res, mr_res
        self.resize = resize
        self.W = nn.Parameter(torch.randn(3, canvas, canvas) * init_std)
        self.register_buffer("mask", centre_mask(canvas, mr_res))
        self.dropout = nn.Dropout(dropout)

    def delta(self) -> Tensor:
        """δ = Dropout(M ⊙ tanh W) — 3×S×S; dropout is active only in training mode."""
        return self.dropout(self.mask * torch.tanh(self.W))

    def resample(self, x: Tensor, size: int, first: bool = False) -> Tensor:
        """One resize step with this reprogrammer's kernel (``resize``); ``first``: the step from the input."""
        return pil_bicubic(x, size) if self.resize == "official" else bilinear(x, size, antialias=first)

    def reduce(self, x: Tensor) -> Tensor:
        """resize_r: the image at ``image_res`` (the official data loader's output)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ShapeError(f"images must be B×3×H×W in [0,1], got {tuple(x.shape)}")
        return self.resample(x, self.image_res, first=True)

    def place(self, x: Tensor) -> Tensor:
        """resize → upsample → pad: the image in the canvas, before the perturbation."""
        x = self.resample(self.reduce(x), self.up_res)
        lo = (self.canvas - self.up_res) // 2
        hi = self.canvas - self.up_res - lo
        return F.pad(x, (lo, hi, lo, hi)).clamp(0, 1)

    def zero_shot_view(self, x: Tensor) -> Tensor:
        """The reduced image upsampled to the whole canvas, no frame: what the official Residual Reprogrammer's
        zero-shot branch encodes (CLIP's own preprocess applied to the loader's ``image_res`` image)."""
        return self.resample(self.reduce(x), self.canvas).clamp(0, 1)

    def forward(self, x: Tensor) -> Tensor:
        """The reprogrammed image x̃ in [0,1] (clamped *before* the encoder's normalisation)."""
        return (self.place(x) + self.delta()).clamp(0, 1)

    def extra_repr(self) -> str:
        return (
            f"canvas={self.canvas}, image_res={self.image_res}, up_res={self.up_res}, mr_res={self.mr_res}, "
            f"dropout={self.dropout.p}, resize={self.resize!r}"
        )
