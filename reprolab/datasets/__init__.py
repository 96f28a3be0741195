"""Datasets of the kit: one registry of ID, covariate-shift and OOD image sets (see :mod:`.registry`).

>>> ds = load_dataset("cifar10", subset=500, seed=0)      # 50 per class, images in [0,1], CIFAR-10 labels
>>> dataset_names("cifar10", kind="ood")                  # OOD sets used with the CIFAR-10 task

A missing set that has a download source is fetched once (``download="auto"``, the default; see :mod:`.roots`
for where data live and :mod:`.download` for the sources). ``load_available`` skips optional sets that are
missing, with one line each.

May import only :mod:`reprolab.errors` (and torchvision, pooch, platformdirs, PIL); no other kit package.
"""

from reprolab.datasets.base import ImageSet
from reprolab.datasets.cifar import STL10_TO_CIFAR10
from reprolab.datasets.classnames import classnames, imagenet_wnids
from reprolab.datasets.corruptions import FAMILIES as CORRUPTIONS
from reprolab.datasets.corruptions import corrupt
from reprolab.datasets.registry import REGISTRY, DatasetInfo, dataset_names, load_available, load_dataset
from reprolab.datasets.roots import data_roots
from reprolab.datasets.subsets import balanced_indices, manifest, read_manifest, save_manifest

__all__ = [
    "ImageSet",
    "load_dataset",
    "load_available",
    "dataset_names",
    "REGISTRY",
    "DatasetInfo",
    "classnames",
    "imagenet_wnids",
    "STL10_TO_CIFAR10",
    "CORRUPTIONS",
    "corrupt",
    "data_roots",
    "balanced_indices",
    "manifest",
    "read_manifest",
    "save_manifest",
]
