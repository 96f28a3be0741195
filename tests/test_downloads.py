"""Downloads end to end, without the internet: a server on 127.0.0.1 (conftest's ``data_server``) serves small
archives in the real formats (torchvision's CIFAR-10 tarball, DTD's tarball, Fashion-MNIST's idx.gz files), the
download registry points at it, and the tests check that files land, are verified, load, are fetched only once,
and that a corrupt archive or an unreachable host gives one line and leaves nothing behind."""

import io
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
import torchvision.transforms.functional as TF
from archives import FASHION, TEST, cifar10_archive, dtd_archive, idx, jpeg, md5
from PIL import Image

from reprolab.datasets import download, load_dataset
from reprolab.datasets.download import SOURCES, Source
from reprolab.errors import DatasetNotFoundError

ROOT = Path(__file__).resolve().parents[1]


def serve(monkeypatch, served: Path, base: str, key: str, data: bytes, known_hash: str | None = "md5") -> None:
    """Put ``data`` on the local server and point SOURCES[key] at it (with its MD5 unless told otherwise)."""
    fname = SOURCES[key].fname
    (served / fname).write_bytes(data)
    digest = {"md5": f"md5:{md5(data)}", None: None}.get(known_hash, known_hash)
    monkeypatch.setitem(SOURCES, key, Source(base + fname, digest, f"{len(data)} B"))


def serve_fashion(monkeypatch, served, base):
    serve(monkeypatch, served, base, "fashion_mnist/t10k-images-idx3-ubyte.gz", idx(FASHION))
    serve(monkeypatch, served, base, "fashion_mnist/t10k-labels-idx1-ubyte.gz", idx(np.arange(20, dtype=np.uint8) % 10))


@pytest.fixture
def empty_root(tmp_path, monkeypatch):
    """REPROLAB_DATA at an empty folder, downloads on ("auto" with REPROLAB_OFFLINE unset)."""
    root = tmp_path / "data"
    monkeypatch.setenv("REPROLAB_DATA", str(root))
    monkeypatch.delenv("REPROLAB_OFFLINE", raising=False)
    return root


def leftovers(root: Path) -> list[str]:
    """Staging folders or archives left in a data root (there should be none)."""
    return sorted(
        p.name for p in root.rglob("*") if p.name.startswith(".partial") or p.name.endswith((".tar", ".tar.gz"))
    )


def test_cifar10_download_lands_is_verified_loads_and_is_fetched_once(empty_root, data_server, monkeypatch, capsys):
    base, served = data_server
    serve(monkeypatch, served, base, "cifar10", cifar10_archive())
    ds = load_dataset("cifar10", "test")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "'cifar10' was not on this machine: downloaded cifar-10-python.tar.gz (" in out
    assert f"MD5 verified) from {base} into {empty_root / 'cifar-10-batches-py'}" in out
    assert len(ds) == 20 and ds.labels.tolist() == list(range(10)) * 2
    assert torch.equal(ds[3][0], torch.from_numpy(TEST[3]).float() / 255)
    assert sorted(p.name for p in empty_root.iterdir()) == ["cifar-10-batches-py"]  # the archive is gone
    (served / "cifar-10-python.tar.gz").unlink()  # a second load must not need the server
    train = load_dataset("cifar10", "train", subset=20, seed=0)
    assert len(train) == 20 and train.labels.bincount().tolist() == [2] * 10
    assert "downloaded" not in capsys.readouterr().out


def test_dtd10_is_built_from_the_dtd_download_and_textures_reuses_it(empty_root, data_server, monkeypatch, capsys):
    base, served = data_server
    serve(monkeypatch, served, base, "dtd", dtd_archive())
    ds = load_dataset("dtd10")
    assert "downloaded dtd-r1.0.1.tar.gz" in capsys.readouterr().out
    assert len(ds) == 20 and (ds.labels == -1).all() and ds.ids[0] == "banded/banded_0001.png"
    original = Image.open(io.BytesIO(jpeg(1, (56, 40)))).convert("RGB")  # banded_0001 as served
    want = TF.center_crop(TF.resize(original, 32, TF.InterpolationMode.BILINEAR, antialias=True), 32)
    assert torch.equal(ds[0][0], TF.to_tensor(want))  # the course copy's 32-px recipe
    big = load_dataset("dtd10", size=224)
    assert big[0][0].shape == (3, 224, 224) and big.ids[-1] == "crystalline/crystalline_0002.jpg"
    assert sorted(p.name for p in (empty_root / "dtd10").iterdir()) == ["224px", "32px"]
    textures = load_dataset("textures")  # the full DTD came with it: 11 classes here, no second download
    assert len(textures) == 22 and "downloaded" not in capsys.readouterr().out
    assert leftovers(empty_root) == []


