"""One training loop for every method: seeded, resumable, NaN-safe, device-agnostic.

Schedule (official code, after WiSE-FT's ``cosine_lr``): for step t of T with w warm-up steps and base rate η₀,

    η(t) = η₀ · (t + 1) / w                                  if t < w
    η(t) = η₀ · ½ · (1 + cos(π · (t − w) / (T − w)))         otherwise

It is written as a pure function of t (rather than a stateful torch scheduler) so that a resumed run sets exactly
the rate an uninterrupted run would. Likewise the batch order of epoch e is a permutation drawn from
``seed·1_000_003 + e`` and the RNG is re-seeded from ``(seed, t)`` before step t, so resuming from a checkpoint
replays the same batches and the same dropout masks: the final tensors equal an uninterrupted run's (on CPU).

Precision: fp32 by default, as the official code (``model.float()``). ``amp=True`` is an opt-in bfloat16 autocast for
the encoder passes on CUDA; even then the reprogrammer's logits and loss are computed in fp32
(:func:`reprolab.reprogramming.losses.contrastive_loss` leaves autocast). On a tiny model one RP step under bf16
already moved the logits by up to ±0.42 at scale 100 and the frame gradient by ≈ 6 % (``docs/fidelity.md``), which
is why it is off unless asked for. The runner records ``amp`` in every result row.

A checkpoint holds the method's trainable tensors, the optimiser state (moments and step counts) and the
loop position — safetensors + JSON through :mod:`reprolab.checkpoint`, written atomically.

Under ``torchrun`` (:mod:`reprolab.distributed`) every process draws the same global batch and trains on its
contiguous share; the trainable gradients are averaged over the processes before each step, so the tensors follow
the single-process run's; rank 0 alone writes checkpoints.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from reprolab import distributed
from reprolab.checkpoint import checkpoint_exists, load_checkpoint, save_checkpoint
from reprolab.errors import ConfigError, NonFiniteLossError


@dataclass
class TrainConfig:
    steps: int | None = None  # total optimiser steps; if None, epochs × batches per epoch
    epochs: int = 5
    batch_size: int = 128
    warmup: int = 500
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    amp: bool = False  # opt-in bfloat16 autocast of the encoder passes, CUDA only (official: fp32)
    ckpt_every: int = 100
    progress: bool = True

    def total_steps(self, n: int) -> int:
        if self.batch_size < 1 or n < 1:
            raise ConfigError(f"batch_size={self.batch_size} and dataset size {n} must both be ≥ 1")
        return self.steps if self.steps else self.epochs * max(1, n // self.batch_size)


@dataclass
class History:
    steps: list = field(default_factory=list)  # one dict per logged step: step, loss, acc, lr
    seconds: float | None = None  # wall time of the training, where it was measured (course_fit records it)

    def as_frame(self):
        import pandas as pd

        return pd.DataFrame(self.steps)


def cosine_lr(base_lr: float, step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return base_lr * (step + 1) / warmup
    span = max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup, span) / span)) * base_lr


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"``: ``$REPROLAB_DEVICE`` when set, else CUDA when present, else the CPU.

    Apple's MPS backend is never picked by ``"auto"``: the kit's code paths were never run on it, so a Mac uses
    the CPU (and says so once) unless the user opts in with ``device="mps"`` or ``REPROLAB_DEVICE=mps``.
    """
    if name == "auto":
        name = os.environ.get("REPROLAB_DEVICE", "auto") or "auto"
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() and not _said["mps"]:
        _said["mps"] = True
        print(
            "[reprolab] device 'auto': using the CPU, not the Apple GPU (MPS), on which the kit was never tested; "
            "opt in with device='mps' or REPROLAB_DEVICE=mps"
        )
    return torch.device("cpu")


_said = {"mps": False}  # the MPS line is printed once per process


def build_optimizers(groups: list[dict]) -> list[torch.optim.Optimizer]:
    opts = []
    for g in groups:
        kind = g.get("optimizer", "adamw")
        kw = dict(
            lr=g["lr"],
            weight_decay=g.get("weight_decay", 0.0),
            betas=tuple(g.get("betas", (0.9, 0.999))),
            eps=g.get("eps", 1e-8),
        )
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(kind)
        if cls is None:
            raise ConfigError(f"optimizer {kind!r} unknown; use 'adam' or 'adamw'")
        opts.append(cls([p for p in g["params"] if p.requires_grad], **kw))
    return opts


