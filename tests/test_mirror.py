"""``REPROLAB_MIRROR`` / ``REPROLAB_CHECKSUMS`` (:mod:`reprolab.datasets.mirror`): every download of the kit from a
lab's copy of the original files, verified against the published checksums unless a local checksum file replaces
them; and the must-show of issue 15 that needs a separate process: with ``REPROLAB_DATA`` at an empty folder and a
server on 127.0.0.1 standing in for the internet, notebook 00 downloads what it needs, in its own kernel, and runs.
"""

import json
import os
from pathlib import Path

import nbformat
import numpy as np
import pytest
from archives import TEST, cifar10_archive, md5

from reprolab import doctor
from reprolab.datasets import load_dataset
from reprolab.datasets.download import SOURCES
from reprolab.datasets.mirror import resolve
from reprolab.errors import DatasetNotFoundError, ReprolabError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_settings(monkeypatch):
    monkeypatch.delenv("REPROLAB_MIRROR", raising=False)
    monkeypatch.delenv("REPROLAB_CHECKSUMS", raising=False)


def checksum_file(path: Path, table: dict) -> Path:
    path.write_text(json.dumps(table))
    return path


def test_every_source_goes_to_the_mirror_under_its_own_name_with_the_same_checksum(no_settings, monkeypatch):
    assert all(resolve(s) is s for s in SOURCES.values())  # unset: the publishers' hosts
    monkeypatch.setenv("REPROLAB_MIRROR", "http://lab-server:8000/course-data/")
    for key, src in SOURCES.items():
        got = resolve(src)
        assert got.url == f"http://lab-server:8000/course-data/{src.fname}", key
        assert (got.known_hash, got.fname) == (src.known_hash, src.fname), key
    assert {resolve(SOURCES[k]).fname for k in ("cifar10", "dtd")} == {"cifar-10-python.tar.gz", "dtd-r1.0.1.tar.gz"}


def test_a_checksum_file_replaces_only_the_files_it_names(no_settings, monkeypatch, tmp_path):
    table = {"cifar-10-python.tar.gz": "sha256:" + "ab" * 32, "imagenet-a.tar": "md5:" + "cd" * 16}
    monkeypatch.setenv("REPROLAB_CHECKSUMS", str(checksum_file(tmp_path / "sums.json", table)))
    assert resolve(SOURCES["cifar10"]).known_hash == table["cifar-10-python.tar.gz"]
    assert resolve(SOURCES["cifar10"]).url == SOURCES["cifar10"].url  # no mirror: still the publisher's host
    assert resolve(SOURCES["imagenet_a"]).known_hash == table["imagenet-a.tar"]  # one where none is published
    assert resolve(SOURCES["dtd"]) is SOURCES["dtd"]


