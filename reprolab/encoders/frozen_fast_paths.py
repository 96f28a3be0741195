"""Make "gradient to the input, none to the weights" as cheap as it should be (open_clip towers, the stand-in).

Reprogramming (paper §3) trains only the input side — the image frame δ and the token/positional tables — so every
step back-propagates through the *frozen* encoder to its input. That should cost less than fine-tuning (no weight
gradients, no optimiser over 88 M parameters), but three PyTorch CPU paths made it cost more (ViT-B-32: 1.79× a
fine-tuning step), found with ``torch.profiler`` (ViT-B-32 batch 8, stand-in batch 32, 2 threads); the step-cost
figures are in ``reprolab bench``:

1. **Attention in-projection.** ``nn.MultiheadAttention(batch_first=True)`` transposes its input to (L, B, D) before
   ``F.linear``. With a non-contiguous 3-D input and a weight that does *not* require grad, ``torch.matmul`` does not
   fold the batch into one matrix product and runs ``bmm`` against an expanded weight, forward and backward
   (≈ 16 ms per call vs ≈ 6 ms for the folded ``mm``). Fine-tuning never sees this: a weight that requires grad makes
   matmul copy and fold. Fix: a forward pre-hook hands the attention a tensor with the same values whose memory is
   already (L, B, D), so its transpose is contiguous and the product folds. Only when the input requires grad; the
   inference path (and its fused fast path) is untouched.
2. **Patch embedding.** The ViT stem is a convolution with kernel = stride = patch. Its input gradient is computed as
   a transposed convolution (≈ 95 ms vs 12 ms forward). The same map written as "cut into patches, one matrix
   product" has a plain ``mm`` as its input gradient. Fix: such convolutions switch class to :class:`PatchConv2d`,
   which takes the matrix-product route only when the input requires grad and the weight does not (parameters,
   state-dict keys and checkpoints unchanged).
3. **Frozen BatchNorm** (the stand-in's EfficientNet). In eval mode with frozen statistics and affine weights, a
   BatchNorm is a per-channel ``x·s + t``; ``F.batch_norm``'s backward still runs its general kernel (≈ 80 ms of a
   ≈ 430 ms reprogramming step at batch 32, 128 px). Fix: such layers switch to a subclass that computes
   ``addcmul(t, x, s)`` when the input needs a gradient and nothing else does (timm's fused BatchNormAct2d keeps
   its activation). Fine-tuning, which trains the affine weights, keeps the original path.

Neither torch, open_clip nor timm offers a switch for these, hence the hand-written code; all three are exact
rewrites of the same arithmetic (tests compare values and gradients with the plain modules).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _relayout_attention_input(module: nn.MultiheadAttention, args, kwargs):
    if not (module.batch_first and len(args) == 3 and args[0] is args[1] is args[2]):
        return None
    x = args[0]
    if not (torch.is_grad_enabled() and x.requires_grad and x.dim() == 3):
        return None
    x = x.transpose(0, 1).contiguous().transpose(0, 1)  # same values, memory laid out (L, B, D)
    return (x, x, x), kwargs


class PatchConv2d(nn.Conv2d):
    """A kernel = stride, unpadded convolution; with a frozen weight and an input that needs a gradient it runs as
    patches @ Wᵀ, whose input gradient is a plain matrix product."""

    def forward(self, x: Tensor) -> Tensor:
        if not (torch.is_grad_enabled() and x.requires_grad and not self.weight.requires_grad):
            return super().forward(x)
        (ph, pw), out_ch = self.kernel_size, self.out_channels
        B, C, H, W = x.shape
        gh, gw = H // ph, W // pw
        x = x[..., : gh * ph, : gw * pw]  # a strided convolution ignores the remainder too
        patches = x.reshape(B, C, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5).reshape(B, gh * gw, C * ph * pw)
        out = patches @ self.weight.reshape(out_ch, -1).t()
        if self.bias is not None:
            out = out + self.bias
        return out.transpose(1, 2).reshape(B, out_ch, gh, gw)


class FrozenAffineNorm:
    """Mixin placed in front of a BatchNorm class: eval mode, frozen weights, input needs grad → ``x·s + t``."""

    def forward(self, x: Tensor) -> Tensor:
        frozen = not any(p is not None and p.requires_grad for p in (self.weight, self.bias))
        if not (
            torch.is_grad_enabled()
            and x.requires_grad
            and frozen
            and not self.training
            and self.running_var is not None
            and x.dim() == 4
        ):
            return super().forward(x)
        scale = torch.rsqrt(self.running_var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        shift = -self.running_mean * scale
        if self.bias is not None:
            shift = shift + self.bias
        y = torch.addcmul(shift.view(1, -1, 1, 1), x, scale.view(1, -1, 1, 1))
        return self.act(self.drop(y)) if hasattr(self, "act") else y  # timm's BatchNormAct2d: norm → drop → act


_NORM_CLASSES: dict[type, type] = {}


def _frozen_affine_class(cls: type) -> type:
    if cls not in _NORM_CLASSES:
        _NORM_CLASSES[cls] = type(f"FrozenAffine{cls.__name__}", (FrozenAffineNorm, cls), {})
    return _NORM_CLASSES[cls]


def _is_patch_conv(m: nn.Module) -> bool:
    return (
        type(m) is nn.Conv2d
        and m.kernel_size == m.stride
        and m.padding == (0, 0)
        and m.dilation == (1, 1)
        and m.groups == 1
        and m.padding_mode == "zeros"
    )


def use_frozen_fast_paths(model: nn.Module) -> dict:
    """Install the fixes on every matching submodule of ``model`` (idempotent); returns how many of each."""
    n_attn = n_conv = n_norm = 0
    for m in model.modules():
        if isinstance(m, nn.MultiheadAttention) and not getattr(m, "_reprolab_relayout", False):
            m.register_forward_pre_hook(_relayout_attention_input, with_kwargs=True)
            m._reprolab_relayout = True
            n_attn += 1
        elif _is_patch_conv(m):
            m.__class__ = PatchConv2d
            n_conv += 1
        elif isinstance(m, nn.BatchNorm2d) and not isinstance(m, FrozenAffineNorm):
            m.__class__ = _frozen_affine_class(type(m))
            n_norm += 1
    return {"attention": n_attn, "patch_conv": n_conv, "batchnorm": n_norm}
