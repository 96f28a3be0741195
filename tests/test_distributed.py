"""Data-parallel `reprolab run` under torchrun (reprolab.distributed): two gloo processes reach the trained tensors and
the rows of one process with the same global batch; the sharding helpers; one file writer."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import reprolab.distributed as distributed
from reprolab.errors import ConfigError
from reprolab.evaluation.features import rank_share
from reprolab.experiment.config import load_config
from reprolab.experiment.runner import run

ROOT = Path(__file__).resolve().parents[1]
TRAIN = "{steps: 3, batch_size: 8, warmup: 1, ckpt_every: 1, progress: false}"
CONFIG = f"""
encoder: tiny
train_subset: 40
test_subset: 20
shift_subset: 10
ood_subset: 10
shift_sets: [cifar10c:contrast:3]
ood_sets: [sklearn_digits]
eval_batch_size: 8
rrp_alphas: [0.0, 0.5]
methods:
  - name: zeroshot
  - name: linear_probe
    params: {{backend: torch, epochs: 3}}
  - name: finetune
    params: {{lr: 1.0e-3}}
    train: {TRAIN}
  - name: reprogrammer
    params: {{mode: both, loss: focal}}
    train: {TRAIN}
  - name: residual_reprogrammer
"""


@pytest.fixture
def rank1_of_2(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: 1)


def test_single_process_is_untouched(tiny_set):
    idx = torch.arange(8)
    assert distributed.shard(idx) is idx and distributed.local_rows(idx) is idx
    assert distributed.gather_with_grad(idx) is idx and distributed.gather_plain(idx) is idx
    assert distributed.shard_range(5) == range(5) and rank_share(tiny_set, 8) is tiny_set
    assert distributed.is_main() and distributed.init_from_env() is False


def test_shards_are_contiguous_blocks_in_rank_order(rank1_of_2, tiny_set):
    assert distributed.shard(torch.arange(8)).tolist() == [4, 5, 6, 7]
    assert distributed.local_rows(torch.arange(8)).tolist() == [4, 5, 6, 7]
    assert distributed.shard_range(5) == range(2, 5)  # batches 2, 3, 4 of 5
    share = rank_share(tiny_set, 8)  # 32 images = 4 batches: rank 1 encodes batches 2 and 3
    assert torch.equal(share.tensors[0], tiny_set.images[16:]) and not distributed.is_main()
    with pytest.raises(ConfigError, match="batch size divisible by 2"):
        distributed.shard(torch.arange(7))


def checkpoint(out, name):
    return load_file(Path(out) / "checkpoints" / name / "checkpoint.safetensors")


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="this torch has no gloo backend")
def test_torchrun_two_processes_equal_one_process(tmp_path, shared_datasets):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG)
    run(load_config(cfg), tmp_path / "one")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "reprolab", "run", str(cfg), "--out", str(tmp_path / "two")]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("report: ") == 1  # rank 0 speaks

    one, two = checkpoint(tmp_path / "one", "reprogrammer-s0"), checkpoint(tmp_path / "two", "reprogrammer-s0")
    assert one.keys() == two.keys() and any(k.startswith("model.text") for k in one)
    for k in one:  # W, the text deltas (and, looser, Adam's moments): the all-reduced gradient is the global batch's
        rtol = 1e-5 if k.startswith("model.") else 1e-3  # float32 sums in another order: moments agree to ~1e-4
        assert torch.allclose(one[k].float(), two[k].float(), atol=1e-6, rtol=rtol), k
    one, two = checkpoint(tmp_path / "one", "finetune-s0"), checkpoint(tmp_path / "two", "finetune-s0")
    for k in (k for k in one if k.startswith("model.")):
        a, b = one[k].float(), two[k].float()
        if k.endswith("attn.in_proj_bias"):  # [q; k; v]: the key bias has zero gradient in exact arithmetic
            n = len(a) // 3  # (softmax is shift-invariant), and Adam turns its ±1e-12 rounding noise, whose sign
            a, b = torch.cat([a[:n], a[2 * n :]]), torch.cat([b[:n], b[2 * n :]])  # depends on the reduction
            # order, into ±lr steps — in any two runs that add in different orders; q and v are compared
        rel = float((a - b).abs().max() / a.abs().max().clamp(min=1e-12))
        assert rel < 1e-4, (k, rel)  # float32 sums in another order: agree to ~1e-5 of each tensor's scale

    rows = [[json.loads(x) for x in (tmp_path / d / "results.jsonl").read_text().splitlines()] for d in ("one", "two")]
    key = lambda r: (r["method"], r["eval_set"], r["alpha"])
    assert len(rows[1]) == len(rows[0]) == len({key(r) for r in rows[1]})  # one writer: no row twice
    want = {key(r): r["metrics"] for r in rows[0]}
    for r in rows[1]:
        assert r["metrics"] == pytest.approx(want[key(r)], abs=1e-6), key(r)
