"""The dataset registry: one entry per set (kind id/shift/ood, ID task, description, how to get it), and
``load_dataset`` which turns a name into an :class:`~reprolab.datasets.base.ImageSet`.

The paper (Geng & Chen, arXiv 2403.10800, Sec. 5) evaluates CIFAR-10 and ImageNet models on ID accuracy,
covariate-shift accuracy (CIFAR-10.1, STL-10, CIFAR-10-C; ImageNet-V2/-A/-R/-Sketch) and OOD detection
(SVHN, Textures, LSUN, iSUN, Places365; iNaturalist, SUN, Places, Textures).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from reprolab.datasets import cifar, imagefolder, imagenet, ood
from reprolab.datasets.base import Ctx, ImageSet
from reprolab.datasets.classnames import classnames
from reprolab.datasets.corruptions import FAMILIES, SEVERITIES
from reprolab.datasets.roots import allow_download, data_roots
from reprolab.datasets.subsets import balanced_indices, indices_from_manifest, read_manifest
from reprolab.errors import DatasetNotFoundError, ReprolabError

TASK_SIZE = {"cifar10": 32, "imagenet": 224}  # default side of OOD images for each ID task
ALIASES = {"dtd": "textures", "cifar10.1": "cifar10_1"}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: str  # "id" | "shift" | "ood"
    id_tasks: tuple[str, ...]  # ID tasks this set is used with; the first is the default
    description: str
    how_to_get: str
    loader: Callable
    splits: tuple[str, ...] = ("test",)

    @property
    def id_task(self) -> str:
        return self.id_tasks[0]


REGISTRY: dict[str, DatasetInfo] = {}


def register(name, kind, id_tasks, loader, description, how_to_get, splits=("test",)):
    tasks = (id_tasks,) if isinstance(id_tasks, str) else tuple(id_tasks)
    REGISTRY[name] = DatasetInfo(name, kind, tasks, description, how_to_get, loader, tuple(splits))


C10, IN, BOTH = "cifar10", "imagenet", ("cifar10", "imagenet")
TV, TT = "downloads itself with internet (torchvision's archive)", ("test", "train")
register(
    "cifar10",
    "id",
    C10,
    cifar.cifar10,
    "CIFAR-10, 10 classes, 32 px (the paper's ID task)",
    f"{TV}, or class folders <root>/cifar10/test/<class>/ + train.zip",
    TT,
)
register(
    "cifar100",
    "id",
    "cifar100",
    cifar.cifar100,
    "CIFAR-100, 100 classes, 32 px",
    f"{TV}, or class folders <root>/cifar100/<split>/<class>/",
    TT,
)
register(
    "fashion_mnist",
    "id",
    "fashion_mnist",
    ood.fashion_mnist,
    "Fashion-MNIST, 10 classes, 28 px grey",
    "downloads itself with internet (torchvision's files), or apt-get install dataset-fashion-mnist",
    TT,
)
register(
    "imagenet",
    "id",
    IN,
    imagenet.imagenet,
    "ImageNet-1k val (test) / train, 1000 classes",
    "user-provided class folders <root>/imagenet/val/<wnid>/",
    ("test", "val", "train"),
)
register(
    "cifar10_1",
    "shift",
    C10,
    cifar.cifar10_1,
    "CIFAR-10.1 v6, 2,000 new test images (Recht et al.)",
    "downloads itself with internet (official GitHub .npy files)",
)
register(
    "stl10",
    "shift",
    C10,
    cifar.stl10,
    "STL-10 test, remapped to CIFAR-10 classes, monkey dropped (7,200)",
    f"{TV}, 2.6 GB",
)
for fam in FAMILIES:
    for sev in SEVERITIES:
        register(
            f"cifar10c:{fam}:{sev}",
            "shift",
            C10,
            lambda ctx, official=False, _f=fam, _s=sev: cifar.cifar10c(ctx, _f, _s, official),
            f"CIFAR-10 test with {fam} at severity {sev} (CIFAR-10-C tables, generated offline)",
            "generated from cifar10 test; official=True reads the released CIFAR-10-C .npy files",
        )
register(
    "imagenet_v2",
    "shift",
    IN,
    imagenet.imagenet_v2,
    "ImageNet-V2 matched-frequency, 10,000 images",
    "downloads itself with internet, or <root>/imagenetv2-matched-frequency-format-val/",
)
register(
    "imagenet_a",
    "shift",
    IN,
    imagenet.imagenet_a,
    "ImageNet-A, 7,500 natural adversarial images, 200 classes",
    "downloads itself with internet, or <root>/imagenet-a/",
)
register(
    "imagenet_r",
    "shift",
    IN,
    imagenet.imagenet_r,
    "ImageNet-R, 30,000 renditions, 200 classes",
    "downloads itself with internet, or <root>/imagenet-r/",
)
register(
    "imagenet_sketch",
    "shift",
    IN,
    imagenet.imagenet_sketch,
    "ImageNet-Sketch, 50,889 sketches",
    "user-provided <root>/imagenet-sketch/sketch/<wnid>/",
)
register("svhn", "ood", C10, ood.svhn, "SVHN test, 26,032 house-number crops", f"{TV}")
register(
    "textures",
    "ood",
    BOTH,
    ood.textures,
    "Textures = full DTD, 5,640 images, 47 classes",
    f"{TV} or <root>/dtd/dtd/images/",
)
register(
    "dtd10",
    "ood",
    C10,
    ood.dtd10,
    "10 DTD classes, 1,200 images (the course copy; not the full benchmark)",
    "built from the DTD download with internet (625 MB), or the course copy at <root>/dtd10/",
)
register("lsun_crop", "ood", C10, ood.lsun_crop, "LSUN crop (ODIN release), 10,000 images", "<root>/LSUN/")
register("lsun_resize", "ood", C10, ood.lsun_resize, "LSUN resize (ODIN release), 10,000", "<root>/LSUN_resize/")
register("isun", "ood", C10, ood.isun, "iSUN (ODIN release), 8,925 images", "<root>/iSUN/")
register("places365", "ood", C10, ood.places365, "Places365 images (folders)", "<root>/places365/")
register(
    "fashion_mnist_ood",
    "ood",
    C10,
    ood.fashion_mnist_ood,
    "Fashion-MNIST test as far-OOD, 10,000",
    "downloads itself with internet (torchvision's files, 30 MB), or apt-get install dataset-fashion-mnist",
    TT,
)
register(
    "sklearn_digits",
    "ood",
    C10,
    ood.sklearn_digits,
    "scikit-learn 8x8 digits upscaled, 1,797 (offline)",
    "ships with scikit-learn",
)
register("uniform_noise", "ood", BOTH, ood.uniform_noise, "synthetic U(0,1) pixel noise (n=1000)", "generated")
register(
    "gaussian_noise_images", "ood", BOTH, ood.gaussian_noise_images, "synthetic N(0.5,0.25) noise (n=1000)", "generated"
)
register("inaturalist", "ood", IN, imagenet.inaturalist, "iNaturalist OOD subset (MOS), 10,000", "<root>/iNaturalist/")
register("sun", "ood", IN, imagenet.sun, "SUN OOD subset (MOS), 10,000", "<root>/SUN/")
register("places", "ood", IN, imagenet.places, "Places OOD subset (MOS), 10,000", "<root>/Places/")


def dataset_names(id_task: str | None = None, kind: str | None = None) -> list[str]:
    """Registered names, optionally only those used with ``id_task`` and/or of ``kind`` (id/shift/ood)."""
    return [
        n
        for n, i in REGISTRY.items()
        if (id_task is None or id_task in i.id_tasks) and (kind is None or i.kind == kind)
    ]


def load_dataset(
    name: str,
    split: str = "test",
    root=None,
    subset: int | None = None,
    seed: int = 0,
    size: int | None = None,
    download: bool | str = "auto",
    manifest=None,
    id_task: str | None = None,
    **kw,
) -> ImageSet:
    """Load a registered set as an ImageSet.

    root: data folder(s) (default $REPROLAB_DATA, else the kit's data folder: see :mod:`.roots`);
    download: "auto" (default) fetches a missing set that has a download source, once, into the first writable
    root, with a progress bar and a checksum (not when $REPROLAB_OFFLINE is set); True: always try; False: never;
    subset: class-balanced size (fast mode);
    seed: subset draw and generated pixels (corruptions, noise); size: output side (default: native for ID/shift,
    32 for CIFAR OOD, 224 for ImageNet); manifest: JSON written by ``save_manifest`` fixing the items;
    id_task: for sets shared by several tasks; kw: per-set options (e.g. classes="1000", path=..., official=True).
    """
    name = ALIASES.get(name, name)
    own = imagefolder.is_imagefolder(id_task)  # a class's own photos as the ID task (reprolab/datasets/imagefolder.py)
    if imagefolder.is_imagefolder(name):
        names = imagefolder.task_classnames(id_task) if own else classnames(id_task) if id_task else ()
        return imagefolder.load_imagefolder(name, split, subset, seed, size, id_task, names)
    info = REGISTRY.get(name)
    if info is None:
        close = difflib.get_close_matches(name, list(REGISTRY), n=3)
        raise ReprolabError(
            f"unknown dataset '{name}'"
            + (f"; did you mean {', '.join(close)}?" if close else "; see dataset_names() for the list")
        )
    task = id_task or info.id_task
    if task not in info.id_tasks and not (own and info.kind == "ood"):
        raise ReprolabError(f"'{name}' is used with ID task(s) {list(info.id_tasks)}, not '{task}'")
    if split not in info.splits:
        raise ReprolabError(f"'{name}' has split(s) {list(info.splits)}, not '{split}'")
    m = read_manifest(manifest) if manifest is not None else None
    if m is not None:
        if m["name"] != name or m["split"] != split:
            raise ReprolabError(f"manifest {manifest} is for {m['name']}/{m['split']}, not {name}/{split}")
        subset, seed = m["subset"], m["seed"]
    ctx = Ctx(name, data_roots(root), split, allow_download(download), seed, size)
    try:
        inspect.signature(info.loader).bind(ctx, **kw)
    except TypeError:
        opts = [p for p in inspect.signature(info.loader).parameters if p != "ctx" and not p.startswith("_")]
        raise ReprolabError(f"'{name}' does not take option(s) {sorted(kw)}; it accepts {opts or 'none'}") from None
    raw = info.loader(ctx, **kw)
    if not raw.classnames:
        raw.classnames = list(imagefolder.task_classnames(task) if own else classnames(task))
    if size is None:
        size = TASK_SIZE.get(task, raw.size) if info.kind == "ood" else raw.size
    indices = indices_from_manifest(m, raw.ids) if m is not None else balanced_indices(raw.labels, subset, seed)
    return ImageSet(
        raw, name=name, split=split, kind=info.kind, id_task=task, indices=indices, size=size, subset=subset, seed=seed
    )


def load_available(names, split: str = "test", say=print, **kw) -> list[ImageSet]:
    """Load each of ``names`` that can be found or downloaded; skip each that cannot, with one line from ``say``.

    For optional pieces (covariate-shift and OOD sets): the line reads ``not evaluated: NAME (why); how to get
    it: HOW``. Other errors (a corrupt file, a bad option) still raise. Keyword arguments go to :func:`load_dataset`.
    """
    out = []
    for name in names:
        try:
            out.append(load_dataset(name, split, **kw))
        except DatasetNotFoundError as e:
            say(skip_line(name, e))
    return out


def skip_line(name: str, err: Exception | None = None, why: str = "not found on this machine") -> str:
    """``not evaluated: NAME (why); how to get it: HOW`` - the one line for an optional set that is missing."""
    text = str(err or "")
    why = text.split("; ", 1)[0] if text.startswith("downloading") else why
    info = REGISTRY.get(ALIASES.get(name, name))
    how = info.how_to_get if info is not None else "see dataset_names()"
    return f"not evaluated: {name} ({why}); how to get it: {how}"
