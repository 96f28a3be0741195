"""Out-of-distribution sets for the CIFAR-10 task (label -1), plus Fashion-MNIST as an ID task.

Standard CIFAR OOD benchmark sets (as in the paper, Sec. 5, and the ODIN/Energy protocols): SVHN (torchvision),
Textures = full DTD (torchvision layout), LSUN-crop, LSUN-resize, iSUN (the ODIN release folders) and Places365
(class folders or torchvision's ``val_256``). Every folder set is read recursively and resized to ``size``
(default 32: ``Resize(32)`` + ``CenterCrop(32)``). ``path=`` points any folder set at an explicit directory.

Small sets for the course: ``dtd10`` (10 DTD classes, 32px or 224px variant: the course copy, or built from the
DTD download by :mod:`.dtd10`), ``fashion_mnist_ood`` (Debian package ``dataset-fashion-mnist`` puts the IDX files
in /usr/share/datasets/fashion-mnist; elsewhere torchvision's download), and, with no download at all,
``sklearn_digits`` (scikit-learn's 8x8 digits, upscaled, 3 channels) and the synthetic ``uniform_noise`` /
``gaussian_noise_images`` (per-index seeded).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from reprolab.datasets import dtd10 as dtd10_build
from reprolab.datasets.base import Arrays, Ctx, Files, Raw, list_images
from reprolab.datasets.classnames import classnames
from reprolab.datasets.download import fetch_archive, fetch_files
from reprolab.datasets.roots import DOWNLOAD_HOW, download_root, find, locate, not_found, system_dir
from reprolab.errors import CorruptFileError, ReprolabError

ODIN_HOW = (
    "get the ODIN release of {x} (github.com/facebookresearch/odin, README links) and extract it to "
    "<root>/{d}/, or pass path=<folder of images>"
)


def _ood(paths_or_reader, n: int, ids, size=32) -> Raw:
    reader = paths_or_reader if callable(paths_or_reader) else Files(paths_or_reader)
    return Raw(reader, np.full(n, -1, dtype=np.int64), list(ids), [], size=size)


def folder_set(ctx: Ctx, candidates: list[str], how: str, path=None, size=32) -> Raw:
    """All images below the first existing candidate folder (or ``path``), as an unlabelled OOD set."""
    roots = [Path(path)] if path is not None else ctx.roots
    folder = locate(ctx.name, roots, ["."] if path is not None else candidates, how, test=Path.is_dir)
    files = list_images(folder)
    if not files:
        raise not_found(ctx.name, [folder], f"{folder} holds no image files; " + how)
    return _ood(files, len(files), [str(p.relative_to(folder)) for p in files], size)


def lsun_crop(ctx, path=None):
    return folder_set(
        ctx, ["LSUN", "LSUN_C", "lsun_crop", "LSUN_crop"], ODIN_HOW.format(x="LSUN (crop)", d="LSUN"), path
    )


def lsun_resize(ctx, path=None):
    return folder_set(
        ctx, ["LSUN_resize", "LSUN_R", "lsun_resize"], ODIN_HOW.format(x="LSUN (resize)", d="LSUN_resize"), path
    )


def isun(ctx, path=None):
    return folder_set(ctx, ["iSUN", "isun"], ODIN_HOW.format(x="iSUN", d="iSUN"), path)


def places365(ctx, path=None):
    how = "put Places365 class folders (or torchvision's val_256/) under <root>/places365/, or pass path="
    return folder_set(ctx, ["places365", "Places365", "places365/val_256"], how, path)


def dtd_images(ctx, how: str) -> Path:
    """DTD's ``images/`` folder: found under a root, else (downloads allowed) fetched from the official archive."""
    found = find(ctx.roots, list(dtd10_build.IMAGE_DIRS))
    if found is None and ctx.download:
        found = fetch_archive(ctx.name, "dtd", download_root(ctx.roots), "dtd", how) / "images"
    return found


def textures(ctx, path=None):
    """Full DTD (5,640 images, 47 classes) = the 'Textures' OOD benchmark."""
    how = f"{DOWNLOAD_HOW} (DTD, 625 MB), or put DTD's images/ under <root>/dtd/"
    if path is None:
        dtd_images(ctx, how)
    return folder_set(ctx, [*dtd10_build.IMAGE_DIRS, "textures"], how, path, size=32)


def dtd10(ctx, path=None):
    """The 10-class DTD subset (1,200 images): 32px PNGs, or 224px JPEGs for size > 32 (see :mod:`.dtd10`)."""
    variant = "32px" if (ctx.size or 32) <= 32 else "224px"
    how = (
        f"{DOWNLOAD_HOW}: it is built from the DTD archive (625 MB), or put the course copy (shared/datasets/dtd10) "
        f"at <root>/dtd10/{variant}/<class>/"
    )
    if path is None and ctx.download and find(ctx.roots, [f"dtd10/{variant}"]) is None:
        images = dtd_images(ctx, how)
        root = download_root(ctx.roots)
        try:
            dtd10_build.build(images, root)
        except (OSError, ValueError) as e:
            raise not_found(ctx.name, [images], f"building it from {images} failed ({e}); {how}") from e
    return folder_set(ctx, [f"dtd10/{variant}"], how, path)


