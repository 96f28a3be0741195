"""ImageNet-1k (ID) and its shift / OOD sets, all read from folders the user provides.

Labels are always ImageNet class indices 0..999 (``classnames`` = the 1000 CLIP names). Folder names are wnids
(``n01440764``), mapped through the sorted 1000-wnid list, except ImageNet-V2 whose release names folders by class
index ("0".."999"). ImageNet-A and -R contain 200 classes: with ``classes="200"`` (default, the standard protocol)
``ImageSet.class_subset`` holds those 200 indices and ``ImageSet.restrict_logits`` masks the other 800 logits;
``classes="1000"`` scores against all 1000 classes, as the official IBM/reprogrammer code did.
OOD sets (label -1): the MOS/MCM subsets iNaturalist, SUN, Places (Huang & Li, CVPR 2021) and Textures (full DTD).
Images are resized to ``size`` (default 224: ``Resize(224)`` + ``CenterCrop(224)``). A reprogrammer with
``reduce_from="raw"`` (``configs/paper/imagenet.yaml``) reads the same files through
:func:`reprolab.datasets.loader_view.loader_view` instead: each resized once, straight to its ``image_res`` (128), with
PIL bicubic, as the official loader does (raw → 128 → 224 rather than raw → 224 → 128 → 224; ``docs/fidelity.md``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from reprolab.datasets.base import IMAGE_EXTS, Ctx, Files, Raw
from reprolab.datasets.classnames import classnames, imagenet_wnids
from reprolab.datasets.download import SOURCES, fetch_archive
from reprolab.datasets.ood import folder_set
from reprolab.datasets.roots import DOWNLOAD_HOW, download_root, find, locate
from reprolab.errors import ReprolabError


def wnid_folder_raw(folder: Path, split: str, class_subset=None, extra_key: str = "") -> Raw:
    """``folder/<wnid or class index>/<image>`` -> Raw with ImageNet-index labels."""
    index = {w: k for k, w in enumerate(imagenet_wnids("1000"))}
    subdirs = sorted(d.name for d in os.scandir(folder) if d.is_dir())
    if not subdirs:
        raise ReprolabError(f"{folder} has no class folders; ImageNet-style sets must be <folder>/<wnid>/<image>")
    paths, labels = [], []
    for d in subdirs:
        if d in index:
            k = index[d]
        elif d.isdigit() and int(d) < 1000:
            k = int(d)
        else:
            raise ReprolabError(f"folder '{d}' in {folder} is neither an ImageNet wnid nor a class index 0..999")
        files = sorted(f.name for f in os.scandir(folder / d) if f.name.lower().endswith(IMAGE_EXTS))
        paths += [folder / d / f for f in files]
        labels += [k] * len(files)
    order = np.argsort(labels, kind="stable")  # class-index order ("0","1","10",... sort as strings)
    paths, labels = [paths[i] for i in order], np.asarray(labels, dtype=np.int64)[order]
    ids = [f"{p.parent.name}/{p.name}" for p in paths]
    return Raw(
        Files(paths),
        labels,
        ids,
        list(classnames("imagenet")),
        size=224,
        class_subset=class_subset,
        extra_key=extra_key,
    )


def _folder(ctx: Ctx, candidates, how, path=None, key=None) -> Path:
    if path is not None:
        return locate(ctx.name, [Path(path)], ["."], how, test=Path.is_dir)
    if ctx.download and key in SOURCES and find(ctx.roots, candidates) is None:
        fetch_archive(ctx.name, key, download_root(ctx.roots), candidates[0], how)  # the archive's own folder name
    return locate(ctx.name, ctx.roots, candidates, how, test=Path.is_dir)


def imagenet(ctx: Ctx, path=None) -> Raw:
    split = {"test": "val", "val": "val", "train": "train"}.get(ctx.split)
    if split is None:
        raise ReprolabError(f"imagenet has splits 'train' and 'val' (='test'), not '{ctx.split}'")
    how = (
        f"ImageNet cannot be downloaded automatically (licence); put the {split} set as class folders "
        f"<root>/imagenet/{split}/<wnid>/*.JPEG, or pass path="
    )
    folder = _folder(ctx, [f"imagenet/{split}", f"ILSVRC2012/{split}", f"ILSVRC/Data/CLS-LOC/{split}"], how, path)
    return wnid_folder_raw(folder, ctx.split)


def imagenet_v2(ctx: Ctx, path=None) -> Raw:
    how = f"{DOWNLOAD_HOW} (1.2 GB), or extract imagenetv2-matched-frequency.tar.gz under <root>, or pass path="
    cands = ["imagenetv2-matched-frequency-format-val", "imagenet_v2", "imagenetv2-matched-frequency"]
    return wnid_folder_raw(_folder(ctx, cands, how, path, "imagenet_v2"), ctx.split)


def _two_hundred(ctx, which, cands, classes, path, key) -> Raw:
    if classes not in ("200", "1000", 200, 1000):
        raise ReprolabError(f"classes must be '200' (standard) or '1000', got {classes!r}")
    classes = str(classes)
    how = f"{DOWNLOAD_HOW}, or extract {key.replace('_', '-')}.tar under <root>, or pass path="
    folder = _folder(ctx, cands, how, path, key)
    subset = None
    if classes == "200":
        index = {w: k for k, w in enumerate(imagenet_wnids("1000"))}
        subset = sorted(index[w] for w in imagenet_wnids(which))
    return wnid_folder_raw(folder, ctx.split, subset, extra_key=f"classes={classes}")


def imagenet_a(ctx: Ctx, classes="200", path=None) -> Raw:
    return _two_hundred(ctx, "a", ["imagenet-a", "imagenet_a"], classes, path, "imagenet_a")


def imagenet_r(ctx: Ctx, classes="200", path=None) -> Raw:
    return _two_hundred(ctx, "r", ["imagenet-r", "imagenet_r"], classes, path, "imagenet_r")


def imagenet_sketch(ctx: Ctx, path=None) -> Raw:
    how = "download ImageNet-Sketch (github.com/HaohanWang/ImageNet-Sketch) to <root>/imagenet-sketch/, or pass path="
    cands = ["imagenet-sketch/sketch", "imagenet_sketch/sketch", "imagenet-sketch", "imagenet_sketch", "sketch"]
    return wnid_folder_raw(_folder(ctx, cands, how, path), ctx.split)


MOS_HOW = "get the MOS OOD subset '{x}' (github.com/deeplearning-wisc/large_scale_ood) into <root>/{d}/, or pass path="


def inaturalist(ctx: Ctx, path=None) -> Raw:
    return folder_set(
        ctx, ["iNaturalist", "inaturalist"], MOS_HOW.format(x="iNaturalist", d="iNaturalist"), path, size=224
    )


def sun(ctx: Ctx, path=None) -> Raw:
    return folder_set(ctx, ["SUN", "sun"], MOS_HOW.format(x="SUN", d="SUN"), path, size=224)


def places(ctx: Ctx, path=None) -> Raw:
    return folder_set(ctx, ["Places", "places"], MOS_HOW.format(x="Places", d="Places"), path, size=224)
