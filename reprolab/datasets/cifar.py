"""CIFAR-10 (the paper's ID task), CIFAR-100, and CIFAR-10's covariate-shift sets.

* ``cifar10`` / ``cifar100``: class folders ``<root>/cifar10/<split>/<class>/*.jpg``, a zip of them
  (``<root>/cifar10/<split>.zip`` holding ``<split>/<class>/...``, read in place), or torchvision's pickles
  (``<root>/cifar-10-batches-py``; a download fetches those, see :mod:`.download`).
* ``cifar10_1``: CIFAR-10.1 v6 (Recht et al. 2018), ``cifar10.1_v6_data.npy`` / ``_labels.npy`` from the official
  repository github.com/modestyachts/CIFAR-10.1; same class order as CIFAR-10.
* ``stl10``: STL-10 test split (torchvision layout ``stl10_binary/``), 96 px resized to ``size`` (default 32).
  STL-10's classes are airplane, bird, car, cat, deer, dog, horse, monkey, ship, truck; they are **remapped to
  CIFAR-10 indices** (:data:`STL10_TO_CIFAR10`) and monkey (no CIFAR-10 class) is dropped, leaving 7,200 images.
  The official IBM/reprogrammer code fed STL-10's own indices to a CIFAR-10 head without this remap, so bird, car
  and horse images were scored against the wrong class (its STL-10 loader drops monkey too, ``remove_monkeys=True``).
* ``cifar10c:<family>:<severity>``: CIFAR-10 test images corrupted on the fly (:mod:`corruptions`); with
  ``official=True`` the released CIFAR-10-C ``.npy`` files (``<root>/CIFAR-10-C/<family>.npy``) are read instead.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from reprolab.datasets.base import IMAGE_EXTS, Arrays, Ctx, Files, Raw, ZipMembers, ZipReader, list_class_folders
from reprolab.datasets.classnames import classnames
from reprolab.datasets.corruptions import corrupter
from reprolab.datasets.download import fetch_archive, fetch_files
from reprolab.datasets.roots import DOWNLOAD_HOW, download_root, not_found
from reprolab.errors import CorruptFileError, ReprolabError

STL10_TO_CIFAR10 = {0: 0, 1: 2, 2: 1, 3: 3, 4: 4, 5: 5, 6: 7, 8: 8, 9: 9}  # 7 (monkey) has no CIFAR-10 class


def class_folder_raw(folder, classes, split) -> Raw:
    folders = [c.replace(" ", "_") for c in classes]
    paths, labels, _ = list_class_folders(folder, folders)
    ids = [f"{split}/{p.parent.name}/{p.name}" for p in paths]
    return Raw(Files(paths), np.asarray(labels, dtype=np.int64), ids, list(classes))


def zip_raw(path, classes, split) -> Raw:
    zr = ZipReader(path)
    folders = [c.replace(" ", "_") for c in classes]
    members = []
    for n in zr.names():
        parts = n.split("/")
        if len(parts) == 3 and parts[0] == split and parts[2].lower().endswith(IMAGE_EXTS):
            if parts[1] not in folders:
                raise ReprolabError(f"{path} has unexpected class folder '{parts[1]}'; expected {folders}")
            members.append((folders.index(parts[1]), n))
    members.sort()
    labels = np.asarray([k for k, _ in members], dtype=np.int64)
    names = [n for _, n in members]
    return Raw(ZipMembers(zr, names), labels, names, list(classes))


def _torchvision_raw(cls, root, split, classes) -> Raw:
    """torchvision's CIFAR pickles (file names from ``cls.train_list`` / ``test_list``), read here rather than
    through ``cls(...)``: torchvision re-hashes all six files against its MD5 list at every load (about 180 MB for
    CIFAR-10), while the kit verifies the archive's checksum once, when it downloads it (:mod:`.download`)."""
    data, labels = [], []
    for fname, _md5 in cls.train_list if split == "train" else cls.test_list:
        path = Path(root) / cls.base_folder / fname
        try:
            with open(path, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
            data.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels += entry["labels"] if "labels" in entry else entry["fine_labels"]
        except (OSError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as e:
            raise CorruptFileError(
                f"{path} is missing or unreadable ({type(e).__name__}); delete {path.parent} and load again to "
                "download it afresh"
            ) from e
    images = np.concatenate(data).transpose(0, 2, 3, 1)  # N x 32 x 32 x 3, as torchvision's .data
    return Raw(
        Arrays(images), np.asarray(labels, dtype=np.int64), [f"{split}[{i}]" for i in range(len(images))], list(classes)
    )


def _cifar(ctx: Ctx, task: str, tv_dir: str, tv_cls: str) -> Raw:
    import torchvision.datasets as tvd

    if ctx.split not in ("train", "test"):
        raise ReprolabError(f"'{ctx.name}' has splits 'train' and 'test', not '{ctx.split}'")
    names = classnames(task)
    looked = []
    for r in ctx.roots:
        folder, zpath, tv = r / task / ctx.split, r / task / f"{ctx.split}.zip", r / tv_dir
        if folder.is_dir():
            return class_folder_raw(folder, names, ctx.split)
        if zpath.is_file():
            return zip_raw(zpath, names, ctx.split)
        if tv.is_dir():
            return _torchvision_raw(getattr(tvd, tv_cls), r, ctx.split, names)
        looked += [folder, zpath, tv]
    how = (
        f"{DOWNLOAD_HOW}, or put class folders at <root>/{task}/{ctx.split}/"
        f"<class>/*.jpg (or {ctx.split}.zip) or torchvision's {tv_dir}/ under <root>"
    )
    if not ctx.download:
        raise not_found(ctx.name, looked, how)
    root = download_root(ctx.roots)
    fetch_archive(ctx.name, task, root, tv_dir, how)
    return _torchvision_raw(getattr(tvd, tv_cls), root, ctx.split, names)


def cifar10(ctx: Ctx) -> Raw:
    return _cifar(ctx, "cifar10", "cifar-10-batches-py", "CIFAR10")


def cifar100(ctx: Ctx) -> Raw:
    return _cifar(ctx, "cifar100", "cifar-100-python", "CIFAR100")


def cifar10_1(ctx: Ctx, version: str = "v6") -> Raw:
    files = [f"cifar10.1_{version}_data.npy", f"cifar10.1_{version}_labels.npy"]
    cands = [r / sub for r in ctx.roots for sub in ("cifar10_1", "CIFAR-10.1/datasets", "CIFAR-10.1", ".")]
    found = next((d for d in cands if all((d / f).is_file() for f in files)), None)
    how = f"{DOWNLOAD_HOW}, or put {' and '.join(files)} in <root>/cifar10_1/"
    if found is None and ctx.download:
        root = download_root(ctx.roots)
        found = fetch_files(ctx.name, [f"cifar10_1/{f}" for f in files], root, "cifar10_1", how)
    if found is None:
        raise not_found(ctx.name, [d / files[0] for d in cands], how)
    data, labels = np.load(found / files[0]), np.load(found / files[1]).astype(np.int64)
    return Raw(Arrays(data), labels, [f"{version}[{i}]" for i in range(len(data))], list(classnames("cifar10")))


def stl10(ctx: Ctx) -> Raw:
    """STL-10 test, remapped to CIFAR-10 order, monkey dropped (see module doc and STL10_TO_CIFAR10)."""
    how = f"{DOWNLOAD_HOW} (2.6 GB), or put torchvision's stl10_binary/ under <root>"
    cands = [r / sub for r in ctx.roots for sub in (".", "stl10")]
    root = next(
        (d for d in cands if all((d / "stl10_binary" / f).is_file() for f in ("test_X.bin", "test_y.bin"))), None
    )
    if root is None and ctx.download:
        root = download_root(ctx.roots)
        fetch_archive(ctx.name, "stl10", root, "stl10_binary", how)
    if root is None:
        raise not_found(ctx.name, [d / "stl10_binary" for d in cands], how)
    x_path, y_path = root / "stl10_binary" / "test_X.bin", root / "stl10_binary" / "test_y.bin"
    stl_labels = np.fromfile(y_path, dtype=np.uint8).astype(np.int64) - 1  # file stores 1..10
    images = np.memmap(x_path, dtype=np.uint8, mode="r")
    if images.size != len(stl_labels) * 3 * 96 * 96:
        raise CorruptFileError(
            f"{x_path} has {images.size} bytes, expected {len(stl_labels)} images of 3x96x96; re-download STL-10"
        )
    keep = np.isin(stl_labels, list(STL10_TO_CIFAR10))
    data = images.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)  # column-major planes -> N x H x W x 3, lazy
    labels = np.asarray([STL10_TO_CIFAR10[int(y)] for y in stl_labels[keep]], dtype=np.int64)
    ids = [f"test[{i}]" for i in np.flatnonzero(keep)]
    return Raw(Arrays(data, np.flatnonzero(keep)), labels, ids, list(classnames("cifar10")), size=32)


def cifar10c(ctx: Ctx, family: str, severity: int, official: bool = False) -> Raw:
    """CIFAR-10-C: generated from the CIFAR-10 test set (deterministic in ``seed``), or the released files."""
    if not official:
        base = cifar10(Ctx(ctx.name, ctx.roots, "test", ctx.download, ctx.seed, ctx.size))
        base.corrupt = corrupter(family, severity, ctx.seed)
        base.extra_key = f"corruption={family}:{severity}"
        return base
    cands = [r / "CIFAR-10-C" for r in ctx.roots]
    found = next((d for d in cands if (d / f"{family}.npy").is_file()), None)
    how = "download CIFAR-10-C.tar from zenodo record 2535967 and extract it under <root>, or drop official=True"
    if found is None and ctx.download:
        found = fetch_archive(ctx.name, "cifar10c", download_root(ctx.roots), "CIFAR-10-C", how)
    if found is None:
        raise not_found(ctx.name, [d / f"{family}.npy" for d in cands], how)
    rows = slice((severity - 1) * 10000, severity * 10000)
    data = np.load(found / f"{family}.npy", mmap_mode="r")[rows]
    labels = np.load(found / "labels.npy")[rows].astype(np.int64)
    return Raw(
        Arrays(data),
        labels,
        [f"{family}{severity}[{i}]" for i in range(len(data))],
        list(classnames("cifar10")),
        extra_key=f"official={family}:{severity}",
    )