@pytest.mark.parametrize(
    "var, value, words",
    [
        ("REPROLAB_MIRROR", "lab-server:8000/data", "is not a URL"),
        ("REPROLAB_CHECKSUMS", "missing.json", "cannot be read"),
        ("REPROLAB_CHECKSUMS", '{"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"}', "md5:<hex>"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(no_settings, monkeypatch, tmp_path, var, value, words):
    if value.startswith("{"):
        value = str(checksum_file(tmp_path / "sums.json", json.loads(value)))
    monkeypatch.setenv(var, str(tmp_path / value) if value == "missing.json" else value)
    with pytest.raises(ReprolabError) as e:
        resolve(SOURCES["cifar10"])
    assert words in str(e.value) and f"${var}" in str(e.value) and "\n" not in str(e.value)
    assert any(words in line for line in doctor.mirror_lines())  # doctor shows it instead of crashing


def test_doctor_says_where_downloads_come_from(no_settings, monkeypatch, tmp_path):
    assert doctor.mirror_lines() == []
    monkeypatch.setenv("REPROLAB_MIRROR", "http://lab-server:8000/data")
    monkeypatch.setenv("REPROLAB_CHECKSUMS", str(checksum_file(tmp_path / "s.json", {"a.tar": "md5:" + "0" * 32})))
    lines = "\n".join(doctor.mirror_lines())
    assert "downloads come from the mirror http://lab-server:8000/data/<file name> ($REPROLAB_MIRROR)" in lines
    assert "$REPROLAB_CHECKSUMS: 1 checksums replace or add published ones (a.tar)" in lines


def test_the_mirror_is_held_to_the_published_checksum(no_settings, data_server, monkeypatch, tmp_path):
    """A mirror serving a file that is not the publisher's (here: the small test archive under CIFAR-10's real
    name) is refused, and nothing is left behind; with a checksum file vouching for it, it is accepted."""
    base, served = data_server
    archive = cifar10_archive()
    (served / "cifar-10-python.tar.gz").write_bytes(archive)
    monkeypatch.setenv("REPROLAB_MIRROR", base)
    monkeypatch.delenv("REPROLAB_OFFLINE", raising=False)
    root = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("cifar10", "test", root=str(root))
    assert f"from {base}cifar-10-python.tar.gz failed (checksum mismatch" in str(e.value)
    assert list(root.iterdir()) == []
    sums = checksum_file(tmp_path / "sums.json", {"cifar-10-python.tar.gz": f"md5:{md5(archive)}"})
    monkeypatch.setenv("REPROLAB_CHECKSUMS", str(sums))
    assert len(load_dataset("cifar10", "test", root=str(root))) == len(TEST)


@pytest.mark.slow
def test_notebook_00_downloads_from_the_mirror_into_an_empty_data_root(data_server, monkeypatch, tmp_path):
    """Notebook 00, unchanged, with its FAST parameters, in a fresh kernel: it needs CIFAR-10's test split, which is
    nowhere but on the local server. The served archive holds 500 random test images, 50 per class: exactly FAST's
    class-balanced subset. The kernel is another process, so it gets everything through the environment, as a lab
    machine would: the data root, the mirror, the checksum file. A proxy that refuses every connection stands for
    "no internet" (only the mirror on 127.0.0.1 can be reached), and an empty Hugging Face cache makes ENCODER="auto"
    the offline stand-in on every machine."""
    from nbclient import NotebookClient

    base, served = data_server
    test = np.random.default_rng(1).integers(0, 256, (500, 3, 32, 32), dtype=np.uint8)
    archive = cifar10_archive(test=test)
    (served / "cifar-10-python.tar.gz").write_bytes(archive)
    sums = checksum_file(tmp_path / "sums.json", {"cifar-10-python.tar.gz": f"md5:{md5(archive)}"})
    data = tmp_path / "data"
    env = {
        "REPROLAB_DATA": str(data),
        "REPROLAB_MIRROR": base,
        "REPROLAB_CHECKSUMS": str(sums),
        "REPROLAB_RUNS": str(tmp_path / "runs"),  # the feature cache of these fake images stays out of runs/
        "REPROLAB_SYSTEM_DATA": str(tmp_path / "no-system-data"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("REPROLAB_OFFLINE", "REPROLAB_PRECOMPUTED", "REPROLAB_CLIP_WEIGHTS", "http_proxy", "https_proxy"):
        monkeypatch.delenv(k, raising=False)

    nb = nbformat.read(ROOT / "notebooks" / "00_zero_shot_clip.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    line = next(x for x in text.splitlines() if "'cifar10' was not on this machine" in x)
    assert line == (
        "[reprolab] 'cifar10' was not on this machine: downloaded cifar-10-python.tar.gz (size not published, "
        f"MD5 verified) from {base} into {data / 'cifar-10-batches-py'}"
    )
    assert "encoder: offline stand-in" in text and "- 500 images" in text and "zero-shot accuracy" in text
    files = sorted(p.relative_to(data).as_posix() for p in data.rglob("*"))
    assert files == ["cifar-10-batches-py"] + [
        f"cifar-10-batches-py/{f}" for f in ["batches.meta", *(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]
    ]  # the archive and its staging folder are gone
