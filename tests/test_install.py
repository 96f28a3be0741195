"""Install anywhere: the wheel carries what the library needs (class names, wnid lists, hypernym prompts) and runs
outside the checkout; `device="auto"` never picks Apple's MPS backend on its own.

The wheel test builds the wheel with the shared venv's setuptools (no build isolation, so nothing is downloaded),
installs it ``--no-deps`` into a fresh venv that sees the shared venv's packages through a ``.pth`` line (torch is
not downloaded again), and runs ``reprolab doctor`` and a tiny ``reprolab run`` from a folder outside the checkout.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REPROLAB_SHARED", ROOT.parent / "shared" / "datasets"))
PACKAGE_DATA = [
    "reprolab/data/classnames/cifar10.json",
    "reprolab/data/classnames/cifar100.json",
    "reprolab/data/classnames/fashion_mnist.json",
    "reprolab/data/classnames/stl10.json",
    "reprolab/data/imagenet/wnids.txt",
    "reprolab/data/imagenet/imagenet_a_wnids.txt",
    "reprolab/data/imagenet/imagenet_r_wnids.txt",
    "reprolab/encoders/imagenet_hypernym_prompts.json",
]
TINY_RUN = """\
encoder: tiny
id_dataset: cifar10
train_subset: 20
test_subset: 20
ood_subset: 20
ood_sets: [sklearn_digits]
eval_batch_size: 20
methods:
  - name: zeroshot
  - name: reprogrammer
    params: {mode: both}
    train: {steps: 2, batch_size: 10, warmup: 1, ckpt_every: 1}
"""


def test_auto_device_never_picks_mps(monkeypatch, capsys):
    from reprolab import training

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.delenv("REPROLAB_DEVICE", raising=False)
    monkeypatch.setitem(training._said, "mps", False)
    assert training.pick_device("auto") == torch.device("cpu")
    assert training.pick_device("auto") == torch.device("cpu")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "Apple GPU (MPS)" in out and "REPROLAB_DEVICE=mps" in out  # said once
    assert training.pick_device("mps").type == "mps"  # opting in by name
    monkeypatch.setenv("REPROLAB_DEVICE", "mps")
    assert training.pick_device("auto").type == "mps"  # or by the variable
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("REPROLAB_DEVICE")
    assert training.pick_device("auto").type == "cuda"


def test_class_names_are_package_data():
    from reprolab.datasets.classnames import PACKAGE_DATA as DATA
    from reprolab.datasets.classnames import classnames, imagenet_wnids

    assert DATA == ROOT / "reprolab" / "data" and classnames("cifar10")[0] == "airplane"
    assert len(imagenet_wnids("a")) == 200 and not (ROOT / "data" / "classnames").exists()


def _sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{cmd[:3]} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.mark.slow
def test_the_wheel_installs_outside_the_checkout_and_runs(tmp_path):
    if not SHARED.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the shared datasets are missing at {SHARED} (set REPROLAB_SHARED)")
        pytest.skip(f"needs the shared datasets at {SHARED} (CIFAR-10) for the tiny run")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REPROLAB_CLIP_WEIGHTS")}
    src, dist = tmp_path / "src", tmp_path / "dist"  # a copy: setuptools writes build/ and *.egg-info in the tree
    src.mkdir()
    for part in ("pyproject.toml", "README.md", "reprolab"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(
            ROOT / part,
            src / part,
            **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}),
        )
    _sh(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
        env=env,
    )
    (wheel,) = dist.glob("reprolab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [f for f in PACKAGE_DATA if f not in names] == []

    venv = tmp_path / "venv"
    _sh([sys.executable, "-m", "venv", str(venv)], env=env)  # its pip comes from ensurepip, offline
    py = venv / "bin" / "python"
    site = Path(_sh([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env=env).strip())
    _sh([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], env=env)
    # then the shared venv's packages (torch & co., not downloaded again); its editable reprolab stays inactive
    # because .pth files in a folder named by a .pth line are not processed
    (site / "shared-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "elsewhere"  # outside the checkout: nothing of it may be imported or read
    work.mkdir()
    env.update(REPROLAB_DATA=str(SHARED), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PATH=f"{venv / 'bin'}:{env['PATH']}")
    where = _sh([str(py), "-c", "import reprolab; print(reprolab.__file__)"], cwd=work, env=env)
    assert where.startswith(str(venv)), where

    out = _sh([str(venv / "bin" / "reprolab"), "doctor"], cwd=work, env=env)
    assert "device:" in out and "cifar10 [id]: found" in out

    (work / "tiny.yaml").write_text(TINY_RUN)
    out = _sh([str(venv / "bin" / "reprolab"), "run", "tiny.yaml", "--out", "runs/tiny"], cwd=work, env=env)
    assert (work / "runs" / "tiny" / "report.html").is_file() and "report:" in out
