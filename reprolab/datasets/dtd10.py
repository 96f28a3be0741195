"""``dtd10``: 10 classes of DTD (Describable Textures, Cimpoi et al., CVPR 2014), built from the official download.

The course copy (``shared/datasets/dtd10``, see its README) holds the first 10 DTD classes in alphabetical order,
all 120 original JPEGs of each, in two variants made with torchvision and Pillow from the images converted to RGB:

* ``32px/<class>/<stem>.png``: ``Resize(32, bilinear, antialias)`` + ``CenterCrop(32)``, PNG (lossless);
* ``224px/<class>/<stem>.jpg``: ``Resize(224, bicubic, antialias)`` + ``CenterCrop(224)``, JPEG quality 95.

:func:`build` applies the same recipe to the ``images/`` folder of the DTD archive (the one torchvision downloads),
so a machine without the course copy gets the same images: checked on all 1,200 originals against the course
copy, every 32-px PNG and 224-px JPEG came out byte-identical (torchvision 0.29.1, Pillow 13.0.0). The result is
written to a temporary folder and renamed to ``<root>/dtd10`` when complete.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torchvision.transforms as T
from PIL import Image
from tqdm.auto import tqdm

from reprolab.datasets.download import place

CLASSES = (
    "banded",
    "blotchy",
    "braided",
    "bubbly",
    "bumpy",
    "chequered",
    "cobwebbed",
    "cracked",
    "crosshatched",
    "crystalline",
)
VARIANTS = {  # name: (side, interpolation, format, save options, suffix)
    "32px": (32, T.InterpolationMode.BILINEAR, "PNG", {"optimize": True}, ".png"),
    "224px": (224, T.InterpolationMode.BICUBIC, "JPEG", {"quality": 95}, ".jpg"),
}
IMAGE_DIRS = ("dtd/images", "dtd/dtd/images", "textures/images")  # DTD's own layout, torchvision's, a renamed copy


def build(images: Path, root: Path) -> Path:
    """Write ``root/dtd10/{32px,224px}/<class>/`` from DTD's ``images/<class>/*.jpg``; returns ``root/dtd10``."""
    missing = [c for c in CLASSES if not (images / c).is_dir()]
    if missing:
        raise FileNotFoundError(f"{images} lacks DTD class folders {missing}")
    tmp = Path(tempfile.mkdtemp(prefix=".partial-dtd10-", dir=root))
    staged = tmp / "dtd10"  # (mkdtemp's folder is private: the staged one gets the usual permissions)
    resize = {
        v: T.Compose([T.Resize(side, interpolation=mode, antialias=True), T.CenterCrop(side)])
        for v, (side, mode, *_) in VARIANTS.items()
    }
    try:
        files = [f for c in CLASSES for f in sorted((images / c).glob("*.jpg"))]
        for f in tqdm(files, desc="dtd10 from DTD", leave=False):
            with Image.open(f) as im:
                rgb = im.convert("RGB")
            for v, (_, _, fmt, opts, suffix) in VARIANTS.items():
                out = staged / v / f.parent.name / (f.stem + suffix)
                out.parent.mkdir(parents=True, exist_ok=True)
                resize[v](rgb).save(out, fmt, **opts)
        place(staged, root / "dtd10")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root / "dtd10"
