"""Notebook 08's measurement: label mappings, and VR vs linear probe vs fine-tuning of one frozen ImageNet classifier.

    PYTHONPATH=. nice -n 10 python scripts/measure_visual_reprogramming.py --out runs/vr08 [--seeds 0 1 2]

Every run goes through the kit's harness (``fit`` + ``evaluate_method``: ID, shift and OOD rows, MSP over the
mapped logits); one JSON line per (method, seed) is appended to OUT/results.jsonl with its wall time and the load
average, and runs already there are skipped (kill it and start it again to resume). Budget: see BUDGET below.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

BUDGET = dict(train=160, test=300, shift=200, ood=200, steps=30, batch=16, warmup=3)
SHIFT = ["cifar10c:gaussian_noise:3", "cifar10c:contrast:3"]
OOD = ["dtd10", "sklearn_digits"]
VR = dict(lr=0.05, map_lr=1e-4)
RUNS = {  # name: (method, params); seeds other than the first run only TABLE
    "vr_rlm": ("visual_reprogrammer", dict(mapping="rlm", **VR)),
    "vr_flm": ("visual_reprogrammer", dict(mapping="flm", **VR)),
    "vr_ilm": ("visual_reprogrammer", dict(mapping="ilm", **VR)),
    "vr_semantic": ("visual_reprogrammer", dict(mapping="semantic", **VR)),
    "vr_full": ("visual_reprogrammer", dict(mapping="full", **VR)),
    "linear_probe": ("linear_probe", dict()),
    "finetune": ("finetune", dict(lr=3e-4, weight_decay=0.1)),
}
TABLE = ["vr_ilm", "linear_probe", "finetune"]


def main() -> None:
    import torch

    from reprolab.datasets import load_dataset
    from reprolab.encoders import load_encoder
    from reprolab.evaluation.evaluate import evaluate_method, summary
    from reprolab.methods import build_method
    from reprolab.training import TrainConfig, fit

    p = argparse.ArgumentParser()
    p.add_argument("--out", default="runs/vr08")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--encoder", default="classifier")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "results.jsonl"
    done = {(r["run"], r["seed"]) for r in map(json.loads, db.read_text().splitlines())} if db.exists() else set()
    B = BUDGET
    enc = load_encoder(a.encoder)
    train = load_dataset("cifar10", "train", subset=B["train"], seed=0)
    id_set = load_dataset("cifar10", "test", subset=B["test"], seed=0)
    shift = [load_dataset(n, "test", subset=B["shift"], seed=0, id_task="cifar10") for n in SHIFT]
    ood = [load_dataset(n, "test", subset=B["ood"], seed=0, id_task="cifar10") for n in OOD]
    order = [(r, s) for s in a.seeds for r in TABLE] + [(r, a.seeds[0]) for r in RUNS if r not in TABLE]
    for run, seed in order:  # the 3-seed table first, then the other maps at the first seed
        name, params = RUNS[run]
        if (run, seed) in done:
            continue
        t0 = time.time()
        torch.manual_seed(seed)
        kw = dict(params, seed=seed) if name in ("visual_reprogrammer", "linear_probe") else dict(params)
        m = build_method(name, enc, **kw).setup(train.classnames)
        if hasattr(m, "prepare"):
            m.prepare(train, progress=False)
        cfg = TrainConfig(steps=B["steps"], batch_size=B["batch"], warmup=B["warmup"], seed=seed, progress=False)
        fit(m, train, cfg)
        rows = evaluate_method(m, id_set, shift, ood, progress=False)
        rec = dict(
            run=run, seed=seed, method=name, params=params, budget=B, rows=rows, summary=summary(rows),
            mapped=m.mapped_names() if hasattr(m, "mapped_names") else None,
            mapping_history=getattr(m, "mapping_history", None),
            wall_s=round(time.time() - t0, 1), load=os.getloadavg()[0], encoder=enc.id,
        )  # fmt: skip
        with db.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        s = rec["summary"]
        print(f"{run} s{seed}: id {s['id_acc']:.3f} shift {s['shift_acc']:.3f} auroc {s['auroc']:.3f} "
              f"fpr95 {s['fpr95']:.3f}  {rec['wall_s']} s, load {rec['load']:.1f}", flush=True)  # fmt: skip
        del m


if __name__ == "__main__":
    main()
