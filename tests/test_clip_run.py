"""The quickstart, end to end, with the CLIP-shaped encoder (issue 16): ``pytest -m clip`` / ``make test-clip``.

A random-init ``ViT-B-32-quickgelu`` (:func:`reprolab.encoders.testing.save_random_clip`, cached beside the
stand-in's weights) has CLIP's shapes: 224-px canvas, 77-token context, a 49,408-row token table. The quickstart
config runs with it through ``reprolab run`` — every method, every shift and OOD set, the report — shrunk with
``--set`` to a few images and two training steps. Its accuracies mean nothing; that the run ends, with this
encoder's rows in the table and the report, is what is checked. Measured here: see README ("Testing").
"""

import html
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
    from reprolab.cli import main

    monkeypatch.chdir(tmp_path)
    enc = f"encoder=openclip:ViT-B-32-quickgelu:{clip_weights}"
    args = ["run", str(ROOT / "configs" / "quickstart.yaml"), "--set", enc]
    for s in SHRINK:
        args += ["--set", s]
    assert main(args) == 0
    out = tmp_path / "runs" / f"quickstart-{ENCODER_ID}"  # the default folder is keyed by the encoder
    df = ResultsDB(out / "results.jsonl").to_frame()
    assert set(df.encoder) == {ENCODER_ID}
    table = paper_table(df)
    assert len(table) == 4 + 6  # zero-shot, linear probe, fine-tuning, reprogrammer, RRP at six α's
    report = (out / "report.html").read_text()
    name = encoder_name(ENCODER_ID)
    assert "random weights" in name and f"<h2>Encoder: {html.escape(name)}" in report
    assert report.count("<h2>Encoder:") == 1  # one encoder's section: the current one
