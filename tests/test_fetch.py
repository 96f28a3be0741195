"""`reprolab fetch`: CLIP weights through open_clip's own downloader (here from a local HTTP server standing in for
the internet), the course sets through ``load_dataset`` (monkeypatched: the loaders' downloads are tested with
the datasets), a manifest of SHA-256 checksums, the one setting printed, and `reprolab doctor` finding the folder."""

import functools
import hashlib
import http.server
import json
import re
import threading
from pathlib import Path

import pytest
import torch
import yaml

from reprolab import doctor, fetch
from reprolab.cli import main
from reprolab.datasets import REGISTRY
from reprolab.errors import DatasetNotFoundError

ROOT = Path(__file__).resolve().parents[1]


def _names_used() -> set[str]:
    """Every registered set named in configs/quickstart.yaml and in the notebooks' code."""
    cfg = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    names = {cfg["id_dataset"], *cfg["shift_sets"], *cfg["ood_sets"]}
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        code = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        names |= {s for s in re.findall(r"\"([a-z0-9_:]+)\"", code) if s in REGISTRY}
    return names


def test_course_sets_cover_the_quickstart_and_every_notebook():
    names = _names_used()
    assert {"cifar10", "dtd10", "fashion_mnist", "fashion_mnist_ood"} <= names  # the scan finds what is there
    fetched = {n for n, _ in fetch.COURSE_SETS}
    missing = [n for n in names if n not in fetched and not n.startswith(fetch.GENERATED)]
    assert missing == []
    assert ("cifar10", "train") in fetch.COURSE_SETS  # the notebooks train on it


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A TorchScript tiny CLIP (QuickGELU, OpenAI's format) served on 127.0.0.1; open_clip's config points at it."""
    import open_clip
    from open_clip.model import CLIP

    from reprolab.encoders.openclip_encoder import TINY_CFG

    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "tiny-test", dict(TINY_CFG))
    torch.manual_seed(3)
    model = CLIP(**TINY_CFG, quick_gelu=True).eval()
    site = tmp_path / "site"
    site.mkdir()
    torch.jit.save(torch.jit.script(model), str(site / "ViT-B-32.pt"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/ViT-B-32.pt"
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda arch, tag: {"url": url, "quick_gelu": True})
    yield model
    server.shutdown()


def _fake_load_dataset(calls, fail=()):
    def load(name, split, root, download):
        calls.append((name, split, download))
        if name in fail:
            raise DatasetNotFoundError(f"downloading '{name}' failed (URLError: no network); get it by hand")
        d = Path(root) / "sets" / name / split
        d.mkdir(parents=True, exist_ok=True)
        (d / "images.bin").write_bytes(f"{name}/{split}".encode() * 10)
        return [0] * 3

    return load


def test_fetch_fills_a_folder_that_a_run_then_uses_offline(served, tmp_path, monkeypatch, capsys):
    import reprolab.encoders as E

    calls = []
    monkeypatch.setattr(fetch, "load_dataset", _fake_load_dataset(calls))
    out_dir = tmp_path / "kit"
    assert main(["fetch", "--clip", "--data", "course", "--to", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert f"export REPROLAB_DATA={out_dir}" in out
    assert calls == [(n, s, True) for n, s in fetch.COURSE_SETS]

    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["clip"]["file"] == "clip/ViT-B-32-quickgelu-openai.pt"  # the server had OpenAI's .pt archive
    assert set(manifest["files"]) == {"clip/ViT-B-32-quickgelu-openai.pt"} | {
        f"sets/{n}/{s}/images.bin" for n, s in fetch.COURSE_SETS
    }
    for rel, info in manifest["files"].items():
        assert hashlib.sha256((out_dir / rel).read_bytes()).hexdigest() == info["sha256"]
    assert not [p for p in out_dir.rglob("*") if p.name.startswith(".download")]  # open_clip's temp cache is gone

    # a later run with only the one setting: 'auto' finds the weights (the tiny config stands in for ViT-B-32)
    monkeypatch.setenv("REPROLAB_DATA", str(out_dir))
    monkeypatch.delenv("REPROLAB_CLIP_WEIGHTS", raising=False)
    monkeypatch.setattr(E, "CLIP_ARCH", "tiny-test")
    enc = E.load_encoder("auto")
    assert "using CLIP" in capsys.readouterr().out
    assert {type(m).__name__ for m in enc.model.modules()} >= {"QuickGELU"}
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(enc.model.encode_image(x), served.encode_image(x), atol=1e-6)

    # doctor finds the folder and checks it; a changed file is named
    lines = "\n".join(doctor.fetched_lines())
    assert f"fetched folder {out_dir}" in lines and "CLIP ViT-B/32 weights" in lines and "all 6 files present" in lines
    assert doctor.clip_weights()[0]
    with open(out_dir / "sets" / "dtd10" / "test" / "images.bin", "ab") as f:
        f.write(b"x")
    assert "1 files missing or changed: sets/dtd10/test/images.bin" in "\n".join(doctor.fetched_lines())
    assert main(["fetch", "--verify", "--to", str(out_dir)]) == 1


def test_clip_from_the_hub_lands_as_a_plain_file(tmp_path, monkeypatch):
    """The Hugging Face hub path of open_clip's downloader: its cache links snapshots/<rev>/<file> to blobs/<hash>;
    the fetch folder gets the file itself, named by its origin, and no cache folder."""
    import open_clip

    def hub_download(repo_id, filename, revision=None, cache_dir=None):
        if not filename.endswith(".safetensors"):
            raise AssertionError("open_clip asks for the safetensors file first")
        repo = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
        (repo / "blobs").mkdir(parents=True)
        (repo / "blobs" / "9f8e").write_bytes(b"weights")
        (repo / "snapshots" / "abc").mkdir(parents=True)
        (repo / "snapshots" / "abc" / filename).symlink_to(Path("../../blobs/9f8e"))
        return str(repo / "snapshots" / "abc" / filename)

    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", hub_download)
    got = fetch.download_openai(tmp_path / "kit" / "clip" / "ViT-B-32-quickgelu-openai.safetensors")
    assert got == tmp_path / "kit" / "clip" / "ViT-B-32-quickgelu-openai.safetensors"
    assert not got.is_symlink() and got.read_bytes() == b"weights"
    assert [p.name for p in (tmp_path / "kit" / "clip").iterdir()] == [got.name]


def test_a_set_that_cannot_be_fetched_is_named_and_recorded(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fetch, "load_dataset", _fake_load_dataset([], fail=("dtd10",)))
    assert main(["fetch", "--data", "course", "--to", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not fetched: dtd10/test" in err
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["datasets"]["dtd10/test"].startswith("failed: downloading 'dtd10' failed")
    assert manifest["datasets"]["cifar10/train"] == "ok, 3 images" and manifest["clip"] is None


def test_unknown_set_names_are_refused_before_any_download(tmp_path, capsys):
    assert main(["fetch", "--data", "cifar10,nope", "--to", str(tmp_path)]) == 2
    assert "--data nope: unknown dataset" in capsys.readouterr().err
