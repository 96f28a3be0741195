"""Dataset registry: real course copies (CIFAR-10, DTD-10, Fashion-MNIST), subsets/manifests, clear errors, where
data live (roots), optional sets skipped with one line, and ImageNet / STL-10 loaders on tiny fakes in tmp_path.
Downloads themselves: tests/test_downloads.py."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require
from PIL import Image

from reprolab.datasets import (
    REGISTRY,
    STL10_TO_CIFAR10,
    dataset_names,
    imagenet_wnids,
    load_available,
    load_dataset,
    read_manifest,
    roots,
    save_manifest,
)
from reprolab.errors import CorruptFileError, DatasetNotFoundError, ReprolabError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if not (SHARED / "cifar10").is_dir():
    SHARED = Path("/work/shared/datasets")
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
needs_shared = pytest.mark.skipif(not (SHARED / "cifar10").is_dir(), reason=f"course data not at {SHARED}")


@pytest.fixture(autouse=True)
def data_env(monkeypatch):
    monkeypatch.setenv("REPROLAB_DATA", str(SHARED))


@needs_shared
def test_cifar10_test_counts_order_and_pixels():
    ds = load_dataset("cifar10")
    assert (ds.kind, ds.id_task, ds.classnames, len(ds)) == ("id", "cifar10", CIFAR10, 10000)
    assert ds.labels.bincount().tolist() == [1000] * 10
    assert torch.equal(ds.labels, torch.arange(10).repeat_interleave(1000))  # class-folder order = label order
    x, y = ds[3000]
    assert ds.ids[3000] == "test/cat/0000.jpg" and y == 3
    ref = np.asarray(Image.open(SHARED / "cifar10/test/cat/0000.jpg").convert("RGB"), dtype=np.float32) / 255
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert torch.allclose(x, torch.from_numpy(ref).permute(2, 0, 1))


@needs_shared
def test_cifar10_train_from_zip():
    ds = load_dataset("cifar10", split="train")
    assert len(ds) == 50000 and ds.labels.bincount().tolist() == [5000] * 10
    assert ds.ids[0] == "train/airplane/0000.jpg" and ds.ids[-1] == "train/truck/4999.jpg"
    x, y = ds[49999]
    assert x.shape == (3, 32, 32) and y == 9 and 0 <= x.min() <= x.max() <= 1


@needs_shared
def test_dtd10_is_ood_with_minus_one_labels():
    ds = load_dataset("dtd10")
    assert (len(ds), ds.kind, ds.id_task, ds.classnames) == (1200, "ood", "cifar10", CIFAR10)
    assert (ds.labels == -1).all()
    folders = [i.split("/")[0] for i in ds.ids]
    assert sorted(set(folders)) == sorted(os.listdir(SHARED / "dtd10/32px"))
    assert all(folders.count(f) == 120 for f in set(folders))
    assert ds[0][0].shape == (3, 32, 32) and ds[0][1] == -1
    assert load_dataset("dtd10", size=224, subset=3)[0][0].shape == (3, 224, 224)  # 224px variant


def test_stl10_remap_table_and_loader(tmp_path):
    assert STL10_TO_CIFAR10 == {0: 0, 1: 2, 2: 1, 3: 3, 4: 4, 5: 5, 6: 7, 8: 8, 9: 9}
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(10, 96, 96, 3), dtype=np.uint8)  # one image per STL class
    d = tmp_path / "stl10_binary"
    d.mkdir()
    np.stack([im.transpose(2, 1, 0) for im in imgs]).tofile(d / "test_X.bin")  # STL stores column-major planes
    np.arange(1, 11, dtype=np.uint8).tofile(d / "test_y.bin")
    ds = load_dataset("stl10", root=tmp_path, size=96)
    assert ds.labels.tolist() == [0, 2, 1, 3, 4, 5, 7, 8, 9]  # airplane bird car cat deer dog horse ship truck
    assert ds.classnames == CIFAR10 and ds.kind == "shift"
    assert torch.equal(ds[1][0], torch.from_numpy(imgs[1]).permute(2, 0, 1).float() / 255)  # bird, oriented
    assert ds.ids[-1] == "test[9]" and "test[7]" not in ds.ids  # monkey dropped
    assert load_dataset("stl10", root=tmp_path)[0][0].shape == (3, 32, 32)


@needs_shared
def test_subset_manifest_is_balanced_and_reproducible(tmp_path):
    a = load_dataset("cifar10", subset=500, seed=0)
    assert len(a) == 500 and a.labels.bincount().tolist() == [50] * 10
    assert a.ids == load_dataset("cifar10", subset=500, seed=0).ids
    assert a.ids != load_dataset("cifar10", subset=500, seed=1).ids
    assert a.key == "cifar10|test|n=500|subset=500|seed=0|size=native"
    path = save_manifest(a, tmp_path / "m.json")
    m = read_manifest(path)
    assert m["n"] == 500 and m["ids"] == a.ids
    b = load_dataset("cifar10", manifest=path)
    assert b.ids == a.ids and b.key == a.key and torch.equal(b[7][0], a[7][0])
    m["ids"][0] = "test/cat/9999.jpg"
    path.write_text(json.dumps(m))
    with pytest.raises(CorruptFileError, match="sha256"):
        load_dataset("cifar10", manifest=path)
    odd = load_dataset("cifar10", subset=25, seed=3)
    assert odd.labels.bincount().tolist() == [3] * 5 + [2] * 5
    ood = load_dataset("dtd10", subset=100, seed=0)
    assert len(ood) == 100 and len(set(ood.ids)) == 100


def test_missing_dataset_gives_one_line_error(tmp_path):
    empty = tmp_path / "empty"
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("svhn", root=empty)
    msg = str(e.value)
    assert "\n" not in msg and "'svhn' not found" in msg and str(empty) in msg and "download='auto'" in msg


def test_default_data_root_does_not_depend_on_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("REPROLAB_DATA")
    monkeypatch.chdir(tmp_path)
    repo = Path(__file__).resolve().parents[1]
    got = roots.data_roots()
    assert got[0] == repo / "data" / "cache" and all(p.is_absolute() for p in got)  # checkout: data/cache
    assert got[1:] == ([repo.parent / "shared" / "datasets"] if (repo.parent / "shared" / "datasets").is_dir() else [])
    monkeypatch.setattr(roots, "in_checkout", lambda: False)  # an installed wheel: the per-user cache folder
    monkeypatch.setattr("platformdirs.user_cache_path", lambda app: tmp_path / "user-cache" / app)
    assert roots.data_roots() == [tmp_path / "user-cache" / "reprolab" / "data"]
    monkeypatch.setenv("REPROLAB_DATA", os.pathsep.join(["/x", "~/y"]))  # overrides both
    assert roots.data_roots() == [Path("/x"), Path("~/y").expanduser()]


def test_downloads_go_to_the_first_writable_root(tmp_path):
    read_only = tmp_path / "course"
    read_only.mkdir()
    read_only.chmod(0o555)  # like the course copy; skipped even when the tests run as root
    try:
        assert roots.download_root([read_only, tmp_path / "cache"]) == tmp_path / "cache"
        assert (tmp_path / "cache").is_dir()
        with pytest.raises(DatasetNotFoundError, match="no data root can be written"):
            roots.download_root([read_only])
    finally:
        read_only.chmod(0o755)
    assert roots.allow_download(True) and not roots.allow_download(False)
    with pytest.raises(ReprolabError, match="'auto'"):
        load_dataset("sklearn_digits", download="yes")


def test_optional_sets_are_skipped_with_one_line(tmp_path, no_fashion_mnist):
    lines = []
    got = load_available(["sklearn_digits", "fashion_mnist_ood", "svhn"], root=tmp_path, say=lines.append, subset=5)
    assert [d.name for d in got] == ["sklearn_digits"]
    assert lines == [
        "not evaluated: fashion_mnist_ood (not found on this machine); how to get it: downloads itself with "
        "internet (torchvision's files, 30 MB), or apt-get install dataset-fashion-mnist",
        "not evaluated: svhn (not found on this machine); how to get it: downloads itself with internet "
        "(torchvision's archive)",
    ]
    with pytest.raises(DatasetNotFoundError, match="'cifar10' not found"):  # load_dataset: required, still an error
        load_dataset("cifar10", root=tmp_path)


def test_env_path_list_is_searched(tmp_path, monkeypatch):
    (tmp_path / "b" / "dtd10" / "32px" / "x").mkdir(parents=True)
    Image.new("RGB", (40, 50), (255, 0, 0)).save(tmp_path / "b" / "dtd10" / "32px" / "x" / "a.png")
    monkeypatch.setenv("REPROLAB_DATA", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    x, y = load_dataset("dtd10")[0]
    assert x.shape == (3, 32, 32) and y == -1 and torch.allclose(x[0], torch.ones(32, 32))


def test_corrupt_image_names_the_file(tmp_path):
    folder = tmp_path / "dtd10" / "32px" / "banded"
    folder.mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(folder / "good.png")
    (folder / "zbad.jpg").write_bytes(b"\xff\xd8 not a jpeg at all" * 20)
    ds = load_dataset("dtd10", root=tmp_path)
    ds[0]
    with pytest.raises(CorruptFileError, match="zbad.jpg"):
        ds[1]
    buf = tmp_path / "t.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf)
    (folder / "ztrunc.jpg").write_bytes(buf.read_bytes()[:600])  # truncated JPEG
    with pytest.raises(CorruptFileError, match="ztrunc.jpg"):
        load_dataset("dtd10", root=tmp_path)[2]


def test_fashion_mnist_debian_package():
    folder = roots.system_dir("fashion-mnist")
    require(
        (folder / "t10k-images-idx3-ubyte.gz").is_file(), f"{folder} missing: apt-get install dataset-fashion-mnist"
    )
    ds = load_dataset("fashion_mnist")
    assert len(ds) == 10000 and ds.labels.bincount().tolist() == [1000] * 10 and len(ds.classnames) == 10
    assert ds[0][0].shape == (3, 28, 28)
    ood = load_dataset("fashion_mnist_ood", subset=10)
    assert ood.kind == "ood" and ood[0][0].shape == (3, 32, 32) and (ood.labels == -1).all()


def test_sklearn_digits_and_noise():
    ds = load_dataset("sklearn_digits")
    x, y = ds[0]
    assert len(ds) == 1797 and x.shape == (3, 32, 32) and y == -1 and 0 <= x.min() < x.max() <= 1
    assert torch.equal(x[0], x[2])  # grey -> 3 channels
    n = load_dataset("uniform_noise", n=4, seed=1)
    assert len(n) == 4 and torch.equal(n[2][0], load_dataset("uniform_noise", n=4, seed=1)[2][0])
    assert not torch.equal(n[2][0], load_dataset("uniform_noise", n=4, seed=2)[2][0])


def _fake_folder(root: Path, names, size=(40, 30)):
    for k, n in enumerate(names):
        (root / n).mkdir(parents=True)
        Image.new("RGB", size, (k * 20 % 256, 0, 0)).save(root / n / "img0.JPEG")


def test_imagenet_family_on_fake_folders(tmp_path):
    w = imagenet_wnids()
    assert len(w) == 1000 and w == tuple(sorted(w)) and len(imagenet_wnids("a")) == len(imagenet_wnids("r")) == 200
    _fake_folder(tmp_path / "imagenet" / "val", [w[999], w[0], w[1]])
    ds = load_dataset("imagenet", root=tmp_path)
    assert ds.labels.tolist() == [0, 1, 999] and len(ds.classnames) == 1000 and ds[0][0].shape == (3, 224, 224)
    _fake_folder(tmp_path / "imagenetv2-matched-frequency-format-val", ["10", "2", "0"])
    assert load_dataset("imagenet_v2", root=tmp_path).labels.tolist() == [0, 2, 10]
    a_wnids = imagenet_wnids("a")
    _fake_folder(tmp_path / "imagenet-a", list(a_wnids[:2]))
    a = load_dataset("imagenet_a", root=tmp_path, size=64)
    assert a.kind == "shift" and len(a.class_subset) == 200 and "classes=200" in a.key
    logits = a.restrict_logits(torch.zeros(2, 1000))
    assert torch.isfinite(logits).sum() == 400 and torch.isfinite(logits[:, a.labels[0]]).all()
    assert load_dataset("imagenet_a", root=tmp_path, classes="1000").class_subset is None
    with pytest.raises(ReprolabError, match="classes"):
        load_dataset("imagenet_a", root=tmp_path, classes="300")
    _fake_folder(tmp_path / "iNaturalist", ["x"])
    nat = load_dataset("inaturalist", root=tmp_path)
    assert nat.kind == "ood" and nat.labels.tolist() == [-1] and nat[0][0].shape == (3, 224, 224)
    _fake_folder(tmp_path / "textures", ["banded"])
    assert load_dataset("textures", root=tmp_path, id_task="imagenet")[0][0].shape == (3, 224, 224)
    assert load_dataset("textures", root=tmp_path)[0][0].shape == (3, 32, 32)
    (tmp_path / "imagenet" / "val" / "not_a_wnid").mkdir()
    with pytest.raises(ReprolabError, match="not_a_wnid"):
        load_dataset("imagenet", root=tmp_path)


def test_registry_metadata_and_bad_names():
    assert {i.kind for i in REGISTRY.values()} == {"id", "shift", "ood"}
    assert all(i.description and i.how_to_get for i in REGISTRY.values())
    assert set(dataset_names(kind="id")) == {"cifar10", "cifar100", "fashion_mnist", "imagenet"}
    shift = dataset_names("cifar10", kind="shift")
    assert {"cifar10_1", "stl10", "cifar10c:gaussian_noise:3", "cifar10c:jpeg_compression:5"} <= set(shift)
    assert {
        "svhn",
        "textures",
        "dtd10",
        "lsun_crop",
        "lsun_resize",
        "isun",
        "places365",
        "fashion_mnist_ood",
        "sklearn_digits",
    } <= set(dataset_names("cifar10", kind="ood"))
    assert {"inaturalist", "sun", "places", "textures"} <= set(dataset_names("imagenet", kind="ood"))
    with pytest.raises(ReprolabError, match="did you mean cifar10_1"):
        load_dataset("cifar10_2x")
    with pytest.raises(ReprolabError, match="accepts"):
        load_dataset("cifar10", nonsense=1)
    with pytest.raises(ReprolabError, match="split"):
        load_dataset("dtd10", split="train")


@needs_shared
def test_committed_manifest_loads():
    path = Path(__file__).resolve().parents[1] / "data/manifests/cifar10_test_n_500_subset_500_seed_0_size_native.json"
    ds = load_dataset("cifar10", manifest=path)
    assert len(ds) == 500 and ds.labels.bincount().tolist() == [50] * 10 and ds.subset == 500
