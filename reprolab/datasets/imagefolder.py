"""``imagefolder:PATH`` — a class's own photos as an ID task, a covariate-shift set or an OOD set.

Layout: ``PATH/<class name>/<image>`` (any of :data:`~reprolab.datasets.base.IMAGE_EXTS`); the class names are the
folder names, sorted, with ``_`` read as a space ("sports_car" → "sports car"). Optional ``PATH/train/<class>/`` and
``PATH/test/<class>/`` give the split explicitly. Otherwise the split is made once, per class, by a hash of the file
name (about one image in five goes to test, at least one per class when a class has two or more) and written to
``PATH/reprolab_split.json`` — the manifest: later loads read it, so the split never changes when files are added
(new files are assigned by the same hash rule); delete it to re-split. An unwritable folder keeps the split in memory.

Its role comes from how it is loaded (``load_dataset`` passes ``id_task`` for shift and OOD sets):

* **ID** (``id_dataset: imagefolder:PATH``): labelled by folder, splits ``train`` and ``test``;
* **shift** (``id_task`` given, every class folder is a class of the ID task): labels are the ID task's indices;
* **OOD** (``id_task`` given, no class folder names an ID class — or images without class folders): label −1.

A folder whose classes only partly overlap the ID task's is an error (one line naming the overlap).
Images are resized to ``size`` (default 224, shorter side + centre crop) so that one batch has one shape.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from reprolab.datasets.base import IMAGE_EXTS, Files, ImageSet, Raw, list_images
from reprolab.datasets.subsets import balanced_indices
from reprolab.errors import DatasetNotFoundError, ReprolabError

PREFIX = "imagefolder:"
MANIFEST = "reprolab_split.json"
DEFAULT_SIZE = 224
SPLITS = ("train", "test")


def is_imagefolder(name: str | None) -> bool:
    return bool(name) and str(name).startswith(PREFIX)


def folder_of(name: str) -> Path:
    path = Path(name[len(PREFIX) :]).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"dataset '{name}': {path} is not a folder; use imagefolder:PATH with PATH/<class>/<image> inside"
        )
    return path


def _class_dirs(folder: Path) -> list[str]:
    return sorted(d.name for d in os.scandir(folder) if d.is_dir() and not d.name.startswith("."))


def _images(folder: Path) -> list[str]:
    return sorted(f.name for f in os.scandir(folder) if f.is_file() and f.name.lower().endswith(IMAGE_EXTS))


def readable(folder_name: str) -> str:
    return folder_name.replace("_", " ")


def task_classnames(name: str) -> list[str]:
    """Class names of the ID task ``imagefolder:PATH`` (folder names of its train split), in label order."""
    folder = folder_of(name)
    top = _class_dirs(folder)
    base = folder / "train" if set(SPLITS) <= set(top) else folder
    return [readable(c) for c in _class_dirs(base)]


def _in_test(rel: str) -> bool:
    return int(hashlib.sha1(rel.encode()).hexdigest(), 16) % 5 == 0


def split_manifest(folder: Path) -> dict:
    """``{"train": [...], "test": [...]}`` relative paths: read from the manifest, made (and written) if absent."""
    path = folder / MANIFEST
    known = json.loads(path.read_text()) if path.is_file() else {"train": [], "test": []}
    assigned = set(known["train"]) | set(known["test"])
    changed = not path.is_file()
    for c in _class_dirs(folder):
        files = [f"{c}/{f}" for f in _images(folder / c)]
        new = [f for f in files if f not in assigned]
        if not new:
            continue
        changed = True
        test = [f for f in new if _in_test(f)]
        if not test and len(files) >= 2 and not any(f.startswith(f"{c}/") for f in known["test"]):
            test = [new[-1]]  # every class with ≥ 2 images gets at least one test image
        known["test"] += test
        known["train"] += [f for f in new if f not in test]
    if changed:
        try:
            path.write_text(json.dumps({k: sorted(v) for k, v in known.items()}, indent=1) + "\n")
        except OSError:
            pass  # a read-only folder: the same hash rule gives the same split next time
    return known


def _labelled(folder: Path, split: str, classes: list[str]) -> tuple[list[Path], list[int]]:
    """Files and labels of ``split``; ``classes`` are the folder names in label order."""
    top = _class_dirs(folder)
    if set(SPLITS) <= set(top):
        base = folder / split
        rels = [f"{c}/{f}" for c in _class_dirs(base) for f in _images(base / c)]
    else:
        base = folder
        rels = sorted(split_manifest(folder)[split])
        rels = [r for r in rels if (base / r).is_file()]
    index = {c: k for k, c in enumerate(classes)}
    rels = [r for r in rels if r.split("/")[0] in index]
    return [base / r for r in rels], [index[r.split("/")[0]] for r in rels]


def role(name: str, id_task: str | None, id_classnames) -> str:
    """ "id", "shift" or "ood" (see the module docstring)."""
    if id_task is None or id_task == name:
        return "id"
    folder = folder_of(name)
    mine = {readable(c) for c in _class_dirs(folder)} - set(SPLITS)
    known = set(id_classnames)
    if not mine or not mine & known:
        return "ood"
    if mine <= known:
        return "shift"
    raise ReprolabError(
        f"{name}: class folders {sorted(mine & known)} are classes of '{id_task}' but {sorted(mine - known)[:5]} are "
        "not; use only ID class names (a shift set) or none of them (an OOD set)"
    )


def load_imagefolder(name, split="test", subset=None, seed=0, size=None, id_task=None, id_classnames=()) -> ImageSet:
    """The :class:`ImageSet` of ``imagefolder:PATH`` in its role (ID / shift / OOD) — see the module docstring."""
    folder = folder_of(name)
    kind = role(name, id_task, id_classnames)
    side = size or DEFAULT_SIZE
    if kind == "ood":
        files = list_images(folder)
        if not files:
            raise DatasetNotFoundError(f"dataset '{name}': {folder} holds no image files ({', '.join(IMAGE_EXTS)})")
        ids = [str(p.relative_to(folder)) for p in files]
        raw = Raw(Files(files), np.full(len(files), -1, dtype=np.int64), ids, list(id_classnames), size=side)
    else:
        if split not in SPLITS:
            raise ReprolabError(f"'{name}' has splits {list(SPLITS)}, not '{split}'")
        names = _class_dirs(folder / "train" if set(SPLITS) <= set(_class_dirs(folder)) else folder)
        if kind == "shift":
            split = "test"
            order = {c: k for k, c in enumerate(id_classnames)}
            names = sorted(names, key=lambda c: order[readable(c)])
        files, labels = _labelled(folder, split, names)
        if not files:
            raise DatasetNotFoundError(f"dataset '{name}': no images for split '{split}' under {folder}/<class>/")
        if kind == "shift":
            labels = [order[readable(names[k])] for k in labels]
        classes = list(id_classnames) if kind == "shift" else [readable(c) for c in names]
        ids = [str(p.relative_to(folder)) for p in files]
        raw = Raw(Files(files), np.asarray(labels, dtype=np.int64), ids, classes, size=side)
    raw.extra_key = f"folder={folder.resolve()}"
    indices = balanced_indices(raw.labels, subset, seed)
    return ImageSet(
        raw,
        name=name,
        split=split,
        kind=kind,
        id_task=id_task or name,
        indices=indices,
        size=side,
        subset=subset,
        seed=seed,
    )
