"""The official data loader's single resize, as a view of an :class:`~reprolab.datasets.base.ImageSet`.

The official reprogrammer code reads each image file and resizes it *once*, straight to the reprogrammer's
``image_res`` r, with PIL:

    x = ToTensor( CenterCrop_r( Resize_r^bicubic( PIL image ) ) )      (uint8 pixels k, as k/255)

A kit set hands every method of a run one image per item at its ``size``, which is 224 px (bilinear) for ImageNet.
A reprogrammer that reduces that image to r therefore resizes twice: raw → 224 → r. :func:`loader_view` gives the
same items, in the same order and with the same labels, re-read and resized once in the official way. Only the
methods that ask for it read the view (``Reprogrammer(reduce_from="raw")``, through ``Method.input_view``). The
other methods keep the set itself. The view's ``key`` adds ``|loader=pil-bicubic-<r>``, so cached features never
mix with the set's own.

Items that are not PIL images (in-memory arrays such as CIFAR's) and generated shifts (``Raw.corrupt``) go through
a uint8 PIL image first: float pixels are multiplied by 255 and truncated, as torchvision's ``to_pil_image`` does.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from reprolab.datasets.base import ImageSet, to_array
from reprolab.errors import ReprolabError


class LoaderView(ImageSet):
    """An ImageSet whose item j is the raw image resized once to ``size`` with PIL bicubic + centre crop."""

    source_key: str

    def pil_image(self, i: int) -> Image.Image:
        """Raw item ``i`` as the official loader opens it: an RGB PIL image (generated shift applied first)."""
        img = self.raw.read(i)
        if isinstance(img, Image.Image) and self.raw.corrupt is None:
            return img.convert("RGB")
        a = np.asarray(img)
        if a.dtype == np.uint8 and self.raw.corrupt is None:
            return Image.fromarray(np.ascontiguousarray(to_uint8_rgb(a)))
        a = to_array(img)
        if self.raw.corrupt is not None:
            a = self.raw.corrupt(a, i)
        return TF.to_pil_image(torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).clamp(0, 1))

    def __getitem__(self, j: int):
        i = int(self.indices[j])
        img = TF.resize(self.pil_image(i), self.size, InterpolationMode.BICUBIC)
        return TF.to_tensor(TF.center_crop(img, self.size)), int(self.raw.labels[i])


def to_uint8_rgb(a: np.ndarray) -> np.ndarray:
    """H×W, H×W×1 or H×W×C (C ≥ 3) uint8 → H×W×3."""
    if a.ndim == 2:
        a = a[:, :, None]
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[:, :, :3]


def loader_view(dataset, size: int) -> LoaderView:
    """The items of ``dataset`` read as the official loader reads them, at ``size`` (see the module docstring)."""
    if not isinstance(dataset, ImageSet):
        raise ReprolabError(
            f"reduce_from='raw' re-reads the image files of a kit ImageSet; {getattr(dataset, 'name', '?')} is a "
            f"{type(dataset).__name__}. Load it with reprolab.load_dataset, or use reduce_from='dataset'"
        )
    if not isinstance(size, int) or size < 1:
        raise ReprolabError(f"loader size must be a positive integer (the reprogrammer's image_res), got {size!r}")
    if isinstance(dataset, LoaderView) and dataset.size == size:
        return dataset
    view = LoaderView.__new__(LoaderView)
    view.__dict__.update(dataset.__dict__)  # the same raw items, indices, labels, names and kind
    view.source_key = getattr(dataset, "source_key", dataset.key)
    view.size = size
    view.key = f"{view.source_key}|loader=pil-bicubic-{size}"
    return view
