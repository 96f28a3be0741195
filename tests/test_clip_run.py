"""The real-CLIP path with CLIP's shapes (issue 16): ``pytest -m clip`` / ``make test-clip``.

A random-init ``ViT-B-32-quickgelu`` (:func:`reprolab.encoders.testing.save_random_clip`, cached beside the
stand-in's weights) has CLIP's shapes: 224-px canvas, 77-token context, a 49,408-row token table. With it, through
``reprolab run`` shrunk with ``--set`` to a few images and two training steps: the quickstart (after a stand-in run
in the same folder, as a classroom switches) and ``configs/paper/cifar10.yaml`` (every method of Table 1, on the
offline evaluation sets); and ``reprolab precompute`` of a course notebook that a student's run then loads. Its
accuracies mean nothing; that the runs end, with this encoder's rows in the table and the report, is what is
checked. Measured here: see README ("Contributing").
"""

import html
import json
from pathlib import Path

import pytest

from reprolab.experiment.paper_table import paper_table
from reprolab.experiment.report import encoder_name
from reprolab.experiment.results import ResultsDB

pytestmark = pytest.mark.clip
ROOT = Path(__file__).resolve().parents[1]

ENCODER_ID = "openclip-ViT-B-32-quickgelu-random-init-s0"
SHRINK = [
    "train_subset=40",
    "test_subset=20",
    "shift_subset=10",
    "ood_subset=10",
    "eval_batch_size=32",
    *[
        f"methods.{m}.train.{k}={v}"
        for m in ("finetune", "reprogrammer")
        for k, v in [("steps", 2), ("batch_size", 8), ("warmup", 1), ("ckpt_every", 1)]
    ],
]


@pytest.fixture(scope="module")
def clip_weights():
    from reprolab.bench.course import clip_shaped_weights

    return clip_shaped_weights()


def test_quickstart_runs_to_the_end_with_the_clip_shaped_encoder(clip_weights, shared_datasets, tmp_path, monkeypatch):
    """A classroom's path in one checkout: the stand-in first, then CLIP's shapes; each run keeps its own folder."""
    from reprolab.cli import main

    monkeypatch.chdir(tmp_path)
    for enc in ("encoder=standin", f"encoder=openclip:ViT-B-32-quickgelu:{clip_weights}"):
        args = ["run", str(ROOT / "configs" / "quickstart.yaml"), "--set", enc]
        for s in SHRINK:
            args += ["--set", s]
        assert main(args) == 0
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 2 and f"quickstart-{ENCODER_ID}" in folders, folders
    out = tmp_path / "runs" / f"quickstart-{ENCODER_ID}"  # the default folder is keyed by the encoder
    df = ResultsDB(out / "results.jsonl").to_frame()
    assert set(df.encoder) == {ENCODER_ID}
    table = paper_table(df)
    assert len(table) == 4 + 6  # zero-shot, linear probe, fine-tuning, reprogrammer, RRP at six α's
    report = (out / "report.html").read_text()
    name = encoder_name(ENCODER_ID)
    assert "random weights" in name and f"<h2>Encoder: {html.escape(name)}" in report
    assert report.count("<h2>Encoder:") == 1  # one encoder's section: the current one


PAPER_SHRINK = [
    "seeds=[0]",
    "download=false",
    "train_subset=40",
    "test_subset=20",
    "shift_subset=10",
    "ood_subset=10",
    "eval_batch_size=32",
    "shift_sets=[cifar10c:gaussian_noise:3,cifar10c:contrast:3]",  # the paper's others need downloads
    "ood_sets=[dtd10,sklearn_digits]",
    "methods.linear_probe.params.epochs=1",
    *[
        f"methods.{m}.train.{k}={v}"
        for m in ("finetune", "lp_ft", "coop", "visual_prompt", "reprogrammer")
        for k, v in [("epochs", 1), ("steps", 2), ("batch_size", 8), ("warmup", 1), ("ckpt_every", 1)]
    ],
]


def test_paper_config_runs_to_the_end_with_the_clip_shaped_encoder(
    clip_weights, shared_datasets, tmp_path, monkeypatch
):
    """configs/paper/cifar10.yaml — every method of Table 1 (CoOp's 16 context tokens in the 77-token context, the
    visual prompt and the official-resize reprogrammer on the 224-px canvas, WiSE-FT and RRP curves, the official
    metric convention) — with CLIP's shapes, shrunk to two steps per method and the offline evaluation sets."""
    from reprolab.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["run", str(ROOT / "configs" / "paper" / "cifar10.yaml"), "--out", "runs/paper-clip-shaped"]
    for s in [f"encoder=openclip:ViT-B-32-quickgelu:{clip_weights}", *PAPER_SHRINK]:
        args += ["--set", s]
    assert main(args) == 0
    df = ResultsDB(tmp_path / "runs" / "paper-clip-shaped" / "results.jsonl").to_frame()
    assert set(df.encoder) == {ENCODER_ID}
    methods = set(df.method)
    for m in ("zeroshot", "linear_probe", "finetune", "lp_ft", "wise_ft", "coop", "visual_prompt", "reprogrammer"):
        assert m in methods, f"{m} wrote no row"
    assert set(df.metric_convention.dropna()) == {"official"}
    assert (df[df.method == "reprogrammer"].resize == "official").all()


def test_precompute_with_the_clip_shaped_encoder_and_a_student_loads_it(clip_weights, shared_datasets, tmp_path):
    """A teacher's `reprolab precompute` with CLIP's shapes (notebook 02: text-only reprogramming on cached
    features), then a student's run of the same notebook under REPROLAB_PRECOMPUTED: it loads the run instead of
    training it (the teacher's checkpoint is untouched), from the teacher's folder."""
    pytest.importorskip("nbclient")
    from reprolab.cli import main
    from reprolab.course.precompute import execute

    enc, pre = f"openclip:ViT-B-32-quickgelu:{clip_weights}", tmp_path / "pre"
    assert main(["precompute", "--course", "--encoder", enc, "--notebooks", "02", "--to", str(pre)]) == 0
    teacher = json.loads((pre / "precomputed.json").read_text())
    assert teacher["encoder_id"] == ENCODER_ID and teacher["notebooks"]["02_text_reprogramming.ipynb"]["error"] is None
    slots = [p.name for p in (pre / "checkpoints").iterdir()]
    assert len(slots) == 1 and slots[0].startswith(f"reprogrammer-{ENCODER_ID}-")
    assert (pre / "cache" / ENCODER_ID).is_dir()
    before = {p: p.stat().st_mtime_ns for p in (pre / "checkpoints").rglob("*")}
    student = execute(ROOT / "notebooks" / "02_text_reprogramming.ipynb", enc, True, {"REPROLAB_PRECOMPUTED": str(pre)})
    assert student["error"] is None
    assert {p: p.stat().st_mtime_ns for p in (pre / "checkpoints").rglob("*")} == before  # loaded, not retrained
