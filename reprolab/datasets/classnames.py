"""Class names in each ID task's label order, and the ImageNet wnid lists.

CIFAR-10/100, Fashion-MNIST and STL-10 names live in ``reprolab/data/classnames/<task>.json`` (package data, so a
plain ``pip install`` has them; open_clip ships only the ImageNet names). CIFAR-100 names use spaces ("aquarium fish"); their on-disk folder names use underscores.
ImageNet: names from ``open_clip.zero_shot_metadata.IMAGENET_CLASSNAMES`` (OpenAI's CLIP names, standard index
order); the 1000 wnids (sorted = standard index order) and the 200-class ImageNet-A / -R wnid lists are in
``reprolab/data/imagenet/`` (copied from the lists timm ships, used as fallback).
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

from reprolab.errors import ReprolabError

PACKAGE_DATA = Path(__file__).resolve().parents[1] / "data"  # reprolab/data: files the library needs to run


@functools.cache
def classnames(task: str) -> tuple[str, ...]:
    """Class names of ``task`` ("cifar10", "cifar100", "fashion_mnist", "stl10", "imagenet") in label order."""
    if task == "imagenet":
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

        return tuple(IMAGENET_CLASSNAMES)
    path = PACKAGE_DATA / "classnames" / f"{task}.json"
    if not path.is_file():
        raise ReprolabError(
            f"no class names for '{task}' at {path}; reinstall reprolab (pip install --force-reinstall reprolab)"
        )
    return tuple(json.loads(path.read_text()))


def _timm_info(fname: str) -> Path | None:
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "data" / "_info" / fname
    return p if p.is_file() else None


@functools.cache
def imagenet_wnids(which: str = "1000") -> tuple[str, ...]:
    """The 1000 ImageNet wnids in class-index order, or the 200 of ImageNet-A ("a") / ImageNet-R ("r")."""
    ours = {"1000": "wnids.txt", "a": "imagenet_a_wnids.txt", "r": "imagenet_r_wnids.txt"}[which]
    theirs = {"1000": "imagenet_synsets.txt", "a": "imagenet_a_synsets.txt", "r": "imagenet_r_synsets.txt"}[which]
    for p in (PACKAGE_DATA / "imagenet" / ours, _timm_info(theirs)):
        if p is not None and p.is_file():
            return tuple(p.read_text().split())
    raise ReprolabError(
        f"ImageNet wnid list '{ours}' not found in reprolab/data/imagenet/ nor in timm; "
        "reinstall reprolab or pip install timm"
    )
