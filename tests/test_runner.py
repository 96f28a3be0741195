"""`reprolab run`: rows for every method and kind, resume without duplicates or losses, the CLI's errors.

Fast tests use the tiny random-init encoder on small real subsets (CIFAR-10 from the course data); one test runs
the quickstart flow with the real offline stand-in on small settings.
"""

import collections
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reprolab.cli import main
from reprolab.experiment.config import load_config
from reprolab.experiment.results import ResultsDB, validate_row
from reprolab.experiment.runner import run

ROOT = Path(__file__).resolve().parents[1]
TINY = """
encoder: tiny
train_subset: 60
test_subset: 30
shift_subset: 20
ood_subset: 20
shift_sets: [cifar10c:gaussian_noise:3, cifar10c:contrast:3]
ood_sets: [dtd10, sklearn_digits]
eval_batch_size: 32
rrp_alphas: [0.0, 0.5, 1.0]
wise_alphas: [0.0, 1.0]
methods:
  - name: zeroshot
  - name: linear_probe
    params: {backend: torch, epochs: 3}
  - name: finetune
    params: {lr: 1.0e-3}
    train: {steps: 4, batch_size: 8, warmup: 1, ckpt_every: 2, progress: false}
  - name: reprogrammer
    params: {mode: both, loss: focal}
    train: {steps: 4, batch_size: 8, warmup: 1, ckpt_every: 2, progress: false}
  - name: residual_reprogrammer
  - name: wise_ft
    base: finetune
"""
METHODS = {"zeroshot", "linear_probe", "finetune", "reprogrammer", "residual_reprogrammer", "wise_ft"}


def keys(out) -> list:
    return [(r["method"], r["eval_set"], r["seed"], r["alpha"]) for r in ResultsDB(Path(out) / "results.jsonl").rows()]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, shared_datasets):
    d = tmp_path_factory.mktemp("run")
    cfg = d / "tiny.yaml"
    cfg.write_text(TINY)
    report = run(load_config(cfg), d / "out")
    return cfg, d / "out", report


def test_run_has_rows_for_every_method_and_kind(finished):
    _, out, report = finished
    rows = ResultsDB(out / "results.jsonl").rows()
    assert {r["method"] for r in rows} == METHODS
    for r in rows:
        validate_row(r)
        assert r["encoder"] == "openclip-tiny-random-s0" and r["train_dataset"] == "cifar10"
    by = collections.defaultdict(set)
    for r in rows:
        by[r["method"]].add(r["kind"])
    assert all(by[m] == {"id", "shift", "ood"} for m in METHODS)
    rrp = [r for r in rows if r["method"] == "residual_reprogrammer"]
    assert sorted({r["alpha"] for r in rrp}) == [0.0, 0.5, 1.0] and len(rrp) == 3 * 5
    assert {r["alpha_meaning"] for r in rrp} == {"zero-shot weight (RRP)"}
    assert {r["alpha_meaning"] for r in rows if r["method"] == "wise_ft"} == {"fine-tuned weight (WiSE-FT)"}
    assert all(r["alpha"] is None for r in rows if r["method"] not in ("residual_reprogrammer", "wise_ft"))
    assert len(set(keys(out))) == len(rows)  # no duplicates
    assert report == out / "report.html" and (out / "checkpoints" / "reprogrammer-s0" / "checkpoint.json").exists()


def test_sweep_end_points_equal_the_methods_they_interpolate(finished):
    """RRP at α=0 is the reprogrammer (from its checkpoint, not retrained), at α=1 zero-shot; WiSE-FT α=0/1 too."""
    rows = ResultsDB(finished[1] / "results.jsonl").rows()
    m = {(r["method"], r["eval_set"], r["alpha"]): r["metrics"] for r in rows}
    for s in ("cifar10", "cifar10c:contrast:3", "dtd10"):
        for a, ref in (
            ((0.0, "residual_reprogrammer"), "reprogrammer"),
            ((1.0, "residual_reprogrammer"), "zeroshot"),
            ((0.0, "wise_ft"), "zeroshot"),
            ((1.0, "wise_ft"), "finetune"),
        ):
            got, want = m[(a[1], s, a[0])], m[(ref, s, None)]
            for k in want:
                assert got[k] == pytest.approx(want[k], abs=1e-6), (a, ref, s, k)