def svhn(ctx):
    import torchvision.datasets as tvd

    how = f"{DOWNLOAD_HOW} (SVHN test, 64 MB), or put test_32x32.mat in <root>/svhn/"
    cands = [r / sub for r in ctx.roots for sub in ("svhn", "SVHN", ".")]
    root = next((d for d in cands if (d / "test_32x32.mat").is_file()), None)
    if root is None and ctx.download:
        root = fetch_files(ctx.name, ["svhn/test_32x32.mat"], download_root(ctx.roots), "svhn", how)
    if root is None:
        raise not_found(ctx.name, [d / "test_32x32.mat" for d in cands], how)
    data = tvd.SVHN(str(root), split="test", download=False).data.transpose(0, 2, 3, 1)
    return _ood(Arrays(data), len(data), [f"test[{i}]" for i in range(len(data))])


def _read_idx(path: Path) -> np.ndarray:
    """IDX file (MNIST format), optionally gzipped -> uint8 array."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        ndim = raw[3]
        shape = [int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim)]
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except (OSError, EOFError, ValueError, IndexError) as e:
        raise CorruptFileError(f"cannot read IDX file {path} ({e}); delete it and download it again") from e


def fashion_arrays(ctx: Ctx):
    stem = {"test": "t10k", "train": "train"}.get(ctx.split)
    if stem is None:
        raise ReprolabError(f"'{ctx.name}' has splits 'train' and 'test', not '{ctx.split}'")
    dirs = [r / sub for r in ctx.roots for sub in ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw")]
    dirs.append(system_dir("fashion-mnist"))
    how = (
        f"{DOWNLOAD_HOW} (torchvision's Fashion-MNIST files), or on Debian/Ubuntu: "
        f"apt-get install -y dataset-fashion-mnist (installs {system_dir('fashion-mnist')})"
    )
    files = [f"{stem}-images-idx3-ubyte.gz", f"{stem}-labels-idx1-ubyte.gz"]
    if ctx.download and not any(all((d / f).is_file() or (d / f[:-3]).is_file() for f in files) for d in dirs):
        keys = [f"fashion_mnist/{f}" for f in files]
        dirs.insert(0, fetch_files(ctx.name, keys, download_root(ctx.roots), "FashionMNIST/raw", how))
    for d in dirs:
        for ext in (".gz", ""):
            img, lab = d / f"{stem}-images-idx3-ubyte{ext}", d / f"{stem}-labels-idx1-ubyte{ext}"
            if img.is_file() and lab.is_file():
                return _read_idx(img), _read_idx(lab).astype(np.int64)
    raise not_found(ctx.name, dirs, how)


def fashion_mnist(ctx):
    """Fashion-MNIST as its own ID task (native 28 px, 10 classes)."""
    x, y = fashion_arrays(ctx)
    return Raw(Arrays(x), y, [f"{ctx.split}[{i}]" for i in range(len(x))], list(classnames("fashion_mnist")))


def fashion_mnist_ood(ctx):
    x, _ = fashion_arrays(ctx)
    return _ood(Arrays(x), len(x), [f"{ctx.split}[{i}]" for i in range(len(x))])


def sklearn_digits(ctx):
    from sklearn.datasets import load_digits

    x = (load_digits().images / 16.0).astype(np.float32)  # 1,797 x 8 x 8 in [0,1]
    return _ood(Arrays(x), len(x), [f"digits[{i}]" for i in range(len(x))])


class Noise:
    """Per-index seeded synthetic images: uniform U(0,1) or Gaussian N(0.5, 0.25^2) clipped to [0,1]."""

    def __init__(self, kind: str, seed: int, side: int):
        self.kind, self.seed, self.side = kind, seed, side

    def __call__(self, i: int):
        rng = np.random.default_rng([self.seed, i])
        shape = (self.side, self.side, 3)
        a = rng.random(shape) if self.kind == "uniform" else np.clip(rng.normal(0.5, 0.25, shape), 0, 1)
        return a.astype(np.float32)


def uniform_noise(ctx, n: int = 1000):
    return _ood(Noise("uniform", ctx.seed, ctx.size or 32), n, [f"uniform[{i}]" for i in range(n)])


def gaussian_noise_images(ctx, n: int = 1000):
    return _ood(Noise("gaussian", ctx.seed, ctx.size or 32), n, [f"gaussian[{i}]" for i in range(n)])
