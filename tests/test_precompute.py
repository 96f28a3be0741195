"""Train once, reuse (issues 16, 17): course_fit saves a finished run once, keyed by its settings (not by the notebook),
and loads it after, only for the same settings; `reprolab precompute` executes notebooks into DIR and a second
execution loads instead of training."""

import json

import nbformat
import pytest
import torch

from reprolab.course.shared import FeatureAccuracyTracker, course_cache, course_fit
from reprolab.methods import Reprogrammer
from reprolab.training import TrainConfig

CFG = TrainConfig(steps=3, batch_size=8, warmup=1, seed=0, device="cpu", progress=False)


def _rp(tiny, tiny_set, lr_text=1e-2):
    return Reprogrammer(tiny, mode="text", lr_text=lr_text).setup(tiny_set.classnames)


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """Runs under an empty REPROLAB_RUNS, no precomputed folder; counts the real trainings."""
    import reprolab.training

    monkeypatch.delenv("REPROLAB_PRECOMPUTED", raising=False)
    monkeypatch.setenv("REPROLAB_RUNS", str(tmp_path / "runs"))
    calls, real = [], reprolab.training.fit
    monkeypatch.setattr(reprolab.training, "fit", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_course_fit_trains_once_and_a_later_notebook_loads_it(tiny, tiny_set, counted, tmp_path, capsys):
    a = _rp(tiny, tiny_set)
    tracker = FeatureAccuracyTracker(tiny, tiny_set, every=1, cache=course_cache(tiny))
    ha = course_fit(a, tiny_set, CFG, "nb04-rp", callback=tracker)
    assert "trained here and saved" in capsys.readouterr().out and counted == [1] and len(tracker.records) == 3
    slots = list((tmp_path / "runs" / "checkpoints").iterdir())  # REPROLAB_RUNS holds the checkpoints and the cache
    assert len(slots) == 1 and slots[0].name.startswith("reprogrammer-openclip-tiny-random-s0-")
    assert (tmp_path / "runs" / "cache" / "openclip-tiny-random-s0").is_dir()

    b = _rp(tiny, tiny_set)  # another notebook, same settings: loaded, not trained
    t2 = FeatureAccuracyTracker(tiny, tiny_set, every=1, cache=course_cache(tiny))
    hb = course_fit(b, tiny_set, CFG, "nb05-rp", callback=t2)
    out = capsys.readouterr().out
    assert "nb05-rp: loaded the reprogrammer trained by an earlier notebook (nb04-rp, 3 steps)" in out
    assert "retrain=True" in out and counted == [1]
    sa, sb = a.trainable_state(), b.trainable_state()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert sa["text.token_delta_rows"].abs().sum() > 0  # a trained state, not two untouched ones
    assert [r["loss"] for r in ha.steps] == [r["loss"] for r in hb.steps] and t2.records == tracker.records
    assert ha.seconds > 0 and hb.seconds == ha.seconds  # the training time as measured where it was trained


def test_course_fit_does_not_save_a_run_on_a_set_without_a_key(tiny, tiny_set, counted, tmp_path, capsys):
    del tiny_set.key  # nothing tells this set from another of the same size
    for _ in range(2):
        course_fit(_rp(tiny, tiny_set), tiny_set, CFG, "nb04-rp")
    assert "has no .key" in capsys.readouterr().out and counted == [1, 1] and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "other", [dict(lr_text=2e-2), dict(cfg=TrainConfig(steps=4, batch_size=8, warmup=1, seed=0, progress=False))]
)
def test_course_fit_trains_a_run_with_other_settings(tiny, tiny_set, counted, tmp_path, capsys, other):
    course_fit(_rp(tiny, tiny_set), tiny_set, CFG, "nb04-rp")
    course_fit(_rp(tiny, tiny_set, other.get("lr_text", 1e-2)), tiny_set, other.get("cfg", CFG), "nb05-rp")
    assert "loaded" not in capsys.readouterr().out and counted == [1, 1]
    assert len(list((tmp_path / "runs" / "checkpoints").iterdir())) == 2


def test_course_fit_retrains_an_unfinished_run_and_on_request(tiny, tiny_set, counted, tmp_path, capsys):
    from reprolab.checkpoint import load_checkpoint, save_checkpoint

    a = _rp(tiny, tiny_set)
    course_fit(a, tiny_set, CFG, "nb04-rp")
    (slot,) = (tmp_path / "runs" / "checkpoints").iterdir()
    tensors, meta = load_checkpoint(slot)
    save_checkpoint(slot, tensors, dict(meta, step=1))  # as an interrupted run would leave it
    course_fit(_rp(tiny, tiny_set), tiny_set, CFG, "nb05-rp")
    assert "loaded" not in capsys.readouterr().out and counted == [1, 1]
    assert load_checkpoint(slot)[1]["step"] == 3  # overwritten by the finished run

    course_fit(_rp(tiny, tiny_set), tiny_set, CFG, "nb05-rp", retrain=True)
    out = capsys.readouterr().out
    assert "loaded" not in out and "trained here and saved" in out and counted == [1, 1, 1]
    assert load_checkpoint(slot)[1]["label"] == "nb05-rp"  # retrain overwrites
    course_fit(_rp(tiny, tiny_set), tiny_set, CFG, "nb06-rp")
    assert "loaded the reprogrammer trained by an earlier notebook (nb05-rp" in capsys.readouterr().out


def test_course_fit_retrains_a_corrupt_checkpoint(tiny, tiny_set, counted, tmp_path, capsys):
    course_fit(_rp(tiny, tiny_set), tiny_set, CFG, "nb04-rp")
    (slot,) = (tmp_path / "runs" / "checkpoints").iterdir()
    (slot / "checkpoint.safetensors").write_bytes(b"truncated")
    course_fit(_rp(tiny, tiny_set), tiny_set, CFG, "nb05-rp")
    out = capsys.readouterr().out
    assert "SHA-256" in out and "training again" in out and counted == [1, 1]


def test_course_fit_under_a_precomputed_folder_saves_and_loads_there(tiny, tiny_set, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("REPROLAB_PRECOMPUTED", str(tmp_path / "pre"))
    monkeypatch.setenv("REPROLAB_RUNS", str(tmp_path / "runs"))
    a = _rp(tiny, tiny_set)
    course_fit(a, tiny_set, CFG, "t-rp")
    assert len(list((tmp_path / "pre" / "checkpoints").iterdir())) == 1 and not (tmp_path / "runs").exists()
    b = _rp(tiny, tiny_set)
    capsys.readouterr()
    course_fit(b, tiny_set, CFG, "t-rp")
    assert "loaded the reprogrammer precomputed (t-rp, 3 steps)" in capsys.readouterr().out
    assert all(torch.equal(v, b.trainable_state()[k]) for k, v in a.trainable_state().items())


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
    assert len(slots) == 1 and slots[0].name.startswith("reprogrammer-openclip-tiny-random-s0-")

    import nbformat as nbf
    from nbclient import NotebookClient

    from reprolab.course.precompute import parametrise

    nb = parametrise(nbf.read(nbs / "00_test.ipynb", as_version=4), "tiny", True)
    monkeypatch.setenv("REPROLAB_PRECOMPUTED", str(out))
    NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(nbs)}}).execute()
    text = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "nb-test: loaded the reprogrammer precomputed" in text and "encoder openclip-tiny-random-s0 steps 2" in text
    assert execute(nbs / "00_test.ipynb", "tiny", False, {"REPROLAB_PRECOMPUTED": str(out)})["error"] is None
    assert len(list((out / "checkpoints").iterdir())) == 2  # FAST=False is another run: trained and added
