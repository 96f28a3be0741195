"""Out-of-distribution sets for the CIFAR-10 task (label -1), plus Fashion-MNIST as an ID task.

Standard CIFAR OOD benchmark sets (as in the paper, Sec. 5, and the ODIN/Energy protocols): SVHN (torchvision),
Textures = full DTD (torchvision layout), LSUN-crop, LSUN-resize, iSUN (the ODIN release folders) and Places365
(class folders or torchvision's ``val_256``). Every folder set is read recursively and resized to ``size``
(default 32: ``Resize(32)`` + ``CenterCrop(32)``). ``path=`` points any folder set at an explicit directory.

Offline sets that need no download: ``dtd10`` (10 DTD classes shipped with the course data, 32px or 224px
variant), ``fashion_mnist_ood`` (Debian package ``dataset-fashion-mnist`` puts the IDX files in
/usr/share/datasets/fashion-mnist), ``sklearn_digits`` (scikit-learn's 8x8 digits, upscaled, 3 channels) and the
synthetic ``uniform_noise`` / ``gaussian_noise_images`` (per-index seeded).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from reprolab.datasets.base import Arrays, Ctx, Files, Raw, list_images
from reprolab.datasets.classnames import classnames
from reprolab.datasets.roots import download_root, locate, not_found, try_download
from reprolab.errors import CorruptFileError, ReprolabError

FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
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


def textures(ctx, path=None):
    """Full DTD (5,640 images, 47 classes) = the 'Textures' OOD benchmark."""
    how = "pass download=True on a machine with internet (torchvision DTD), or put DTD's images/ under <root>/dtd/"
    cands = ["dtd/dtd/images", "dtd/images", "textures/images", "textures"]
    if path is None and ctx.download and not any((r / c).is_dir() for r in ctx.roots for c in cands):
        import torchvision.datasets as tvd

        root = download_root(ctx.roots[0])
        try_download(ctx.name, lambda: tvd.DTD(str(root), download=True), how)
    return folder_set(ctx, cands, how, path, size=32)


def dtd10(ctx, path=None):
    """The 10-class DTD subset (1,200 images) of the course data: 32px PNGs, or 224px JPEGs for size > 32."""
    variant = "32px" if (ctx.size or 32) <= 32 else "224px"
    how = f"put the course copy at <root>/dtd10/{variant}/<class>/ (it is in shared/datasets/dtd10)"
    return folder_set(ctx, [f"dtd10/{variant}"], how, path)


def svhn(ctx):
    import torchvision.datasets as tvd

    how = "pass download=True on a machine with internet (torchvision SVHN), or put test_32x32.mat in <root>/svhn/"
    cands = [r / sub for r in ctx.roots for sub in ("svhn", "SVHN", ".")]
    root = next((d for d in cands if (d / "test_32x32.mat").is_file()), None)
    if root is None and ctx.download:
        root = download_root(ctx.roots[0]) / "svhn"
        try_download(ctx.name, lambda: tvd.SVHN(str(root), split="test", download=True), how)
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
        raise CorruptFileError(f"cannot read IDX file {path} ({e}); reinstall dataset-fashion-mnist") from e


def fashion_arrays(ctx: Ctx):
    stem = {"test": "t10k", "train": "train"}.get(ctx.split)
    if stem is None:
        raise ReprolabError(f"'{ctx.name}' has splits 'train' and 'test', not '{ctx.split}'")
    dirs = [r / sub for r in ctx.roots for sub in ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw")]
    dirs.append(FASHION_SYSTEM_DIR)
    how = (
        "on Debian/Ubuntu run: apt-get install -y dataset-fashion-mnist (installs "
        f"{FASHION_SYSTEM_DIR}), or pass download=True on a machine with internet"
    )
    if ctx.download and not any((d / f"{stem}-images-idx3-ubyte.gz").is_file() for d in dirs):
        import torchvision.datasets as tvd

        root = download_root(ctx.roots[0])
        try_download(ctx.name, lambda: tvd.FashionMNIST(str(root), train=stem == "train", download=True), how)
        dirs.insert(0, root / "FashionMNIST" / "raw")
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
