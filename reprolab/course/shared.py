"""What the notebooks share on disk: run folders and feature caches keyed by the encoder, and a teacher's
precomputed training runs (``reprolab precompute``).

* :func:`runs_root` — ``$REPROLAB_RUNS``, else ``<repo>/runs``; with ``$REPROLAB_PRECOMPUTED=DIR``, ``DIR/runs``.
* :func:`course_cache` — one :class:`~reprolab.evaluation.features.FeatureCache` per encoder
  (``<root>/cache/<encoder id>``), shared by every notebook: frozen features of a set are computed once for the
  whole course, and a switch of encoder (stand-in, then CLIP) starts a fresh folder instead of mixing.
* :func:`course_fit` — train once, reuse: :func:`reprolab.training.fit`, then the finished run's trained tensors,
  loss history and tracked test accuracies are saved in :func:`checkpoints_root` under a slot keyed by what fixes
  the result (method config with the encoder, training set, schedule — not the notebook). The next notebook that
  trains the same method with the same settings loads it in seconds and says so (``retrain=True`` trains again and
  overwrites); other settings are another slot, trained. A teacher's ``reprolab precompute`` fills
  ``$REPROLAB_PRECOMPUTED`` the same way.
* :class:`FeatureAccuracyTracker` — the ``fit`` callback of :class:`~reprolab.course.plots.AccuracyTracker`, on
  cached frozen image features: for methods whose image side is the frozen encoder (zero-shot, text-only RP).
"""

from __future__ import annotations

import json
import os
import time
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


def checkpoints_root() -> Path:
    """Where :func:`course_fit` keeps trained runs: ``DIR/checkpoints`` under ``$REPROLAB_PRECOMPUTED=DIR``, else
    ``runs_root()/checkpoints`` (``$REPROLAB_RUNS``, else ``<repo>/runs``)."""
    return (precomputed_dir() or runs_root()) / "checkpoints"


def course_slot(method, train_set, cfg) -> Path:
    """The folder of this exact training run: method name, encoder, :func:`training_id` (never the notebook)."""
    return checkpoints_root() / f"{method.name}-{encoder_slug(method.encoder.id)}-{training_id(method, train_set, cfg)}"


def _finished(slot: Path, total: int, callback) -> tuple[dict, dict] | None:
    """The slot's tensors and meta when it holds a finished run (and the tracked records ``callback`` wants)."""
    from reprolab.checkpoint import checkpoint_exists, load_checkpoint

    if not checkpoint_exists(slot):
        return None
    try:
        tensors, meta = load_checkpoint(slot)
    except ReprolabError as exc:  # half-written or corrupt: say so, train again, overwrite
        print(f"[reprolab] {exc}; training again")
        return None
    if meta.get("total") != total or meta.get("step", 0) < total:
        return None  # an interrupted run is not a finished one
    if callback is not None and hasattr(callback, "records") and not (slot / "tracker.json").exists():
        return None  # trained without the tracked curve this cell draws
    return tensors, meta


def course_fit(method, train_set, cfg, name: str, callback=None, retrain: bool = False):
    """``fit(method, train_set, cfg, callback=callback)`` once per training run, then its checkpoint (module docstring).

    The run's slot (:func:`course_slot`) is keyed by what fixes the result — method config with the encoder,
    training set, schedule — so a later notebook that trains the same method with the same settings loads it in
    seconds and says so. ``name``: a readable label of the cell (e.g. ``"nb04-rp"``), printed and recorded, not part
    of the key. ``retrain=True`` trains and overwrites the slot. The returned history's ``seconds`` is the
    training's wall time, also when loaded (as measured where it was trained). A training set without a ``key``
    attribute cannot be told from another one: it is trained and not saved.
    """
    from reprolab.checkpoint import save_checkpoint
    from reprolab.training import History, fit

    if getattr(train_set, "key", None) is None:  # nothing names the set: another one could take its slot
        print(f"[reprolab] {name}: the training set has no .key, so this run is trained here and not saved")
        return fit(method, train_set, cfg, callback=callback)
    slot, total = course_slot(method, train_set, cfg), cfg.total_steps(len(train_set))
    found = None if retrain else _finished(slot, total, callback)
    if found is not None:
        tensors, meta = found
        method.load_trainable_state({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        method.eval()
        if callback is not None and hasattr(callback, "records"):
            callback.records[:] = json.loads((slot / "tracker.json").read_text())
        by = meta.get("label", "?")
        where = (
            "precomputed" if precomputed_dir() else "trained by an earlier notebook" if by != name else "saved earlier"
        )
        print(
            f"[reprolab] {name}: loaded the {method.name} {where} ({by}, {meta['step']} steps) from {slot}; "
            "retrain=True to train again"
        )
        return History(meta.get("history", []), meta.get("seconds"))
    t0 = time.perf_counter()
    history = fit(method, train_set, cfg, callback=callback)
    history.seconds = round(time.perf_counter() - t0, 3)  # ms: a tiny test run takes a few hundredths
    tensors = {f"model.{k}": v for k, v in method.trainable_state().items()}  # no optimiser moments: a third the size
    try:  # the tracked curve first: a checkpoint's JSON (written last) means everything is there
        slot.mkdir(parents=True, exist_ok=True)
        if callback is not None and hasattr(callback, "records"):
            (slot / "tracker.json").write_text(json.dumps(callback.records))
        else:
            (slot / "tracker.json").unlink(missing_ok=True)  # a retrained run's old curve is not this run's
        save_checkpoint(
            slot,
            tensors,
            dict(
                step=total,
                total=total,
                label=name,
                seconds=history.seconds,
                method=method.config(),
                history=history.steps,
            ),
        )
    except OSError as exc:  # e.g. a read-only shared folder: the trained model is still here
        print(f"[reprolab] {name}: trained here, not saved ({exc}); set REPROLAB_RUNS to a writable folder")
        return history
    print(f"[reprolab] {name}: trained here and saved to {slot}; later notebooks with the same settings load it")
    return history


class FeatureAccuracyTracker(AccuracyTracker):
    """:class:`~reprolab.course.plots.AccuracyTracker` measured from the frozen encoder's cached image features (no
    image pass): valid for methods whose image features *are* the frozen ones — zero-shot and the text-only
    reprogrammer. Recording (``evaluate``, ``frame``), remembering (``accuracy``) and the ``fit`` callback are the
    parent's."""

    def __init__(self, encoder, test_set, every: int = 10, cache=None, batch_size: int = 128):
        out = frozen_image_features(encoder, test_set, cache, batch_size, progress=False)
        self.features, self.labels, self.every, self.records = out["image_features"], out["labels"], every, []
        self._known = {}  # accuracies already measured (AccuracyTracker.accuracy)

    @torch.no_grad()
    def measure(self, method) -> float:
        if getattr(method, "mode", "text") != "text":
            raise ReprolabError(
                "FeatureAccuracyTracker needs a method whose image side is frozen (zero-shot, text-only RP); "
                "use plots.AccuracyTracker for a method with a learned frame"
            )
        text = method.text_features().detach().cpu()
        return accuracy(method.encoder.logit_scale * self.features @ text.t(), self.labels)
