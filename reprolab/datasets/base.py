"""``ImageSet``: one torch Dataset type for every ID, shift and OOD set of the kit.

An item is ``(FloatTensor[3,H,W] in [0,1], int label)``. Labels are indices into ``classnames``, the class order of
the *ID task* (e.g. CIFAR-10's airplane..truck for STL-10 too); OOD sets have label -1. All images of one set have
the same H = W: native size for CIFAR-style sets, otherwise ``Resize(size)`` (shorter side, bilinear, antialiased)
followed by ``CenterCrop(size)`` - the usual OOD-benchmark protocol (e.g. Textures/LSUN resized to 32 for CIFAR).
Unreadable image files raise :class:`~reprolab.errors.CorruptFileError` naming the file; nothing is skipped.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from reprolab.errors import CorruptFileError, ReprolabError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


def open_image(src, name: str) -> Image.Image:
    """Decode ``src`` (a path or bytes) fully to RGB; any decoder failure becomes CorruptFileError naming ``name``."""
    try:
        with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
            im.load()  # force decoding now, so truncated files fail here and not later
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise CorruptFileError(
            f"cannot read image file {name} ({type(e).__name__}: {e}); delete or re-download that file"
        ) from e


def list_class_folders(root: Path, classes: list[str] | None = None, exts=IMAGE_EXTS):
    """(paths, labels, class_folder_names) of ``root/<class>/<file>``, sorted by class then file name.

    With ``classes`` given, those folder names in that order define labels 0..C-1 (missing folders are an error);
    otherwise all sub-folders in sorted order.
    """
    found = sorted(d.name for d in os.scandir(root) if d.is_dir())
    names = list(classes) if classes is not None else found
    missing = [c for c in names if c not in found]
    if missing:
        raise ReprolabError(f"{root} lacks class folders {missing[:5]}; the layout must be {root}/<class>/<image>")
    paths, labels = [], []
    for k, c in enumerate(names):
        files = sorted(f.name for f in os.scandir(root / c) if f.name.lower().endswith(exts))
        paths += [root / c / f for f in files]
        labels += [k] * len(files)
    return paths, labels, names


def list_images(root: Path, exts=IMAGE_EXTS) -> list[Path]:
    """All image files below ``root`` (recursively), sorted - for unlabelled OOD folders."""
    out = [Path(d) / f for d, _, fs in os.walk(root) for f in fs if f.lower().endswith(exts)]
    return sorted(out)


class ZipReader:
    """Reads members of a zip in place (no unzipping); reopens the file per process so DataLoader workers work."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._zip, self._pid = None, None

    def names(self) -> list[str]:
        with zipfile.ZipFile(self.path) as z:
            return z.namelist()

    def read(self, member: str) -> bytes:
        if self._zip is None or self._pid != os.getpid():
            self._zip, self._pid = zipfile.ZipFile(self.path), os.getpid()
        try:
            return self._zip.read(member)
        except (zipfile.BadZipFile, KeyError, OSError) as e:
            raise CorruptFileError(f"cannot read {member} from {self.path} ({e}); re-download the zip") from e

    def __getstate__(self):
        return {"path": self.path, "_zip": None, "_pid": None}


class Files:
    """Reader for a list of image paths (picklable, so DataLoader workers can use it)."""

    def __init__(self, paths):
        self.paths = list(paths)

    def __call__(self, i: int):
        return open_image(self.paths[i], str(self.paths[i]))


class ZipMembers:
    """Reader for image members of a zip file, read in place."""

    def __init__(self, zr: ZipReader, names: list[str]):
        self.zr, self.names = zr, names

    def __call__(self, i: int):
        return open_image(self.zr.read(self.names[i]), f"{self.zr.path}:{self.names[i]}")


class Arrays:
    """Reader for images already in memory (N x H x W [x C] uint8 or float array)."""

    def __init__(self, arr, index=None):
        self.arr, self.index = arr, index  # index: optional raw-item -> array-row map (lazy selection)

    def __call__(self, i: int):
        return self.arr[i if self.index is None else self.index[i]]


