"""report.html from a synthetic results.jsonl (no training): honest header, table, offline plotly figures."""

import re

import numpy as np
import pytest
import torch

from reprolab.checkpoint import save_checkpoint
from reprolab.errors import ReprolabError
from reprolab.experiment.report import build_report, encoder_name
from reprolab.experiment.results import ResultsDB

STANDIN_ID = "standin-effnetlite0-minilm-128px-t2-k10-c1"
SETS = [("cifar10", "id"), ("cifar10c:contrast:3", "shift"), ("dtd10", "ood"), ("sklearn_digits", "ood")]


def _rows(method, acc, auroc, seed=0, alpha=None, meaning=None, h="h1"):
    out = []
    for name, kind in SETS:
        m = (
            {"acc": acc - (0.1 if kind == "shift" else 0)}
            if kind != "ood"
            else {"fpr95": 1 - auroc, "auroc": auroc, "aupr_in": auroc, "aupr_out": auroc}
        )
        out.append(
            dict(
                method=method,
                encoder=STANDIN_ID,
                train_dataset="cifar10",
                eval_set=name,
                kind=kind,
                seed=seed,
                alpha=alpha,
                alpha_meaning=meaning,
                metrics=m,
                n=100,
                config_hash=h,
            )
        )
    return out


@pytest.fixture
def run_dir(tmp_path):
    db = ResultsDB(tmp_path / "results.jsonl")
    for seed in (0, 1):
        db.append_many(
            _rows("zeroshot", 0.40, 0.60, seed)
            + _rows("finetune", 0.70 + seed / 100, 0.50, seed)
            + _rows("reprogrammer", 0.50, 0.70, seed)
        )
        for a in (0.0, 0.5, 1.0):
            db.append_many(
                _rows("residual_reprogrammer", 0.5 - 0.1 * a, 0.7 - 0.1 * a, seed, a, "zero-shot weight (RRP)")
            )
            db.append_many(_rows("wise_ft", 0.4 + 0.3 * a, 0.6 - 0.1 * a, seed, a, "fine-tuned weight (WiSE-FT)"))
    rng = np.random.default_rng(0)
    (tmp_path / "scores").mkdir()
    np.savez(
        tmp_path / "scores" / "zeroshot-s0.npz",
        __kinds__=np.array([f"{n}\t{k}" for n, k in SETS]),
        **{f"set:{n}": rng.random(50) for n, _ in SETS},
    )
    W = torch.randn(3, 128, 128)
    save_checkpoint(
        tmp_path / "checkpoints" / "reprogrammer-s0",
        {"model.image.W": W},
        dict(step=3, total=3, method={"canvas": 128, "mr_res": 110}),
    )
    return tmp_path


def test_report_names_the_standin_honestly_and_has_the_table(run_dir):
    page = build_report(run_dir).read_text()
    assert "offline stand-in (EfficientNet-Lite0 + MiniLM)" in page
    assert not re.search(r"Encoder[^<]*:\s*<b>CLIP", page)  # the stand-in is never presented as CLIP
    assert "measured by this run" in page and "not the paper" in page and "How to read this" in page
    table = page[page.index("<table") : page.index("</table>")]
    for col in ("ID acc", "shift acc", "FPR95", "AUROC", "AUPR-In", "AUPR-Out", "holistic"):
        assert f"<th>{col}</th>" in table
    assert "residual_reprogrammer (α=0.5)" in table and "wise_ft (α=1)" in table
    assert "70.50 ± 0.71" in table  # finetune ID acc over seeds 0.70 / 0.71, in percent


def test_report_embeds_plotly_once_and_draws_every_figure(run_dir):
    page = build_report(run_dir).read_text()
    assert page.count("plotly.js v") == 1 and "<script src=" not in page  # inline, once: works offline
    assert page.count("Plotly.newPlot") == 5  # trade-off, α curves, per-set bars, score histograms, δ image
    assert "weight on zero-shot features" in page and "weight on fine-tuned" in page
    assert "learned frame" in page and "OOD score distributions" in page


def test_latest_config_wins_and_encoder_names(run_dir):
    db = ResultsDB(run_dir / "results.jsonl")
    db.append_many(_rows("zeroshot", 0.42, 0.61, 0, h="h2"))  # a re-run with another config
    page = build_report(run_dir).read_text()
    row = page[page.index("<th>zeroshot</th>") :][:200]
    assert "42.00" in row
    assert "not CLIP" in encoder_name(STANDIN_ID)
    assert encoder_name(STANDIN_ID) == "offline stand-in (EfficientNet-Lite0 + MiniLM) — not CLIP"
    strong = "standin-effnetlite2-mpnet-hypernyms-160px-t3-k50-c1"
    assert encoder_name(strong) == "offline stand-in (EfficientNet-Lite2 + MPNet) — not CLIP"
    assert encoder_name("openclip-ViT-B-32-quickgelu-openai").startswith("CLIP")


def test_missing_results_is_a_one_line_error(tmp_path):
    with pytest.raises(ReprolabError) as e:
        build_report(tmp_path)
    assert "results.jsonl" in str(e.value) and "\n" not in str(e.value)
