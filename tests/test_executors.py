"""`reprolab run --executor ray`: the same rows and choices as the serial run, a killed worker retried from its
checkpoint, resuming across executors, and a serial path that never imports Ray.

Ray runs locally with 2 CPUs (one training per CPU) on the tiny random-init encoder and small real CIFAR-10 subsets.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reprolab.experiment.config import load_config
from reprolab.experiment.results import ResultsDB
from reprolab.experiment.runner import run

ROOT = Path(__file__).resolve().parents[1]
TRAIN = "{steps: 4, batch_size: 8, warmup: 1, ckpt_every: 1, progress: false}"
CONFIG = f"""
encoder: tiny
train_subset: 40
val_subset: 20
test_subset: 20
shift_subset: 10
ood_subset: 10
shift_sets: [cifar10c:contrast:3]
ood_sets: [sklearn_digits]
seeds: [0, 1]
eval_batch_size: 32
rrp_alphas: [0.0, 0.5]
methods:
  - name: zeroshot
  - name: finetune
    params: {{lr: 1.0e-3}}
    train: {TRAIN}
  - name: reprogrammer
    sweep: {{lr_text: [5.0e-4, 5.0e-2]}}
    train: {TRAIN}
  - name: residual_reprogrammer
"""


class DieOnce:
    """A fit callback that logs ``pid step`` per step and kills its worker process once, at step 3 (after the
    checkpoint of step 2 is written): the first worker to get there creates ``marker`` and exits."""

    def __init__(self, marker, steps_log):
        self.marker, self.steps_log = str(marker), str(steps_log)

    def __call__(self, step, method, record):
        with open(self.steps_log, "a") as f:
            f.write(f"{os.getpid()} {step}\n")
        if step == 3:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
            os._exit(1)  # as if the machine under this worker went away


def rows(out) -> dict:
    """identity → (metrics, chosen, selected); fails on a duplicate identity."""
    got = {}
    for r in ResultsDB(Path(out) / "results.jsonl").rows():
        k = (r["method"], r["config_hash"], r["seed"], r["eval_set"], r["alpha"], r["kind"])
        assert k not in got, f"duplicate row {k}"
        got[k] = (r["metrics"], r.get("chosen"), r.get("selected"))
    return got


def assert_same_rows(a, b):
    ra, rb = rows(a), rows(b)
    assert ra.keys() == rb.keys()
    for k, (m, *marks) in ra.items():
        assert marks == list(rb[k][1:]), k
        assert rb[k][0] == pytest.approx(m, abs=1e-6), k
    sel = [json.loads((Path(d) / "selection.json").read_text())["methods"] for d in (a, b)]
    assert {m: e["chosen"] for m, e in sel[0].items()} == {m: e["chosen"] for m, e in sel[1].items()}


@pytest.fixture(scope="module")
def ray_executor(tmp_path_factory):
    try:
        import ray
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI installs reprolab[ray]; Ray is missing")
        pytest.skip("Ray is not installed: pip install 'reprolab[ray]'")
    from reprolab.experiment.executors import RayExecutor

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # DieOnce travels to the workers
    for k in ("RAY_raylet_start_wait_time_s", "RAY_agent_register_timeout_ms"):  # a loaded 2-core machine
        os.environ.setdefault(k, "60" if k.endswith("_s") else "60000")  # starts Ray's agents slowly
    d = tmp_path_factory.mktemp("kill")
    for attempt in range(3):  # under heavy load Ray's agents can miss their start-up deadline: start again
        try:
            ex = RayExecutor(
                num_cpus=2,
                callback=DieOnce(d / "died", d / "steps.log"),
                object_store_memory=100 * 2**20,
                log_to_driver=False,
            )
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    ex.steps_log = d / "steps.log"
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_datasets, ray_executor):
    d = tmp_path_factory.mktemp("exec")
    (d / "cfg.yaml").write_text(CONFIG)
    cfg = load_config(d / "cfg.yaml")
    run(cfg, d / "serial")
    with pytest.MonkeyPatch.context() as mp:
        logged = []
        mp.setattr("reprolab.experiment.executors.log", logged.append)
        mp.setattr("reprolab.experiment.protocol.log", logged.append)
        run(cfg, d / "ray", executor=ray_executor)
    return cfg, d / "serial", d / "ray", logged


def test_ray_writes_the_serial_runs_rows_and_choices(runs):
    _, serial, ray_out, _ = runs
    assert_same_rows(serial, ray_out)
    assert len(rows(serial)) == 2 + 2 + 3 * 2 * (1 + 1 + 1 + 2)  # val: 2 candidates, 2 α; test: 3 sets × 2 seeds


def test_scheduler_waits_only_for_the_choice(runs):
    """Before the sweep is decided: both candidates and every seed of the unswept fine-tuning are already
    submitted; the reprogrammer's seed 1 is submitted once its params are chosen."""
    *_, logged = runs
    chose = next(i for i, m in enumerate(logged) if "reprogrammer: chose" in m)
    subs = [(i, m.split("submitted ")[1].split(" →")[0]) for i, m in enumerate(logged) if "submitted" in m]
    early = sorted(s for i, s in subs if i < chose)
    assert early == ["finetune seed 0", "finetune seed 1", "reprogrammer seed 0", "reprogrammer seed 0"]
    assert [s for i, s in subs if i > chose] == ["reprogrammer seed 1"]


