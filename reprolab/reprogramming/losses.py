"""The reprogramming objective (paper §3.3; official ``reprogramming.py``).

For a batch of B images with class labels y_i, the text side of the batch is the B prompts
"a photo of a {class(y_i)}". With L2-normalised features and the fixed logit scale s = 100 (T = 0.01):

    S = s · F_I F_Tᵀ                                     (B×B; S_ij compares image i with prompt j)
    L = ½ [ ℓ(S, diag) + ℓ(Sᵀ, diag) ]                   (symmetric in-batch image↔text loss)

where ℓ is the focal loss (Lin et al., 2017) applied to each row's softmax, with the official α = 0.8, γ = 4:

    p_t = softmax(S_i)_i ,   ℓ = mean_i  α (1 − p_t)^γ · (−log p_t)

or plain cross-entropy (``kind="ce"``). The official ``utils/focal_loss.py`` (after kornia) weights every class of the
row against ``one_hot + ε`` with ε = 1e-7 *added to every class*, a tiny label smoothing of ε·C: the kit keeps the
target-class term only. The losses differ by a relative 8e-7 … 3e-4 (with ε = 0: ≤ 3.6e-7); the ε term matters only
for the gradient once p_t → 1 (a well-fit batch: official loss 5.3e-4 vs 0, gradient norm 9e-7 vs 8e-12).

S and the loss are computed in fp32 even inside an AMP autocast region (bf16 logits at scale 100 are off by up to
±0.4). As in the official code, two images of the same class in one batch are
treated as negatives of each other's prompt (the in-batch contrastive loss has no notion of duplicates).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from reprolab.errors import ReprolabError


def focal_loss(logits: Tensor, target: Tensor, alpha: float = 0.8, gamma: float = 4.0) -> Tensor:
    """Mean focal loss α(1−p_t)^γ·CE over the rows of ``logits`` (torchvision's sigmoid focal loss is binary)."""
    ce = F.cross_entropy(logits, target, reduction="none")
    p_t = torch.exp(-ce)
    return (alpha * (1.0 - p_t) ** gamma * ce).mean()


def classification_loss(
    logits: Tensor, target: Tensor, kind: str = "focal", alpha: float = 0.8, gamma: float = 4.0
) -> Tensor:
    if kind == "focal":
        return focal_loss(logits, target, alpha, gamma)
    if kind == "ce":
        return F.cross_entropy(logits, target)
    raise ReprolabError(f"unknown loss {kind!r}; use 'focal' (paper) or 'ce'")


def contrastive_loss(
    image_features: Tensor,
    text_features: Tensor,
    logit_scale: float = 100.0,
    kind: str = "focal",
    alpha: float = 0.8,
    gamma: float = 4.0,
) -> tuple[Tensor, Tensor]:
    """Symmetric in-batch loss; returns ``(loss, S)`` with ``S`` the B×B image→text logits."""
    if image_features.shape != text_features.shape:
        raise ReprolabError(
            f"image and text features must pair up one to one, got {tuple(image_features.shape)} "
            f"and {tuple(text_features.shape)}; pass one prompt per image"
        )
    with torch.autocast(device_type=image_features.device.type, enabled=False):  # fp32 logits and loss under AMP
        s = logit_scale * image_features.float() @ text_features.float().t()
        gt = torch.arange(s.shape[0], device=s.device)
        loss = 0.5 * (
            classification_loss(s, gt, kind, alpha, gamma) + classification_loss(s.t(), gt, kind, alpha, gamma)
        )
    return loss, s