def test_probe_rows_from_cached_features_equal_the_harness(finished):
    """The linear probe is fitted and scored on the zero-shot run's cached features: same rows as the harness."""
    from reprolab.evaluation.evaluate import evaluate_method
    from reprolab.experiment.runner import Runner

    cfg, out, _ = finished
    r = Runner(load_config(cfg), out)
    r.load()
    spec = r.specs["linear_probe"]
    probe = r.trained(spec, 0)
    direct = evaluate_method(probe, r.id_set, r.shift_sets, r.ood_sets, cache=None, progress=False)
    stored = {
        (x["eval_set"]): x["metrics"] for x in ResultsDB(out / "results.jsonl").rows() if x["method"] == "linear_probe"
    }
    for row in direct:
        for k, v in row["metrics"].items():
            assert stored[row["eval_set"]][k] == pytest.approx(v, abs=1e-6)


def test_rerun_skips_done_work_and_adds_only_what_is_missing(finished, tmp_path, capsys):
    cfg, out, _ = finished
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    before = keys(copy)
    assert main(["run", str(cfg), "--out", str(copy)]) == 0
    assert keys(copy) == before and "skipped" in capsys.readouterr().out
    assert main(["run", str(cfg), "--out", str(copy), "--set", "rrp_alphas=[0.0, 0.25, 0.5, 1.0]"]) == 0
    new = keys(copy)[len(before) :]
    assert {k[0] for k in new} == {"residual_reprogrammer"} and {k[3] for k in new} == {0.25} and len(new) == 5
    # a changed training config is a new config: retrained, old checkpoint kept aside, rows under a new hash
    assert main(["run", str(cfg), "--out", str(copy), "--set", "methods.reprogrammer.train.steps=2"]) == 0
    assert list((copy / "checkpoints").glob("reprogrammer-s0.stale-*"))
    hashes = {r["config_hash"] for r in ResultsDB(copy / "results.jsonl").rows() if r["method"] == "reprogrammer"}
    assert len(hashes) == 2 and (copy / "report.html").exists()
    capsys.readouterr()
    # back to the first config: its checkpoint is moved back; a new temperature re-evaluates without retraining
    assert main(["run", str(cfg), "--out", str(copy), "--set", "T=0.02"]) == 0
    log = capsys.readouterr().out
    assert "loaded finished checkpoint" in log and ": training " not in log


def test_killed_run_resumes_to_the_same_rows_without_duplicates(finished, tmp_path):
    cfg, out, _ = finished
    d = tmp_path / "out"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "reprolab", "run", str(cfg), "--out", str(d)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results, t0 = d / "results.jsonl", time.time()
    while not (results.exists() and results.stat().st_size > 0):  # wait for the first method's rows
        assert proc.poll() is None, "run ended before it wrote any rows"
        assert time.time() - t0 < 600, "no rows after 10 minutes"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = keys(d)
    assert 0 < len(partial) < len(keys(out))
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    got = keys(d)
    assert len(got) == len(set(got)) and sorted(got, key=str) == sorted(keys(out), key=str)
    assert got[: len(partial)] == partial  # rows are only ever appended


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("encoder: tiny\nmethods: [zeroshot]\ntrain_subsett: 5\n")
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reprolab: error: unknown key 'train_subsett'") and "\n" not in err
    assert main(["run", str(bad), "--set", "nonsense"]) == 2
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 2
    r = subprocess.run(
        [sys.executable, "-m", "reprolab", "run", str(tmp_path / "missing.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.startswith("reprolab: error:") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr


def test_quickstart_flow_with_the_standin_on_real_cifar10(tmp_path, shared_datasets):
    """The README demo on small settings: real stand-in weights, real CIFAR-10, every quickstart method."""
    small = [
        "train_subset=100",
        "test_subset=100",
        "shift_subset=40",
        "ood_subset=40",
        "methods.finetune.train.steps=6",
        "methods.finetune.train.batch_size=8",
        "methods.reprogrammer.train.steps=6",
        "methods.reprogrammer.train.batch_size=8",
    ]
    cfg = load_config(ROOT / "configs" / "quickstart.yaml", small)
    out = tmp_path / "qs"
    run(cfg, out)
    rows = ResultsDB(out / "results.jsonl").rows()
    assert {r["method"] for r in rows} == {
        "zeroshot",
        "linear_probe",
        "finetune",
        "reprogrammer",
        "residual_reprogrammer",
    }
    assert {r["kind"] for r in rows} == {"id", "shift", "ood"}
    assert all(r["encoder"].startswith("standin") for r in rows)
    zs = next(r for r in rows if r["method"] == "zeroshot" and r["kind"] == "id")
    assert zs["n"] == 100 and zs["metrics"]["acc"] > 0.2  # a real zero-shot prior (chance is 0.1)
    page = (out / "report.html").read_text()
    assert "offline stand-in (EfficientNet-Lite2 + MPNet) — not CLIP" in page and "<table" in page  # the demo's prior