def test_killed_worker_is_retried_from_its_checkpoint(runs, ray_executor):
    """One worker died at step 3 of a 4-step training; Ray retried the task, which resumed at step 3 from the
    checkpoint of step 2 (a fresh training starts at step 1) — and the rows above are complete and unduplicated."""
    by_pid: dict = {}
    for ln in ray_executor.steps_log.read_text().splitlines():
        pid, step = map(int, ln.split())
        by_pid.setdefault(pid, []).append(step)
    segments = []  # one per training attempt: within a worker process, steps rise until the next training starts
    for steps in by_pid.values():
        for i, step in enumerate(steps):
            if i == 0 or step <= steps[i - 1]:
                segments.append([])
            segments[-1].append(step)
    assert sorted(s[0] for s in segments) == [1] * 5 + [3]  # 5 trainings + the one resumed attempt
    assert sorted(s[-1] for s in segments) == [3] + [4] * 5  # the killed attempt ended at step 3
    assert (ray_executor.steps_log.parent / "died").exists()


def test_a_serial_run_is_finished_on_ray(runs, ray_executor, tmp_path):
    """Seed 1 removed from a finished serial run (rows and checkpoints): Ray trains just those two and the rows
    are the serial run's again."""
    cfg, serial, _, _ = runs
    half = tmp_path / "half"
    shutil.copytree(serial, half)
    kept = [ln for ln in (half / "results.jsonl").read_text().splitlines() if json.loads(ln)["seed"] == 0]
    (half / "results.jsonl").write_text("".join(ln + "\n" for ln in kept))
    for ck in (half / "checkpoints").glob("*-s1*"):
        shutil.rmtree(ck)
    run(cfg, half, executor=ray_executor)
    assert_same_rows(serial, half)
    assert sorted(p.name.split("-s1")[0] for p in (half / "checkpoints").glob("*-s1*")) == ["finetune", "reprogrammer"]


def test_a_workers_error_comes_back_as_one_line(runs, ray_executor, tmp_path):
    """An error raised by the kit on a worker reaches the driver as itself (the CLI prints it as one line)."""
    from reprolab.errors import ReprolabError

    cfg, *_ = runs
    bad = dataclasses.replace(cfg.methods[1], train={**cfg.methods[1].train, "batch_size": 0})  # finetune
    with pytest.raises(ReprolabError, match="batch_size=0"):
        run(dataclasses.replace(cfg, methods=[bad], val_subset=None), tmp_path / "bad", executor=ray_executor)


def test_the_serial_path_never_imports_ray(tmp_path, shared_datasets):
    (tmp_path / "cfg.yaml").write_text(CONFIG.split("methods:")[0].replace("[0, 1]", "[0]") + "methods: [zeroshot]\n")
    code = (
        "import sys; from reprolab.cli import main; "
        f"assert main(['run', {str(tmp_path / 'cfg.yaml')!r}, '--out', {str(tmp_path / 'out')!r}]) == 0; "
        "assert 'ray' not in sys.modules, 'the serial path imported ray'"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "out" / "results.jsonl").exists()


def test_executor_errors_are_one_line(capsys):
    from reprolab.cli import main

    assert main(["run", str(ROOT / "configs" / "quickstart.yaml"), "--address", "auto"]) == 2
    assert "--address is for --executor ray" in capsys.readouterr().err