@dataclass
class Ctx:
    """What every dataset loader gets: the set's name, roots to search, split, download flag, seed, size."""

    name: str
    roots: list[Path]
    split: str
    download: bool
    seed: int
    size: int | None = None


@dataclass
class Raw:
    """What a loader hands to ImageSet: how to read item i, all labels, ids (file names) and metadata."""

    read: Callable[[int], object]  # i -> PIL image or uint8/float array HxW(x3)
    labels: np.ndarray  # int64, -1 for OOD
    ids: list[str]  # stable per-item identifiers (relative file names or "name[i]")
    classnames: list[str]
    size: int | None = None  # default output side; None = native
    extra_key: str = ""  # anything else that changes the pixels (corruption, class set...)
    class_subset: list[int] | None = None  # ID-class indices that exist in this set (ImageNet-A/R 200)
    corrupt: Callable | None = None  # (float HxWx3 array, raw index) -> array, for generated shifts
    info: dict = field(default_factory=dict)


def to_array(img) -> np.ndarray:
    """PIL image / uint8 array / float array -> float32 HxWx3 in [0,1]."""
    a = np.asarray(img)
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return a[:, :, :3]


def fit_size(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize the shorter side to ``size`` (bilinear, antialias) and center-crop to size x size."""
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x
    if min(x.shape[-2:]) != size:
        x = TF.resize(x, size, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(x, [size, size]).clamp_(0, 1)


class ImageSet(Dataset):
    """A dataset of ``(image [3,H,W] in [0,1], label)`` with the metadata the harness needs (see module doc)."""

    def __init__(self, raw: Raw, *, name: str, split: str, kind: str, id_task: str, indices, size, subset, seed):
        self.raw, self.name, self.split, self.kind, self.id_task = raw, name, split, kind, id_task
        self.indices = np.asarray(indices, dtype=np.int64)
        self.classnames = list(raw.classnames)
        self.size, self.subset, self.seed = size, subset, seed
        self.labels = torch.as_tensor(raw.labels[self.indices], dtype=torch.long)
        self.class_subset = None if raw.class_subset is None else torch.as_tensor(raw.class_subset)
        side = size if size is not None else "native"
        extra = f"|{raw.extra_key}" if raw.extra_key else ""
        self.key = f"{name}|{split}|n={len(self.indices)}|subset={subset}|seed={seed}|size={side}{extra}"

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def ids(self) -> list[str]:
        """Identifiers (file names) of the selected items, in order."""
        return [self.raw.ids[i] for i in self.indices]

    def __getitem__(self, j: int):
        i = int(self.indices[j])
        a = to_array(self.raw.read(i))
        if self.raw.corrupt is not None:
            a = self.raw.corrupt(a, i)
        x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).clamp_(0, 1)
        return fit_size(x, self.size), int(self.raw.labels[i])

    def loader(self, batch_size: int = 256, shuffle: bool = False, num_workers: int = 0, **kw) -> DataLoader:
        """A DataLoader over this set (num_workers=0 by default: small machines, no fork surprises)."""
        return DataLoader(self, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, **kw)

    def tensors(self, batch_size: int = 512, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """All images and labels at once: (FloatTensor[N,3,H,W], LongTensor[N]). CIFAR-10 test: a few seconds."""
        xs, ys = [], []
        for x, y in tqdm(self.loader(batch_size), desc=self.name, disable=not progress, leave=False):
            xs.append(x)
            ys.append(y)
        if not xs:
            return torch.empty(0, 3, self.size or 0, self.size or 0), torch.empty(0, dtype=torch.long)
        return torch.cat(xs), torch.cat(ys)

    def restrict_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Set logits of ID classes absent from this set to -inf (ImageNet-A/R 200-class protocol); else no-op."""
        if self.class_subset is None:
            return logits
        mask = torch.full((logits.shape[-1],), float("-inf"), device=logits.device, dtype=logits.dtype)
        mask[self.class_subset.to(logits.device)] = 0
        return logits + mask

    def __repr__(self) -> str:
        return f"ImageSet({self.key}, kind={self.kind}, id_task={self.id_task}, classes={len(self.classnames)})"
