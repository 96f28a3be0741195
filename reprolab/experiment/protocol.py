"""The fair comparison protocol of ``reprolab run``: every choice is made on a validation split, never on test sets.

* **Validation split** (``val_subset``): ``train_subset + val_subset`` class-balanced images are drawn from the
  TRAIN split with ``data_seed``, then split class-balanced and deterministically into a training part and a
  validation set named ``<id_dataset>_val`` (e.g. ``cifar10_val``). Both get their own ``ImageSet.key``, so the
  feature cache never mixes them with each other or with a plain ``train_subset`` draw.
* **Sweeps** (``methods.<m>.sweep: {param: [values]}``, several keys = their grid, in listed order): each
  candidate is trained with the FIRST seed and scored by ID accuracy on the validation set; the best wins (ties:
  the first listed). All seeds then run with the chosen params — seed 0 reuses the winner's checkpoint. Swept
  methods keep checkpoints in ``checkpoints/<m>-s<seed>-<params hash>`` so candidates never clobber each other,
  and a ``base`` (RRP's reprogrammer, WiSE-FT's fine-tuning run) resolves to the chosen params.
* **α**: the Residual Reprogrammer's α (``rrp_alphas``) is the weight on the ZERO-SHOT features (0 = RP,
  1 = zero-shot); WiSE-FT's α (``wise_alphas``) is the weight on the FINE-TUNED weights (0 = zero-shot,
  1 = fine-tuned) — opposite conventions. Each is chosen by validation accuracy with the first seed (ties: first
  in the list) and kept for all seeds; test rows of that α carry ``selected: true``, the whole curves stay.

Validation rows are ordinary ``results.jsonl`` rows with ``kind: "val"`` (identity and resuming as in
:mod:`reprolab.experiment.runner`; a sweep candidate's row also records its ``params``), so killing and rerunning retrains no
finished candidate and duplicates nothing. ``OUT/selection.json`` (rewritten each run from those rows) says what
was chosen; :mod:`reprolab.experiment.comparison` turns it into the report's comparison table. With ``val_subset: null``
nothing here runs and ``reprolab run`` behaves as before.
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reprolab import distributed
from reprolab.errors import ConfigError
from reprolab.experiment.log import log
from reprolab.experiment.naming import ALPHA_METHODS, label
from reprolab.experiment.results import config_hash

if TYPE_CHECKING:  # no import at run time: keeps `reprolab report` free of torch
    from reprolab.experiment.config import MethodSpec

VAL_KIND = "val"


# ----- config -------------------------------------------------------------------------------------------------------
def check_config(cfg, methods: dict) -> None:
    """One-line ConfigErrors for ``val_subset`` and every ``sweep`` (``methods``: the registry name → class)."""
    if cfg.val_subset is not None and cfg.val_subset < 1:
        raise ConfigError(f"val_subset must be a positive number of images (e.g. 500) or null, got {cfg.val_subset}")
    for m in cfg.methods:
        if not m.sweep:
            continue
        where = f"methods.{m.name}.sweep"
        if m.name in ALPHA_METHODS:
            raise ConfigError(
                f"{where}: {m.name} trains nothing itself; sweep its base and let its α be chosen on "
                "validation (rrp_alphas / wise_alphas)"
            )
        if cfg.val_subset is None:
            raise ConfigError(
                f"{where} needs a validation split to choose on; add val_subset (e.g. val_subset: "
                "500, carved from the train split)"
            )
        allowed = [
            p for p in inspect.signature(methods[m.name].__init__).parameters if p not in ("self", "encoder", "seed")
        ]
        for k, v in m.sweep.items():
            if k not in allowed:
                raise ConfigError(f"{where}.{k}: {m.name} has no option {k!r}; sweep one of {', '.join(allowed)}")
            if not isinstance(v, list) or not v:
                raise ConfigError(f"{where}.{k} must be a non-empty list of values, e.g. {k}: [1.0e-4, 3.0e-4]")


def candidates(spec: MethodSpec) -> list[dict]:
    """The sweep's candidate values, e.g. ``[{"lr": 1e-5}, {"lr": 3e-5}]`` (several keys: their grid, in order)."""
    keys = list(spec.sweep)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(spec.sweep[k] for k in keys))]


