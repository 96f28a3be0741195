"""The frozen encoder's image features, computed once and shared by every method, notebook and run.

:func:`frozen_image_features` keys them by the encoder id, the dataset key and the sha256 of its item list (as in
its manifest, :func:`reprolab.datasets.manifest`) and the transform only — no method, no prompt template — so
every notebook and run that reads the same images through the same frozen encoder computes them once (through a
:class:`~reprolab.evaluation.features.FeatureCache`, e.g. the course's per-encoder cache).

:class:`FeatureSet` serves them to :func:`reprolab.training.fit` in the dataset's own order, so ``fit`` draws the
same batches it would draw from the images — for training that needs no image pass: the text reprogrammer, whose
image side is the frozen encoder's plain resize (:meth:`reprolab.methods.Reprogrammer.training_loss_from_features`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from reprolab.errors import ReprolabError
from reprolab.evaluation.features import FORMAT, FeatureCache, extract

__all__ = ["FeatureSet", "frozen_key", "frozen_image_features"]


def _items_digest(dataset) -> str | None:
    """sha256 of the dataset's item list (indices + file ids), as in its manifest; None when it has none."""
    try:
        from reprolab.datasets import manifest

        return manifest(dataset)["sha256"]
    except Exception:  # a dataset without indices/ids (tests' in-memory sets): its key alone names it
        return None


def frozen_key(encoder, dataset) -> dict:
    """Cache key of the frozen encoder's image features of ``dataset`` (no method, no prompts: see the docstring)."""
    ds_key = getattr(dataset, "key", None)
    if not ds_key:
        raise ReprolabError(f"dataset {getattr(dataset, 'name', '?')} has no .key; frozen features need ImageSet.key")
    return {
        "format": FORMAT,
        "frozen_image_features": True,
        "encoder": encoder.id,
        "dataset": ds_key,
        "items": _items_digest(dataset),
        "transform": f"[0,1] pixels; encoder.resize bilinear antialias to {encoder.image_size}px; "
        f"normalise mean={tuple(encoder.mean)} std={tuple(encoder.std)} inside encode_image",
    }


def frozen_image_features(encoder, dataset, cache=None, batch_size: int = 256, progress: bool = True) -> dict:
    """``{"image_features": Tensor[N, D], "labels": Tensor[N]}`` of the frozen encoder, in the dataset's order;
    through ``cache`` (a :class:`FeatureCache`, a folder or None) under :func:`frozen_key`."""
    if cache is not None and not isinstance(cache, FeatureCache):
        cache = FeatureCache(cache)
    was = encoder.training
    encoder.eval()

    def fn(x):
        return {"image_features": encoder.encode_image(encoder.resize(x))}

    try:
        if cache is None:
            return extract(fn, dataset, batch_size, progress, encoder.device)
        return cache.get_or_compute(frozen_key(encoder, dataset), fn, dataset, batch_size, progress, encoder.device)
    finally:
        encoder.train(was)


class FeatureSet(torch.utils.data.Dataset):
    """Precomputed image features as a dataset: item i is ``(features[i], label i)``, in the source's order, so
    :func:`reprolab.training.fit` draws exactly the batches it would draw from the images."""

    def __init__(self, features: Tensor, labels: Tensor, name: str = "features", classnames=None):
        if len(features) != len(labels):
            raise ReprolabError(f"{len(features)} feature rows but {len(labels)} labels; pass one label per row")
        self.features, self.labels, self.name = features, labels.long(), name
        self.classnames = list(classnames) if classnames is not None else None
        self.key = None  # set by frozen(): names the source (encoder + dataset key)

    @classmethod
    def frozen(cls, encoder, dataset, cache=None, batch_size: int = 256, progress: bool = True) -> FeatureSet:
        """The frozen encoder's features of ``dataset`` (:func:`frozen_image_features`) as a training set."""
        out = frozen_image_features(encoder, dataset, cache, batch_size, progress)
        name = f"{getattr(dataset, 'name', 'features')} (frozen features)"
        fs = cls(out["image_features"], out["labels"], name, getattr(dataset, "classnames", None))
        fs.key = f"frozen-features|{encoder.id}|{getattr(dataset, 'key', None)}"
        return fs

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i):
        return self.features[i], int(self.labels[i])
