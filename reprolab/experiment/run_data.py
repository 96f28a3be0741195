"""The data of one run: the train set (and its validation split), the ID test set, the shift and OOD sets.

Everything is drawn class-balanced with the config's ``data_seed`` (fixed across training seeds), so every method
of a run sees the same images. With ``val_subset`` (the fair protocol of :mod:`reprolab.experiment.protocol`),
``train_subset + val_subset`` images are drawn from the TRAIN split and split deterministically into a training part
and a validation set named ``<id_dataset>_val``; both get their own ``ImageSet.key``, so the feature cache never
mixes them with each other or with a plain ``train_subset`` draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reprolab.errors import ConfigError


@dataclass
class RunData:
    train: object  # ImageSet the methods are trained on
    val: object | None  # validation ImageSet (None without val_subset)
    id_test: object  # ID test set
    shift: list  # covariate-shift sets (same classes)
    ood: list  # OOD sets (other classes)

    @property
    def eval_sets(self) -> list:
        """Every set a method is evaluated on, ID first."""
        return [self.id_test, *self.shift, *self.ood]


def load_run_data(cfg) -> RunData:
    """Load every set the config names (missing data, downloads: :mod:`reprolab.datasets`).

    The ID sets are required: a missing one stops the run with its one-line error. Shift and OOD sets are optional:
    one that can be neither found nor downloaded is skipped with one ``not evaluated: ...`` line saying how to add
    it (the report repeats it; a later run with the set in place evaluates the finished methods on it).
    """
    from reprolab.datasets import load_available, load_dataset
    from reprolab.experiment.log import log

    common = dict(root=cfg.data_root, seed=cfg.data_seed, download=cfg.download)
    train, val = load_train(cfg, **common)
    id_test = load_dataset(cfg.id_dataset, "test", subset=cfg.test_subset, size=cfg.image_size, **common)
    optional = dict(split="test", id_task=cfg.id_dataset, say=log, **common)
    shift = load_available(cfg.shift_sets, subset=cfg.shift_subset, size=cfg.image_size, **optional)
    ood = load_available(cfg.ood_sets, subset=cfg.ood_subset, size=cfg.ood_size, **optional)
    return RunData(train, val, id_test, shift, ood)


def load_train(cfg, **common):
    """``(train_set, val_set)``; ``val_set`` is None without ``val_subset`` (train loaded exactly as before)."""
    from reprolab.datasets import load_dataset

    kw = dict(size=cfg.image_size, **common)
    if not cfg.val_subset:
        return load_dataset(cfg.id_dataset, "train", subset=cfg.train_subset, **kw), None
    n = None if cfg.train_subset is None else cfg.train_subset + cfg.val_subset
    full = load_dataset(cfg.id_dataset, "train", subset=n, **kw)
    return split_train_val(full, cfg.val_subset, cfg.data_seed, f"{cfg.id_dataset}_val")


def split_train_val(full, n_val: int, seed: int, val_name: str):
    """Split an ImageSet into (train part, class-balanced validation set of ``n_val``), disjoint, deterministic."""
    from reprolab.datasets.base import ImageSet
    from reprolab.datasets.subsets import balanced_indices

    if n_val >= len(full):
        raise ConfigError(f"val_subset={n_val} leaves no training images out of {len(full)}; lower val_subset")
    pos = balanced_indices(full.labels.numpy(), n_val, seed)
    rest = np.setdiff1d(np.arange(len(full)), pos)

    def part(name, p, tag):
        s = ImageSet(
            full.raw,
            name=name,
            split=full.split,
            kind=full.kind,
            id_task=full.id_task,
            indices=full.indices[p],
            size=full.size,
            subset=full.subset,
            seed=full.seed,
        )
        s.key = f"{full.key}|part={tag}"
        return s

    return part(full.name, rest, "train"), part(val_name, pos, f"val{n_val}")