def resolved(spec: MethodSpec, values: dict) -> MethodSpec:
    """The spec with ``values`` written into its params and no sweep (a candidate, or the chosen one)."""
    return dataclasses.replace(spec, params={**spec.params, **values}, sweep={})


def params_tag(spec: MethodSpec) -> str:
    """8 hex digits of the params: the checkpoint-directory suffix of a swept method."""
    return config_hash(dict(spec.params))[:8]


def choose(scores: list[float]) -> int:
    """Index of the best score; ties go to the first (numpy's argmax returns the first maximum)."""
    return int(np.argmax(scores))


# ----- validation rows ----------------------------------------------------------------------------------------------
def validation_rows(runner, spec: MethodSpec, method, alphas=None) -> list[dict]:
    """Rows (kind "val") of ``method`` on the validation set: one, or one per α for RRP / WiSE-FT."""
    from reprolab.evaluation.alpha_sweeps import rrp_features, rrp_sweep, wise_ft_sweep
    from reprolab.evaluation.evaluate import evaluate_method

    c, val = runner.cfg, runner.val_set
    if spec.name == "residual_reprogrammer":
        feats = rrp_features(method, [val], runner.cache, c.eval_batch_size, progress=False)
        rows = rrp_sweep(feats, alphas, c.T, c.score, renormalise=method.renormalise)
    elif spec.name == "wise_ft":
        rows = wise_ft_sweep(method, [val], alphas, c.T, runner.cache, c.eval_batch_size, c.score, progress=False)
    else:
        rows = evaluate_method(method, val, [], [], c.T, runner.cache, c.eval_batch_size, c.score, progress=False)
    return [dict(r, kind=VAL_KIND) for r in rows]


def full_rows(runner, spec: MethodSpec, rows: list[dict], seed: int, h: str, **extra) -> list[dict]:
    """Evaluation rows completed into result rows (method, encoder, seed, config_hash, ...)."""
    return [
        dict(
            r,
            method=spec.name,
            encoder=runner.encoder.id,
            train_dataset=runner.cfg.id_dataset,
            seed=seed,
            alpha=r.get("alpha"),
            alpha_meaning=r.get("alpha_meaning"),
            config_hash=h,
            **extra,
        )
        for r in rows
    ]


def stored_val(runner, name: str, h: str, seed: int) -> dict:
    """``{alpha: val acc}`` already in results.jsonl for (method, config_hash, seed); the last row wins."""
    return {
        (None if r.get("alpha") is None else float(r["alpha"])): r["metrics"]["acc"]
        for r in runner.db.rows()
        if r["method"] == name
        and r["config_hash"] == h
        and int(r["seed"]) == seed
        and r["eval_set"] == runner.val_set.name
        and r["kind"] == VAL_KIND
    }


