"""A teacher's precomputed course (issue 16): course_fit saves a finished run once and loads it after, only for the
same settings; `reprolab precompute` executes notebooks into DIR and a second execution loads instead of training."""

import json

import nbformat
import pytest
import torch

from reprolab.course.shared import FeatureAccuracyTracker, course_cache, course_fit
from reprolab.methods import Reprogrammer
from reprolab.training import TrainConfig

CFG = TrainConfig(steps=3, batch_size=8, warmup=1, seed=0, device="cpu", progress=False)


def test_course_fit_without_a_folder_is_plain_fit(tiny, tiny_set, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("REPROLAB_PRECOMPUTED", raising=False)
    monkeypatch.chdir(tmp_path)
    h = course_fit(Reprogrammer(tiny, mode="text").setup(tiny_set.classnames), tiny_set, CFG, "t")
    assert len(h.steps) == 3 and list(tmp_path.iterdir()) == [] and capsys.readouterr().out == ""


def test_course_fit_saves_once_then_loads_the_same_run(tiny, tiny_set, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("REPROLAB_PRECOMPUTED", str(tmp_path))
    a = Reprogrammer(tiny, mode="text", lr_text=1e-2).setup(tiny_set.classnames)
    tracker = FeatureAccuracyTracker(tiny, tiny_set, every=1, cache=course_cache(tiny))
    ha = course_fit(a, tiny_set, CFG, "t-rp", callback=tracker)
    assert "trained here and saved" in capsys.readouterr().out and len(tracker.records) == 3
    assert (tmp_path / "cache" / "openclip-tiny-random-s0").is_dir()

    b = Reprogrammer(tiny, mode="text", lr_text=1e-2).setup(tiny_set.classnames)
    t2 = FeatureAccuracyTracker(tiny, tiny_set, every=1, cache=course_cache(tiny))
    hb = course_fit(b, tiny_set, CFG, "t-rp", callback=t2)
    assert "loaded the trained weights precomputed" in capsys.readouterr().out
    sa, sb = a.trainable_state(), b.trainable_state()
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and sa["text.token_delta_rows"].abs().sum() > 0
    assert [r["loss"] for r in ha.steps] == [r["loss"] for r in hb.steps] and t2.records == tracker.records

    c = Reprogrammer(tiny, mode="text", lr_text=2e-2).setup(tiny_set.classnames)  # other settings: trained, not loaded
    course_fit(c, tiny_set, CFG, "t-rp")
    assert "trained here" in capsys.readouterr().out
    assert len(list((tmp_path / "checkpoints").iterdir())) == 2
    course_fit(
        Reprogrammer(tiny, mode="text", lr_text=1e-2).setup(tiny_set.classnames), tiny_set, CFG, "t-rp", retrain=True
    )
    assert "loaded" not in capsys.readouterr().out


NOTEBOOK_CODE = """
import torch
from reprolab.course.shared import course_fit
from reprolab.encoders import load_encoder
from reprolab.methods import Reprogrammer
from reprolab.training import TrainConfig

class Data(torch.utils.data.Dataset):
    key = "synthetic-16"
    def __len__(self): return 16
    def __getitem__(self, i): return torch.full((3, 32, 32), i / 16), i % 4

encoder = load_encoder(ENCODER)
rp = Reprogrammer(encoder, mode="text").setup(["cat", "dog", "car", "ship"])
h = course_fit(rp, Data(), TrainConfig(steps=2 if FAST else 4, batch_size=4, warmup=1, progress=False), "nb-test")
print("encoder", encoder.id, "steps", len(h.steps))
"""


def _notebook(folder):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('FAST = True\nENCODER = "auto"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(NOTEBOOK_CODE)]
    nbformat.write(nb, folder / "00_test.ipynb")


def test_precompute_runs_the_notebooks_into_dir_and_students_load(tmp_path, monkeypatch):
    pytest.importorskip("nbclient")
    from reprolab.cli import main
    from reprolab.course.precompute import execute

    monkeypatch.delenv("REPROLAB_PRECOMPUTED", raising=False)
    nbs, out = tmp_path / "nbs", tmp_path / "pre"
    nbs.mkdir()
    _notebook(nbs)
    monkeypatch.setattr("reprolab.course.precompute.course_notebooks", lambda folder, only: sorted(nbs.glob("*.ipynb")))
    assert main(["precompute", "--course", "--encoder", "tiny", "--to", str(out)]) == 0
    manifest = json.loads((out / "precomputed.json").read_text())
    assert (
        manifest["encoder_id"] == "openclip-tiny-random-s0" and manifest["notebooks"]["00_test.ipynb"]["error"] is None
    )
    slots = list((out / "checkpoints").iterdir())
    assert len(slots) == 1 and slots[0].name.startswith("nb-test-openclip-tiny-random-s0-")

    import nbformat as nbf
    from nbclient import NotebookClient

    from reprolab.course.precompute import parametrise

    nb = parametrise(nbf.read(nbs / "00_test.ipynb", as_version=4), "tiny", True)
    monkeypatch.setenv("REPROLAB_PRECOMPUTED", str(out))
    NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(nbs)}}).execute()
    text = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "loaded the trained weights precomputed" in text and "encoder openclip-tiny-random-s0 steps 2" in text
    assert execute(nbs / "00_test.ipynb", "tiny", False, {"REPROLAB_PRECOMPUTED": str(out)})["error"] is None
    assert len(list((out / "checkpoints").iterdir())) == 2  # FAST=False is another run: trained and added
