"""Data-parallel training and evaluation through ``torch.distributed`` (launched by ``torchrun``); a no-op otherwise.

``torchrun --nproc_per_node=N -m reprolab run CONFIG`` starts N copies of the same run; each is a *rank*. They
follow the same code path and make the same decisions, and differ only where this module says:

* **Training** (:func:`reprolab.training.fit`): every rank draws the same global batch of ``batch_size`` images and
  keeps its contiguous ``batch_size / N`` share (:func:`shard`); after ``backward`` the gradients of the trainable
  parameters are averaged over the ranks (:func:`average_gradients`: one all-reduce of one flat buffer — for the
  reprogrammer that is just W and the text deltas). For a loss that is a mean over images (cross-entropy: fine-tuning,
  probes, CoOp, visual prompts) the average of the shards' gradients *is* the global batch's gradient. The
  reprogrammer's loss is an *in-batch* image↔text loss (every image against every prompt of the batch), so its
  features are first gathered over the ranks with gradient (:func:`gather_with_grad`, as open_clip does for CLIP
  training): each rank then computes the global batch's loss, and averaging again gives its exact gradient.
  Not exact: BatchNorm statistics in trained layers (per shard; the stand-ins' frozen BatchNorm is unaffected)
  and dropout masks (drawn per shard) — the tiny open_clip and the reprogrammer have neither.
* **Evaluation** (:func:`reprolab.evaluation.features.extract`): each rank encodes a contiguous share of the batches
  and every rank receives the whole result (:func:`gather_shards`), so all ranks compute the same rows.
* **Writing**: only rank 0 (:func:`is_main`) writes checkpoints and result rows; the other ranks keep the rows in
  memory so that their resume decisions stay identical (:mod:`reprolab.experiment.executors`).

The backend is NCCL when CUDA is available and gloo on CPU. This is a low layer (next to :mod:`reprolab.checkpoint`):
it imports only :mod:`reprolab.errors`, and torch only when it is already in use (``reprolab report`` stays free of it).
"""

from __future__ import annotations

import functools
import os
import sys

from reprolab.errors import ConfigError


def _dist():
    """``torch.distributed`` when a process group is up, else None (without importing torch)."""
    dist = sys.modules.get("torch.distributed")
    return dist if dist is not None and dist.is_available() and dist.is_initialized() else None


def init_from_env() -> bool:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1); True when running data-parallel."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return True


def world_size() -> int:
    d = _dist()
    return d.get_world_size() if d else 1


def rank() -> int:
    d = _dist()
    return d.get_rank() if d else 0


def is_main() -> bool:
    """True on rank 0 (and in a plain single process): the one that writes files."""
    return rank() == 0


def barrier() -> None:
    d = _dist()
    if d:
        d.barrier()


def shard(batch):
    """This rank's contiguous share of a global batch (indices, or a tensor); ranks in order make up the batch."""
    n = world_size()
    if n == 1:
        return batch
    if len(batch) % n:
        raise ConfigError(
            f"batch_size {len(batch)} does not split evenly over {n} data-parallel processes; "
            f"use a batch size divisible by {n} (or --nproc_per_node dividing it)"
        )
    k = len(batch) // n
    return batch[rank() * k : (rank() + 1) * k]


def average_gradients(params) -> None:
    """Average the gradients of ``params`` over the ranks: one all-reduce of one flat buffer."""
    d = _dist()
    if not d or d.get_world_size() == 1:
        return
    import torch

    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:  # unused in this step on this rank: contributes zero
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    d.all_reduce(flat)
    flat /= d.get_world_size()
    i = 0
    for p in params:
        p.grad.copy_(flat[i : i + p.numel()].view_as(p.grad))
        i += p.numel()


def gather_with_grad(x):
    """``x`` of every rank concatenated in rank order; the backward pass sends each rank its slice's gradient.

    Every rank then holds the same global tensor, so a loss over it is the global batch's loss. Backward sums the
    gradient of every rank's (identical) loss for this rank's slice — N times its share, which
    :func:`average_gradients` divides back. Written here (twelve lines) rather than taken from
    ``torch.distributed.nn``, whose version is deprecated and whose replacement is private.
    """
    if world_size() == 1:
        return x
    return _gather_function().apply(x)


@functools.cache
def _gather_function():
    import torch

    class GatherWithGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            parts = [torch.empty_like(x) for _ in range(world_size())]
            _dist().all_gather(parts, x.contiguous())
            return torch.cat(parts)

        @staticmethod
        def backward(ctx, grad):
            grad = grad.contiguous()
            _dist().all_reduce(grad)
            return local_rows(grad)

    return GatherWithGrad


def gather_plain(x):
    """``x`` (e.g. labels) of every rank concatenated in rank order, without gradient."""
    d = _dist()
    if not d or d.get_world_size() == 1:
        return x
    import torch

    parts = [torch.empty_like(x) for _ in range(d.get_world_size())]
    d.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def local_rows(x):
    """This rank's rows of a gathered global-batch tensor (the inverse of :func:`gather_plain`)."""
    n = world_size()
    if n == 1:
        return x
    k = len(x) // n
    return x[rank() * k : (rank() + 1) * k]


def shard_range(n_items: int) -> range:
    """The contiguous block of ``range(n_items)`` (e.g. batch numbers) that this rank evaluates."""
    n, r = world_size(), rank()
    return range(n_items * r // n, n_items * (r + 1) // n)


def gather_shards(part: dict) -> dict:
    """``{name: Tensor}`` of every rank's evaluation shard, concatenated in rank order (on every rank)."""
    d = _dist()
    if not d or d.get_world_size() == 1:
        return part
    import torch

    parts = [None] * d.get_world_size()
    d.all_gather_object(parts, {k: v.cpu() for k, v in part.items()})  # in-memory exchange, never written
    parts = [p for p in parts if p]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