def test_fashion_mnist_comes_from_torchvision_files_without_the_debian_package(
    empty_root, data_server, monkeypatch, no_fashion_mnist
):
    base, served = data_server
    serve_fashion(monkeypatch, served, base)
    ood = load_dataset("fashion_mnist_ood")
    assert len(ood) == 20 and (ood.labels == -1).all() and ood[0][0].shape == (3, 32, 32)
    assert sorted(p.name for p in (empty_root / "FashionMNIST" / "raw").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    task = load_dataset("fashion_mnist")
    assert task.labels.tolist() == list(range(10)) * 2 and torch.equal(
        task[5][0][0], torch.from_numpy(FASHION[5]) / 255
    )


@pytest.mark.parametrize("damage", ["checksum", "truncated"])
def test_a_corrupt_archive_is_one_line_and_leaves_nothing(empty_root, data_server, monkeypatch, damage):
    base, served = data_server
    good = dtd_archive()
    if damage == "checksum":  # bytes changed after the checksum was published
        serve(monkeypatch, served, base, "dtd", good, known_hash=f"md5:{md5(good[:-1])}")
    else:  # the published checksum is of a truncated archive: it verifies, then fails to unpack
        serve(monkeypatch, served, base, "dtd", good[: len(good) // 2])
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("dtd10")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"downloading 'dtd10' from {base}dtd-r1.0.1.tar.gz failed")
    assert ("checksum mismatch" in msg) == (damage == "checksum") and "shared/datasets/dtd10" in msg
    assert list(empty_root.iterdir()) == []


def test_unreachable_host_offline_and_download_false_are_one_line(empty_root, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nobody listens there
    monkeypatch.setitem(SOURCES, "svhn/test_32x32.mat", Source(f"http://127.0.0.1:{port}/test_32x32.mat", None))
    with pytest.raises(DatasetNotFoundError, match=r"failed \(cannot connect .*\); let it download") as e:
        load_dataset("svhn")
    assert "\n" not in str(e.value) and list(empty_root.iterdir()) == []
    for kw, env in (({"download": False}, None), ({}, "1")):  # never tries: the looked-in error of before
        if env:
            monkeypatch.setenv("REPROLAB_OFFLINE", env)
        with pytest.raises(DatasetNotFoundError, match="'svhn' not found") as e:
            load_dataset("svhn", **kw)
        assert "downloading" not in str(e.value)


def test_registry_points_at_torchvision_sources():
    assert SOURCES["cifar10"] == Source(tvd.CIFAR10.url, f"md5:{tvd.CIFAR10.tgz_md5}", "163 MB")
    assert SOURCES["dtd"].url == tvd.DTD._URL and SOURCES["dtd"].known_hash == f"md5:{tvd.DTD._MD5}"
    names = {f for f, _ in tvd.FashionMNIST.resources}
    assert {k.split("/")[1] for k in SOURCES if k.startswith("fashion_mnist/")} == names
    assert download.failed("x", SOURCES["dtd"], ValueError("a\nb"), "fix").args[0].count("\n") == 0


def test_quickstart_from_an_empty_data_root_skips_then_adds_a_missing_ood_set(
    empty_root, data_server, monkeypatch, no_fashion_mnist, tmp_path, capsys
):
    """`reprolab run configs/quickstart.yaml` on tiny settings with REPROLAB_DATA empty and the local server as the
    internet: CIFAR-10 and DTD download; Fashion-MNIST is not served at first, so it is skipped with one line and
    the report says so; once served, the same command adds it to the finished methods."""
    from reprolab.cli import main
    from reprolab.experiment.results import ResultsDB

    base, served = data_server
    serve(monkeypatch, served, base, "cifar10", cifar10_archive())
    serve(monkeypatch, served, base, "dtd", dtd_archive())
    serve_fashion(monkeypatch, served, base)
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (served / f).rename(served / f"hidden-{f}")
    small = ["encoder=tiny", "train_subset=20", "test_subset=20", "shift_subset=10", "ood_subset=10"]
    small += ["shift_sets=[cifar10c:contrast:3]", "eval_batch_size=16", "methods.linear_probe.params.backend=torch"]
    small += [
        f"methods.{m}.train.{k}" for m in ("finetune", "reprogrammer") for k in ("steps=2", "batch_size=4", "warmup=0")
    ]
    out = tmp_path / "qs"
    args = [
        "run",
        str(ROOT / "configs" / "quickstart.yaml"),
        "--out",
        str(out),
        *[a for s in small for a in ("--set", s)],
    ]
    assert main(args) == 0
    log = capsys.readouterr().out
    assert "downloaded cifar-10-python.tar.gz" in log and "downloaded dtd-r1.0.1.tar.gz" in log
    line = next(x for x in log.splitlines() if "not evaluated: fashion_mnist_ood" in x)
    assert "404" in line and "apt-get install dataset-fashion-mnist" in line
    rows = ResultsDB(out / "results.jsonl").rows()
    assert {r["eval_set"] for r in rows} == {"cifar10", "cifar10c:contrast:3", "dtd10", "sklearn_digits"}
    assert "not evaluated: fashion_mnist_ood" in (out / "report.html").read_text()

    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (served / f"hidden-{f}").rename(served / f)
    assert main(args) == 0
    assert "downloaded t10k-images-idx3-ubyte.gz" in capsys.readouterr().out
    rows = ResultsDB(out / "results.jsonl").rows()
    fashion = {r["method"] for r in rows if r["eval_set"] == "fashion_mnist_ood"}
    assert fashion == {r["method"] for r in rows}
    assert "not evaluated" not in (out / "report.html").read_text()