# ----- choosing -----------------------------------------------------------------------------------------------------
def select_hyperparameters(runner) -> None:
    """Run every sweep (first seed, resumable), then make each swept spec — and every ``base`` — the chosen one."""
    seed, specs = runner.cfg.seeds[0], []
    for spec in runner.cfg.methods:
        if not spec.sweep:
            specs.append(spec)
            continue
        cands, scores, log_ = candidates(spec), [], []
        for values in cands:
            cand = resolved(spec, values)
            runner.specs[spec.name] = cand
            h = runner.spec_hash(cand)
            acc = stored_val(runner, spec.name, h, seed).get(None) if runner.resume else None
            if acc is None:
                method = runner.trained(cand, seed)
                rows = validation_rows(runner, cand, method)
                runner.db.append_many(full_rows(runner, cand, rows, seed, h, params=values))
                acc = rows[0]["metrics"]["acc"]
                del method
                gc.collect()
            log(f"sweep · {spec.name} {values}: validation acc {acc:.4f}")
            scores.append(acc)
            log_.append(dict(params=values, config_hash=h, val_acc=acc))
        best = choose(scores)
        runner.chosen[spec.name] = cands[best]
        runner.sweep_log[spec.name] = log_
        runner.specs[spec.name] = resolved(spec, cands[best])
        specs.append(runner.specs[spec.name])
        log(f"sweep · {spec.name}: chose {cands[best]} (validation acc {scores[best]:.4f}, seed {seed})")
        runner.executor.schedule(runner)  # Ray: its other seeds start now (reprolab.experiment.executors)
    runner.cfg = dataclasses.replace(runner.cfg, methods=specs)
    write_selection(runner)


def chosen_alpha(runner, spec: MethodSpec, h: str) -> float | None:
    """The α with the best validation accuracy at the first seed (ties: first in the config's list), or None."""
    accs = stored_val(runner, spec.name, h, runner.cfg.seeds[0])
    alphas = [a for a in runner.alphas(spec) if a in accs]
    return alphas[choose([accs[a] for a in alphas])] if alphas else None


def annotate(runner, spec: MethodSpec, method, seed: int, rows: list[dict], h: str) -> list[dict]:
    """Before the test rows are appended: α validation rows (first seed), then ``chosen`` / ``selected`` marks."""
    if runner.val_set is None:
        return rows
    if spec.name in ALPHA_METHODS:
        if seed == runner.cfg.seeds[0]:
            have = stored_val(runner, spec.name, h, seed) if runner.resume else {}
            todo = [a for a in runner.alphas(spec) if a not in have]
            if todo:
                runner.db.append_many(full_rows(runner, spec, validation_rows(runner, spec, method, todo), seed, h))
        alpha = chosen_alpha(runner, spec, h)
        rows = [dict(r, selected=r["alpha"] == alpha) for r in rows] if alpha is not None else rows
    if spec.name in runner.chosen:
        rows = [dict(r, chosen=runner.chosen[spec.name]) for r in rows]
    return rows


def write_selection(runner) -> Path:
    """``OUT/selection.json``: per method its final config_hash, chosen params / α, and every validation score."""
    seed = runner.cfg.seeds[0]
    out = dict(
        val_set=runner.val_set.name,
        val_subset=runner.cfg.val_subset,
        selection_seed=seed,
        alpha_conventions={
            "residual_reprogrammer": "α = weight on the zero-shot features (rrp_alphas)",
            "wise_ft": "α = weight on the fine-tuned weights (wise_alphas)",
        },
        methods={},
    )
    for spec in runner.cfg.methods:
        h, chosen = runner.spec_hash(spec), runner.chosen.get(spec.name, {})
        e = dict(config_hash=h, chosen=chosen, alpha=None, val_acc=None)
        if spec.name in runner.sweep_log:
            e["candidates"], e["checkpoint_tag"] = runner.sweep_log[spec.name], params_tag(spec)
            e["val_acc"] = next(c["val_acc"] for c in e["candidates"] if c["params"] == chosen)
        if spec.name in ALPHA_METHODS:
            accs = stored_val(runner, spec.name, h, seed)
            e["alphas"] = [dict(alpha=a, val_acc=accs[a]) for a in runner.alphas(spec) if a in accs]
            e["alpha"] = chosen_alpha(runner, spec, h)
            e["val_acc"] = accs.get(e["alpha"])
        e["label"] = label(spec.name, chosen, e["alpha"])
        out["methods"][spec.name] = e
    path = runner.out / "selection.json"
    if not distributed.is_main():  # torchrun: rank 0 writes it
        return path
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(path)
    return path
