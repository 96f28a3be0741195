"""Label mapping: from a frozen classifier's K source logits (K = 1000 ImageNet classes) to C target classes.

Reprogramming a *plain classifier* (no text tower) needs a map from the classes it knows to the classes of the new
task. With z(x̃) ∈ R^K the source logits of the reprogrammed image x̃ and a map m: {1..C} → {1..K},

    ŷ(x) = softmax_c( z_{m(c)}(x̃) )                     (one source class per target class, one-to-one)

and the five ways to get m (or to replace it):

* **random (RLM)** — m = the first C entries of a seeded random permutation of {1..K} (Elsayed et al., 2019,
  adversarial reprogramming, used a fixed arbitrary map).
* **frequency (FLM)** — Tsai et al., 2020 (BAR); one-to-one as in ILM-VP (Chen et al., CVPR 2023). On the
  training set, with the frame as it is, count the joint frequency matrix

      F_{k,c} = #{ i : argmax z(x̃_i) = k  and  y_i = c }                                     (K × C)

  then pick greedily: take the largest entry (k*, c*), set m(c*) = k*, delete row k* and column c*, repeat C
  times. Each target class gets the source class it is most often predicted as, and no two target classes share one.
* **iterative (ILM)** — ILM-VP: FLM redone at the start of *every* epoch with the current frame, so the map
  follows the frame as it learns (the same function, called again; :class:`~reprolab.methods.VisualReprogrammer`
  calls it from the training loop's epoch hook).
* **semantic** — source and target class *names* embedded by a sentence encoder (the kit's MiniLM), cosine
  similarity S_{k,c} = ⟨e_k, e_c⟩ / (‖e_k‖ ‖e_c‖), and the same greedy one-to-one pick on S instead of F
  (AutoVP's semantic mapping uses CLIP's text tower; here a sentence encoder plays that part). Uses no images.
* **full** — AutoVP (Tsao et al., ICLR 2024): a learned linear map of all K logits, ŷ = softmax(W z(x̃) + b),
  W ∈ R^{C×K}; it is an ``nn.Linear`` trained with the frame (it lives in the method, not here).

Ties in the greedy pick go to the smallest flat index (source-major), so every map is deterministic. These are
pure functions on tensors: logits, labels and embeddings in, a LongTensor map [C] of source indices out.
"""

from __future__ import annotations

import torch
from torch import Tensor

from reprolab.errors import ReprolabError, ShapeError


def greedy_one_to_one(score: Tensor) -> Tensor:
    """m [C]: repeatedly take the largest entry (k, c) of ``score`` (K × C), set m(c) = k, drop row k and column c."""
    if score.ndim != 2 or score.shape[0] < score.shape[1]:
        raise ShapeError(f"score must be K×C with K ≥ C (source × target), got {tuple(score.shape)}")
    s = score.detach().double().clone()
    K, C = s.shape
    m = torch.full((C,), -1, dtype=torch.long)
    for _ in range(C):
        flat = int(torch.argmax(s))  # first maximum in row-major order: deterministic ties
        k, c = divmod(flat, C)
        m[c] = k
        s[k, :] = float("-inf")
        s[:, c] = float("-inf")
    return m


def random_mapping(n_source: int, n_target: int, seed: int = 0) -> Tensor:
    """RLM: C distinct source classes, drawn from a generator seeded with ``seed`` (reproducible)."""
    if not 0 < n_target <= n_source:
        raise ShapeError(f"need 0 < n_target ≤ n_source, got {n_target} and {n_source}")
    return torch.randperm(n_source, generator=torch.Generator().manual_seed(seed))[:n_target]


def frequency_matrix(source_logits: Tensor, labels: Tensor, n_target: int) -> Tensor:
    """F [K × C]: how often images of target class c are predicted as source class k."""
    if source_logits.ndim != 2 or labels.shape != source_logits.shape[:1]:
        raise ShapeError(f"need logits N×K and labels N, got {tuple(source_logits.shape)} and {tuple(labels.shape)}")
    K = source_logits.shape[1]
    pred = source_logits.argmax(dim=1).cpu()
    F = torch.zeros(K * n_target, dtype=torch.float64)
    F.index_add_(0, pred * n_target + labels.long().cpu(), torch.ones(len(pred), dtype=torch.float64))
    return F.view(K, n_target)


def frequency_mapping(source_logits: Tensor, labels: Tensor, n_target: int) -> Tensor:
    """FLM (and each step of ILM): greedy one-to-one on the frequency matrix :func:`frequency_matrix`."""
    return greedy_one_to_one(frequency_matrix(source_logits, labels, n_target))


def semantic_mapping(source_embeddings: Tensor, target_embeddings: Tensor) -> Tensor:
    """Greedy one-to-one on the cosine similarity of source (K × D) and target (C × D) name embeddings."""
    a = torch.nn.functional.normalize(source_embeddings.double(), dim=-1)
    b = torch.nn.functional.normalize(target_embeddings.double(), dim=-1)
    return greedy_one_to_one(a @ b.t())


def apply_mapping(source_logits: Tensor, mapping: Tensor) -> Tensor:
    """Target logits [N × C] = the source logits of each target class's source class."""
    if (mapping < 0).any():
        raise ReprolabError(
            "the label map is not computed yet (entries of −1); train the method with fit() or call remap(train_set)"
        )
    return source_logits[:, mapping.to(source_logits.device)]
