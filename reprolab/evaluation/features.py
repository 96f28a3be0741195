"""Feature extraction over a dataset, with an on-disk cache keyed by everything that changes the numbers.

:func:`extract` runs ``fn(images) -> {name: Tensor[B, ...]}`` over a dataset in order (no shuffling), with gradients
off and a ``tqdm.auto`` progress bar, and returns the concatenated tensors plus ``"labels"``. Batches come
straight from a preloaded tensor when the dataset has one (``dataset.images`` or a ``TensorDataset``), otherwise
from a DataLoader (``num_workers=0``; collation = ``torch.stack``), so the kit adds no per-image overhead beyond
the dataset's own ``__getitem__``.

:class:`FeatureCache` stores results as ``ROOT/<sha1 of key>.safetensors`` + ``.json`` sidecar, written atomically
and SHA-256-verified by :mod:`reprolab.checkpoint`. The key (a JSON-able dict, see :func:`method_key`) holds the
encoder id, the dataset key (``ImageSet.key``: name/split/subset/seed/size), the image transform, the method's
config and :func:`state_hash` of its trained tensors. A corrupt or mismatching cache file is recomputed with a
warning — it is a cache, never the only copy of anything.

The frozen encoder's image features, shared by every method, notebook and run, live in
:mod:`reprolab.evaluation.frozen` (keyed by encoder + items only; served to ``fit`` as a ``FeatureSet``).

Gradients are off via ``torch.no_grad`` rather than ``torch.inference_mode``: methods cache tensors computed here
(e.g. zero-shot text features), and an *inference tensor* cached inside a method would make later training fail
("Inference tensors cannot be saved for backward").
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset, TensorDataset
from tqdm.auto import tqdm

from reprolab.checkpoint import checkpoint_exists, load_checkpoint, save_checkpoint
from reprolab.distributed import gather_shards, shard_range
from reprolab.errors import CheckpointError, ReprolabError

__all__ = ["extract", "batches", "state_hash", "key_hash", "method_key", "method_outputs", "FeatureCache"]

FORMAT = "reprolab-features-v1"


def state_hash(tensors: dict) -> str:
    """sha1 over the sorted names, dtypes, shapes and raw bytes of ``tensors`` (str → Tensor); "" → empty dict."""
    h = hashlib.sha1()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def key_hash(key: dict) -> str:
    """sha1 of the canonical JSON of a cache key (sorted keys; non-JSON values by ``str``)."""
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _preloaded(dataset):
    """(images, labels) tensors if the dataset holds them in memory, else None."""
    if isinstance(dataset, TensorDataset):
        t = dataset.tensors
        return t[0], (t[1] if len(t) > 1 else torch.full((len(t[0]),), -1, dtype=torch.long))
    images = getattr(dataset, "images", None)
    if (
        isinstance(images, Tensor)
        and isinstance(getattr(dataset, "labels", None), Tensor)
        and len(images) == len(dataset) == len(dataset.labels)
    ):
        return images, dataset.labels
    return None


def _check_batch_size(batch_size) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ReprolabError(f"batch_size={batch_size!r}; use a positive integer such as 256")


def batches(dataset, batch_size: int = 256):
    """Yield ``(images, labels)`` batches of ``dataset`` in order."""
    _check_batch_size(batch_size)
    pre = _preloaded(dataset)
    if pre is not None:
        for i in range(0, len(pre[0]), batch_size):
            yield pre[0][i : i + batch_size], pre[1][i : i + batch_size]
    else:
        yield from DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)


def extract(
    fn: Callable[[Tensor], dict], dataset, batch_size: int = 256, progress: bool = True, device=None
) -> dict[str, Tensor]:
    """Run ``fn`` over ``dataset`` in order; returns ``{name: Tensor[N, ...]}`` (on CPU) plus ``"labels"``.

    ``device``: where image batches are moved before ``fn`` (default: left where they are).
    """
    _check_batch_size(batch_size)
    if len(dataset) == 0:
        raise ReprolabError(f"dataset {getattr(dataset, 'name', '?')} is empty; check its path/subset")
    name = str(getattr(dataset, "name", "features"))
    dataset = rank_share(dataset, batch_size)  # torchrun: this rank's block of batches; else all of them
    outs: dict[str, list[Tensor]] = {}
    labels = []
    n_batches = -(-len(dataset) // batch_size)
    bar = tqdm(
        batches(dataset, batch_size),
        total=n_batches,
        desc=name,
        disable=not progress,
        leave=False,
    )
    with torch.no_grad():
        for x, y in bar:
            res = fn(x if device is None else x.to(device, non_blocking=True))
            for k, v in res.items():
                outs.setdefault(k, []).append((v.float() if v.is_floating_point() else v).detach().cpu())
            labels.append(torch.as_tensor(y, dtype=torch.long))
    result = {k: torch.cat(v) for k, v in outs.items()}
    if labels:
        result["labels"] = torch.cat(labels)
    return gather_shards(result)  # torchrun: every rank gets the whole dataset's outputs, in order


def rank_share(dataset, batch_size: int):
    """The contiguous block of ``dataset``'s batches this data-parallel rank encodes (:mod:`reprolab.distributed`);
    the dataset itself in a single process."""
    keep = shard_range(-(-len(dataset) // batch_size))
    start, stop = keep.start * batch_size, min(keep.stop * batch_size, len(dataset))
    if (start, stop) == (0, len(dataset)):
        return dataset
    pre = _preloaded(dataset)
    if pre is not None:
        return TensorDataset(pre[0][start:stop], pre[1][start:stop])
    return Subset(dataset, range(start, stop))


# ----- methods → feature functions and cache keys ---------------------------------------------------------------
def _generic_clip(method) -> bool:
    """True when ``method.logits`` is the base ``s · image_features · text_featuresᵀ`` (so one pass gives both)."""
    from reprolab.methods.base import Method

    return getattr(method, "clip_style", False) and type(method).logits is Method.logits


def method_outputs(method, features: bool = False) -> tuple[Callable[[Tensor], dict], list[str]]:
    """``(fn, output names)`` for :func:`extract`: ``fn(images) -> {"logits", ["image_features"]}``.

    For CLIP-style methods using the base formula, text features are computed once and image features come for
    free (one encoder pass). Otherwise ``method.logits`` is called, plus ``method.image_features`` when
    ``features`` is asked for (a second pass).
    """
    if _generic_clip(method):
        with torch.no_grad():
            text = method.text_features().detach()
        scale = method.encoder.logit_scale

        def fn(x):
            f = method.image_features(x)
            return {"logits": scale * f @ text.t(), "image_features": f}

        return fn, ["logits", "image_features"]
    if features and not hasattr(method, "image_features"):
        raise ReprolabError(
            f"method {method.name} has no image_features; drift needs a CLIP-style or fine-tuned image tower"
        )

    def fn2(x):
        out = {"logits": method.logits(x)}
        if features:
            out["image_features"] = method.image_features(x)
        return out

    return fn2, ["logits", "image_features"] if features else ["logits"]


def method_key(method, dataset, outputs: list[str], state: str | None = None) -> dict:
    """The cache key of ``method``'s outputs on ``dataset`` (see the module docstring).

    ``state``: a precomputed :func:`state_hash` of ``method.trainable_state()`` (saves rehashing per dataset).
    """
    enc = method.encoder
    ds_key = getattr(dataset, "key", None)
    if not ds_key:
        raise ReprolabError(
            f"dataset {getattr(dataset, 'name', '?')} has no .key; caching needs ImageSet.key (or pass cache=None)"
        )
    return {
        "format": FORMAT,
        "encoder": enc.id,
        "dataset": ds_key,
        "outputs": sorted(outputs),
        "transform": f"[0,1] pixels; encoder.resize bilinear antialias to {enc.image_size}px; "
        f"normalise mean={tuple(enc.mean)} std={tuple(enc.std)} inside encode_image",
        "method": method.name,
        "config": method.config(),
        "alpha": [getattr(method, a, None) for a in ("alpha_zeroshot", "alpha_finetuned")],
        "state": state if state is not None else state_hash(method.trainable_state()),
    }


class FeatureCache:
    """On-disk cache of :func:`extract` results (see the module docstring)."""

    def __init__(self, root):
        self.root = Path(root)
        self.hits = self.misses = 0

    def path(self, key: dict) -> Path:
        return self.root / f"{key_hash(key)}.safetensors"

    def load(self, key: dict) -> dict[str, Tensor] | None:
        """Cached tensors for ``key``, or None when absent; a corrupt entry warns and returns None."""
        name = key_hash(key)
        if not checkpoint_exists(self.root, name):
            return None
        try:
            tensors, meta = load_checkpoint(self.root, name)
        except CheckpointError as exc:
            warnings.warn(f"feature cache entry {name} is corrupt ({exc}); recomputing it", stacklevel=3)
            return None
        if json.loads(json.dumps(meta.get("key"), default=str)) != json.loads(json.dumps(key, default=str)):
            warnings.warn(f"feature cache entry {name} belongs to another key; recomputing it", stacklevel=3)
            return None
        return tensors

    def save(self, key: dict, tensors: dict[str, Tensor]) -> Path:
        meta = {"key": json.loads(json.dumps(key, default=str))}
        return save_checkpoint(self.root, tensors, meta, name=key_hash(key))

    def get_or_compute(
        self,
        key: dict,
        fn: Callable[[Tensor], dict],
        dataset,
        batch_size: int = 256,
        progress: bool = True,
        device=None,
    ) -> dict[str, Tensor]:
        """Tensors for ``key`` from disk, or :func:`extract` ``fn`` over ``dataset`` and store them."""
        hit = self.load(key)
        if hit is not None:
            self.hits += 1
            return hit
        self.misses += 1
        out = extract(fn, dataset, batch_size=batch_size, progress=progress, device=device)
        self.save(key, out)
        return out

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r}, hits={self.hits}, misses={self.misses})"
