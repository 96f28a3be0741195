"""Small archives in the real formats of the kit's downloads, for a local HTTP server standing in for the internet
(tests/test_downloads.py, tests/test_mirror.py): torchvision's CIFAR-10 tarball, DTD's tarball, Fashion-MNIST's
idx.gz files. Pixels are random; labels cycle through the classes (image ``i`` has label ``i % 10``)."""

import gzip
import hashlib
import io
import pickle
import tarfile

import numpy as np
from PIL import Image

from reprolab.datasets import dtd10

RNG = np.random.default_rng(0)
TRAIN = RNG.integers(0, 256, (40, 3, 32, 32), dtype=np.uint8)  # 4 per class, in 5 batches of 8
TEST = RNG.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8)  # 2 per class
FASHION = RNG.integers(0, 256, (20, 28, 28), dtype=np.uint8)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tar_gz(members: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def cifar10_archive(train: np.ndarray = TRAIN, test: np.ndarray = TEST) -> bytes:
    """torchvision's cifar-10-python.tar.gz layout: ``train`` (N x 3 x 32 x 32 uint8, N divisible by 5) in five
    data_batch files, ``test`` in test_batch, batches.meta."""
    n = len(train) // 5
    files = {
        f"data_batch_{k + 1}": pickle.dumps(
            {"data": train[n * k : n * k + n].reshape(n, -1), "labels": (np.arange(n * k, n * k + n) % 10).tolist()}
        )
        for k in range(5)
    }
    files["test_batch"] = pickle.dumps(
        {"data": test.reshape(len(test), -1), "labels": (np.arange(len(test)) % 10).tolist()}
    )
    files["batches.meta"] = pickle.dumps({"label_names": [f"c{k}" for k in range(10)]})
    return tar_gz({f"cifar-10-batches-py/{name}": data for name, data in files.items()})


def jpeg(seed: int, size=(48, 40)) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def dtd_archive() -> bytes:
    """DTD's dtd-r1.0.1.tar.gz layout: dtd/images/<class>/<class>_NNNN.jpg (+ labels/), 2 images per class."""
    members = {"dtd/labels/labels_joint_anno.txt": b"banded/banded_0001.jpg banded\n"}
    for k, c in enumerate([*dtd10.CLASSES, "zigzagged"]):  # the 10 course classes and one more
        for j in (1, 2):
            members[f"dtd/images/{c}/{c}_{j:04d}.jpg"] = jpeg(10 * k + j, (48 + 8 * j, 40))
    return tar_gz(members)


def idx(array: np.ndarray) -> bytes:
    """MNIST's IDX format, gzipped (the files torchvision's FashionMNIST downloads)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.tobytes())