def _optim_tensors(opts) -> tuple[dict, list]:
    tensors, meta = {}, []
    for i, o in enumerate(opts):
        sd = o.state_dict()
        for pid, st in sd["state"].items():
            for k, v in st.items():
                tensors[f"optim{i}.{pid}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
        meta.append([{k: v for k, v in g.items() if k != "params"} for g in sd["param_groups"]])
    return tensors, meta


def _load_optim(opts, tensors: dict, meta: list) -> None:
    for i, o in enumerate(opts):
        sd = o.state_dict()
        state: dict = {}
        for key, v in tensors.items():
            if key.startswith(f"optim{i}."):
                _, pid, name = key.split(".", 2)
                state.setdefault(int(pid), {})[name] = v
        for g, saved in zip(sd["param_groups"], meta[i]):
            g.update({k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items()})
        sd["state"] = state
        o.load_state_dict(sd)


def training_step(method, opts, images, labels, lr_wd: dict, amp: bool = False, where: str = ""):
    """One optimiser step: loss → NaN check → backward → step → ``method.post_step``. Returns (loss, preds)."""
    with torch.autocast(device_type=images.device.type, dtype=torch.bfloat16, enabled=amp):
        loss, preds = method.training_loss(images, labels)
    if not torch.isfinite(loss):
        raise NonFiniteLossError(
            f"{method.name}: loss became {loss.item()} {where}; lower the learning rate or disable AMP and resume"
        )
    for o in opts:
        o.zero_grad(set_to_none=True)
    loss.backward()
    distributed.average_gradients([p for o in opts for g in o.param_groups for p in g["params"]])  # torchrun only
    for o in opts:
        o.step()
    method.post_step(lr_wd)
    return loss, preds


def _batch(dataset, idx) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[int(i)] for i in idx]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


def fit(method, train_set, cfg: TrainConfig, out_dir=None, resume: bool = False, callback=None) -> History:
    """Train ``method`` on ``train_set``; checkpoints to ``out_dir`` (if given), resuming from it if asked.

    ``callback(step, method, record)`` is called after every step (notebooks use it to track accuracy);
    ``method.epoch_start(epoch, train_set)``, if the method has it, at the start of every epoch.
    Raises :class:`NonFiniteLossError` on a NaN/inf loss; the last good checkpoint in ``out_dir`` is kept.
    """
    device = pick_device(cfg.device)
    train_set = method.input_view(train_set) if hasattr(method, "input_view") else train_set  # Method.input_view
    method.to(device)
    groups = method.trainable_parameters()
    params = [p for g in groups for p in g["params"] if p.requires_grad]
    if not params:
        return History()
    opts = build_optimizers(groups)
    base_lrs = [[g["lr"] for g in o.param_groups] for o in opts]  # before a resume overwrites the current rates
    n = len(train_set)
    total = cfg.total_steps(n)
    per_epoch = max(1, n // cfg.batch_size)
    history, start = History(), 0
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is not None and checkpoint_exists(out):
        tensors, meta = load_checkpoint(out)
        method.load_trainable_state({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        _load_optim(opts, {k: v for k, v in tensors.items() if k.startswith("optim")}, meta["optim"])
        start, history = meta["step"], History(meta.get("history", []))

    def save(step):
        if out is None:
            return
        tensors = {f"model.{k}": v for k, v in method.trainable_state().items()}
        ot, om = _optim_tensors(opts)
        tensors.update(ot)
        save_checkpoint(
            out,
            tensors,
            dict(step=step, total=total, train=asdict(cfg), method=method.config(), optim=om, history=history.steps),
        )

    amp = cfg.amp and device.type == "cuda"
    perm_epoch, perm = -1, None
    bar = tqdm(range(start, total), desc=f"train {method.name}", disable=not cfg.progress, initial=start, total=total)
    method.train()
    for step in bar:
        epoch = step // per_epoch
        if epoch != perm_epoch:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
            perm_epoch = epoch
        b = step % per_epoch
        if b == 0 and hasattr(method, "epoch_start"):  # a true epoch start (not a resume in mid-epoch)
            method.epoch_start(epoch, train_set)
        idx = distributed.shard(perm[b * cfg.batch_size : (b + 1) * cfg.batch_size])  # torchrun: this rank's share
        images, labels = _batch(train_set, idx)
        images, labels = images.to(device), labels.to(device)
        lr_wd = {}
        for o, lrs in zip(opts, base_lrs):
            for g, lr0 in zip(o.param_groups, lrs):
                g["lr"] = cosine_lr(lr0, step, cfg.warmup, total)
                lr_wd.update({id(p): (g["lr"], g["weight_decay"]) for p in g["params"]})
        torch.manual_seed(cfg.seed * 1_000_003 + step)
        where = f"; last good checkpoint kept in {out}" if out is not None and checkpoint_exists(out) else ""
        loss, preds = training_step(method, opts, images, labels, lr_wd, amp, f"at step {step}{where}")
        rec = dict(
            step=step + 1,
            loss=float(loss.detach()),
            lr=opts[0].param_groups[0]["lr"],
            acc=float((preds == labels).float().mean()) if preds is not None else None,
            time=time.time(),
        )
        history.steps.append(rec)
        bar.set_postfix(loss=f"{rec['loss']:.3f}", acc=f"{rec['acc']:.2f}" if rec["acc"] is not None else "-")
        if callback is not None:
            callback(step + 1, method, rec)
        if out is not None and distributed.is_main() and ((step + 1) % cfg.ckpt_every == 0 or step + 1 == total):
            save(step + 1)
    method.eval()
    if out is not None and distributed.is_main():
        (out / "history.json").write_text(json.dumps(history.steps))
    distributed.barrier()  # torchrun: the other ranks go on once rank 0's checkpoint is on disk
    return history
