"""What the notebooks share on disk: run folders and feature caches keyed by the encoder, and a teacher's
precomputed training runs (``reprolab precompute``).

* :func:`runs_root` — ``$REPROLAB_RUNS``, else ``<repo>/runs``; with ``$REPROLAB_PRECOMPUTED=DIR``, ``DIR/runs``.
* :func:`course_cache` — one :class:`~reprolab.evaluation.features.FeatureCache` per encoder
  (``<root>/cache/<encoder id>``), shared by every notebook: frozen features of a set are computed once for the
  whole course, and a switch of encoder (stand-in, then CLIP) starts a fresh folder instead of mixing.
* :func:`course_fit` — :func:`reprolab.training.fit`, or, when ``$REPROLAB_PRECOMPUTED`` names a folder holding
  this exact training run (same method config, encoder, training set and schedule), its finished checkpoint —
  loaded in seconds, with the loss history and the tracked test accuracies of the original run. It says which.
  A run that is not there is trained and saved there (that is how ``reprolab precompute`` fills the folder).
* :class:`FeatureAccuracyTracker` — the ``fit`` callback of :class:`~reprolab.course.plots.AccuracyTracker`, on
  cached frozen image features: for methods whose image side is the frozen encoder (zero-shot, text-only RP).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from reprolab.course.plots import AccuracyTracker
from reprolab.errors import ReprolabError
from reprolab.evaluation.features import FeatureCache, key_hash
from reprolab.evaluation.frozen import frozen_image_features
from reprolab.evaluation.metrics import accuracy
from reprolab.experiment.run_folder import encoder_slug

PRECOMPUTED = "REPROLAB_PRECOMPUTED"
NOT_HASHED = ("progress", "device", "ckpt_every")  # training options that do not change the trained tensors


def repo_root() -> Path:
    """The checkout the notebook runs in (the first folder up from here with ``configs/``), else the cwd."""
    here = Path.cwd().resolve()
    return next((p for p in [here, *here.parents] if (p / "configs").is_dir()), here)


def precomputed_dir() -> Path | None:
    d = os.environ.get(PRECOMPUTED, "").strip()
    return Path(d).expanduser().resolve() if d else None


def runs_root() -> Path:
    pre = precomputed_dir()
    if pre is not None:
        return pre / "runs"
    return Path(os.environ.get("REPROLAB_RUNS") or repo_root() / "runs")


def course_cache(encoder) -> FeatureCache:
    """The course's feature cache for ``encoder`` (under the precomputed folder when one is set)."""
    base = precomputed_dir() or runs_root()
    return FeatureCache(base / "cache" / encoder_slug(encoder.id))


def training_id(method, train_set, cfg) -> str:
    """Hash of what fixes a training run's result: method config (incl. encoder), training set, schedule."""
    schedule = {k: v for k, v in asdict(cfg).items() if k not in NOT_HASHED}
    return key_hash(dict(method=method.config(), train=getattr(train_set, "key", None), schedule=schedule))[:12]


def course_fit(method, train_set, cfg, name: str, callback=None, retrain: bool = False):
    """``fit(method, train_set, cfg, callback=callback)``, or the precomputed run's checkpoint (module docstring).

    ``name``: a readable label of the run (e.g. ``"nb03-rp"``); ``retrain=True`` trains here even when a
    precomputed run exists (and does not overwrite it).
    """
    from reprolab.checkpoint import checkpoint_exists, load_checkpoint, save_checkpoint
    from reprolab.training import History, fit

    pre = precomputed_dir()
    if pre is None:
        return fit(method, train_set, cfg, callback=callback)
    slot = pre / "checkpoints" / f"{name}-{encoder_slug(method.encoder.id)}-{training_id(method, train_set, cfg)}"
    if not retrain and checkpoint_exists(slot):
        tensors, meta = load_checkpoint(slot)
        if meta.get("step", 0) >= meta.get("total", 1):
            method.load_trainable_state({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            method.eval()
            records = slot / "tracker.json"
            if callback is not None and hasattr(callback, "records") and records.exists():
                callback.records[:] = json.loads(records.read_text())
            print(
                f"[reprolab] {name}: loaded the trained weights precomputed in {slot} ({meta['step']} steps); "
                "pass retrain=True (or unset REPROLAB_PRECOMPUTED) to train here instead"
            )
            return History(meta.get("history", []))
    if retrain:
        return fit(method, train_set, cfg, callback=callback)
    history = fit(method, train_set, cfg, callback=callback)
    total = cfg.total_steps(len(train_set))  # trained tensors only (no optimiser moments: a third of the size)
    tensors = {f"model.{k}": v for k, v in method.trainable_state().items()}
    save_checkpoint(slot, tensors, dict(step=total, total=total, method=method.config(), history=history.steps))
    if callback is not None and hasattr(callback, "records"):
        (slot / "tracker.json").write_text(json.dumps(callback.records))
    print(f"[reprolab] {name}: trained here and saved to {slot} for the next run")
    return history


class FeatureAccuracyTracker(AccuracyTracker):
    """:class:`~reprolab.course.plots.AccuracyTracker` measured from the frozen encoder's cached image features (no
    image pass): valid for methods whose image features *are* the frozen ones — zero-shot and the text-only
    reprogrammer. Recording (``evaluate``, ``frame``) and the ``fit`` callback are the parent's."""

    def __init__(self, encoder, test_set, every: int = 10, cache=None, batch_size: int = 128):
        out = frozen_image_features(encoder, test_set, cache, batch_size, progress=False)
        self.features, self.labels, self.every, self.records = out["image_features"], out["labels"], every, []

    @torch.no_grad()
    def accuracy(self, method) -> float:
        if getattr(method, "mode", "text") != "text":
            raise ReprolabError(
                "FeatureAccuracyTracker needs a method whose image side is frozen (zero-shot, text-only RP); "
                "use plots.AccuracyTracker for a method with a learned frame"
            )
        text = method.text_features().detach().cpu()
        return accuracy(method.encoder.logit_scale * self.features @ text.t(), self.labels)
