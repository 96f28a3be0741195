"""Run a config: train every method, evaluate it on ID / covariate-shift / OOD sets, append rows, write a report.

The experiment of Geng & Chen (arXiv 2403.10800, Sec. 5) as one resumable loop over seeds × methods:

* one encoder and one set of datasets per run (class-balanced subsets drawn with ``data_seed``);
* each method is built with :func:`reprolab.methods.build_method`, trained with :func:`reprolab.training.fit`
  (checkpoints in ``OUT/checkpoints/<method>-s<seed>/``, resumed exactly after an interruption), evaluated with
  :func:`reprolab.evaluation.evaluate.evaluate_method` (features cached in ``OUT/features/``), and its rows are appended to
  ``OUT/results.jsonl`` in one atomic write;
* ``residual_reprogrammer`` reuses the checkpoint of its ``base`` reprogrammer and is swept over ``rrp_alphas``
  (α = weight on the zero-shot features) from cached features; ``wise_ft`` loads its ``base`` fine-tuning
  checkpoint and is swept over ``wise_alphas`` (α = weight on the fine-tuned weights).
* with ``val_subset``, the fair protocol of :mod:`reprolab.experiment.protocol`: a validation split carved from the train
  split, ``sweep`` candidates and both α's chosen on it (first seed), ``OUT/selection.json``.

Resuming: rows are identified as :mod:`reprolab.experiment.identity` says; rows already present are never written
again, so killing ``reprolab run`` and starting it again neither loses nor duplicates rows. A checkpoint directory
is tagged with the hash of what changes the trained weights only, and a new training config moves the old
checkpoint aside instead of resuming from it. What is not orchestration lives beside this module: the data
(:mod:`.run_data`), the hashes (:mod:`.identity`), the choices on validation (:mod:`.protocol`), score files
(:mod:`.score_files`) and the report (:mod:`.report`).
"""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path

import torch
import yaml

from reprolab import distributed
from reprolab.checkpoint import checkpoint_exists, load_checkpoint, save_checkpoint
from reprolab.experiment.build import build_from_spec, checkpoint_dir
from reprolab.experiment.config import Config, MethodSpec
from reprolab.experiment.executors import SerialExecutor, results_db
from reprolab.experiment.identity import data_settings, method_alphas, spec_hash
from reprolab.experiment.log import log
from reprolab.experiment.protocol import annotate, full_rows, params_tag, select_hyperparameters, write_selection
from reprolab.experiment.run_data import load_run_data
from reprolab.experiment.score_files import save_scores


class Runner:
    def __init__(self, cfg: Config, out_dir, resume: bool = True, executor=None):
        self.cfg, self.out, self.resume = cfg, Path(out_dir), resume
        self.executor, self.callback = executor or SerialExecutor(), None  # where trainings run (.executors)
        self.out.mkdir(parents=True, exist_ok=True)
        self.db = results_db(self.out / "results.jsonl")  # torchrun: only rank 0 writes the file
        self.cfg = cfg = dataclasses.replace(cfg, methods=self.effective_methods(cfg))
        self.specs = {m.name: m for m in cfg.methods}
        self.swept, self.chosen, self.sweep_log = {m.name for m in cfg.methods if m.sweep}, {}, {}  # protocol
        self.fresh: set = set()  # checkpoints trained by this process: reused even with resume=False

    @staticmethod
    def effective_methods(cfg: Config) -> list:
        """The method specs as run: by default RRP reuses the RP run (``base: reprogrammer``)."""
        names = [m.name for m in cfg.methods]
        if not ("residual_reprogrammer" in names and "reprogrammer" in names):
            return list(cfg.methods)
        return [
            dataclasses.replace(m, base=m.base or "reprogrammer") if m.name == "residual_reprogrammer" else m
            for m in cfg.methods
        ]

    # ----- set-up -------------------------------------------------------------------------------------------------
    def load(self) -> None:
        from reprolab.encoders import load_encoder
        from reprolab.evaluation.features import FeatureCache
        from reprolab.training import pick_device

        c = self.cfg
        self.encoder = load_encoder(c.encoder)
        self.encoder.to(pick_device(c.device))
        log(f"encoder: {self.encoder.display_name} [{self.encoder.id}]")
        self.data = load_run_data(c)
        self.train_set, self.val_set, self.id_set = self.data.train, self.data.val, self.data.id_test
        self.shift_sets, self.ood_sets, self.all_sets = self.data.shift, self.data.ood, self.data.eval_sets
        self.cache = FeatureCache(self.out / "features")
        val = f" (+ {len(self.val_set)} validation: {self.val_set.name})" if self.val_set is not None else ""
        log(
            f"data: {len(self.train_set)} train{val}, {len(self.id_set)} ID test, "
            f"{len(self.shift_sets)} shift sets, {len(self.ood_sets)} OOD sets"
        )

    def data_settings(self) -> dict:
        return data_settings(self.cfg, self.encoder.id)

    def spec_hash(self, spec: MethodSpec, training_only: bool = False) -> str:
        """See :func:`reprolab.experiment.identity.spec_hash` (rows' config_hash; a checkpoint's name)."""
        return spec_hash(spec, self.specs, self.data_settings(), training_only)

    # ----- building and training ----------------------------------------------------------------------------------
    def build(self, spec: MethodSpec, seed: int):
        return build_from_spec(spec, self.specs, self.encoder, self.id_set.classnames, seed)

    def ckpt_dir(self, spec: MethodSpec, seed: int) -> Path:
        tag = f"-{params_tag(spec)}" if spec.name in self.swept else ""
        d = self.out / "checkpoints" / f"{spec.name}-s{seed}{tag}"
        if distributed.is_main():  # torchrun: rank 0 alone moves a stale checkpoint aside
            checkpoint_dir(d, self.spec_hash(spec, True))
        distributed.barrier()
        return d

    def trained(self, spec: MethodSpec, seed: int, method=None):
        """The method with its trained state: loaded from a finished checkpoint, or trained (resuming) now."""
        from reprolab.training import TrainConfig, fit

        method = method if method is not None else self.build(spec, seed)
        target = getattr(method, "rp", method)  # a residual reprogrammer trains (or loads) its inner RP
        has_prepare = hasattr(target, "prepare")
        if not (has_prepare or spec.train or target.trainable_parameters()):
            return method  # nothing to train (zero-shot)
        ckpt = self.ckpt_dir(spec, seed)
        self.executor.wait(self, spec, seed, ckpt)  # Ray: its task has finished the checkpoint
        if (self.resume or ckpt in self.fresh) and checkpoint_exists(ckpt):
            tensors, meta = load_checkpoint(ckpt)
            if meta.get("step", 0) >= meta.get("total", 0):
                target.load_trainable_state({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
                log(f"seed {seed} · {spec.name}: loaded finished checkpoint {ckpt}")
                return method
        if spec.name == "linear_probe":  # fitted on cached frozen features (shared with zero-shot)
            f = self.frozen_features([self.train_set])[self.train_set.name]
            target.fit_arrays(f["image_features"], f["labels"])
        elif has_prepare:
            target.prepare(self.train_set, batch_size=self.cfg.eval_batch_size)
        if spec.train or (not has_prepare and target.trainable_parameters()):
            tc = TrainConfig(**{**spec.train, "seed": seed, "device": spec.train.get("device", self.cfg.device)})
            log(
                f"seed {seed} · {spec.name}: training {tc.total_steps(len(self.train_set))} steps "
                f"(batch {tc.batch_size}), checkpoints in {ckpt}"
            )
            fit(target, self.train_set, tc, out_dir=ckpt, resume=self.resume, callback=self.callback)
        elif has_prepare:
            save_checkpoint(
                ckpt,
                {f"model.{k}": v for k, v in target.trainable_state().items()},
                dict(step=0, total=0, method=target.config()),
            )
        self.fresh.add(ckpt)
        return method

    # ----- evaluation -----------------------------------------------------------------------------------------------
    def frozen_features(self, sets) -> dict:
        """Frozen-encoder outputs per set, through the cache: the zero-shot run's image features are the probe's."""
        from reprolab.evaluation.evaluate import collect
        from reprolab.methods import ZeroShot

        zs = ZeroShot(self.encoder).setup(self.id_set.classnames)
        return collect(zs, sets, self.cache, self.cfg.eval_batch_size)

    def expected(self, spec: MethodSpec) -> set:
        alphas = self.alphas(spec)
        return {(d.name, a) for d in self.all_sets for a in alphas}

    def alphas(self, spec: MethodSpec) -> list:
        return method_alphas(self.cfg, spec)

    def present(self, spec: MethodSpec, h: str, seed: int) -> set:
        return {
            (r["eval_set"], None if r.get("alpha") is None else float(r["alpha"]))
            for r in self.db.rows()
            if r["method"] == spec.name and r["config_hash"] == h and int(r["seed"]) == seed
        }

    def evaluate(self, spec: MethodSpec, method, missing: set, seed: int) -> list[dict]:
        from reprolab.evaluation.alpha_sweeps import rrp_features, rrp_sweep, wise_ft_sweep
        from reprolab.evaluation.evaluate import evaluate_method, rows_from_logits

        c = self.cfg
        alphas = sorted({a for _, a in missing})
        if spec.name == "residual_reprogrammer":
            feats = rrp_features(method, self.all_sets, self.cache, c.eval_batch_size)
            return rrp_sweep(feats, alphas, c.T, c.score, method.renormalise, c.metric_convention)
        ev = dict(T=c.T, cache=self.cache, batch_size=c.eval_batch_size, score=c.score, convention=c.metric_convention)
        if spec.name == "wise_ft":
            return wise_ft_sweep(method, self.all_sets, alphas, **ev)
        if spec.name != "linear_probe":
            rows = evaluate_method(method, self.id_set, self.shift_sets, self.ood_sets, **ev)
            self.save_scores(spec, method, seed)
            return rows
        outs, dev = self.frozen_features(self.all_sets), method.head.weight.device  # no second encoder pass
        with torch.no_grad():
            logits = {d.name: method.head(outs[d.name]["image_features"].to(dev)).cpu() for d in self.all_sets}
        entries = [
            dict(
                name=d.name,
                kind=d.kind,
                logits=logits[d.name],
                labels=outs[d.name]["labels"],
                class_subset=getattr(d, "class_subset", None),
            )
            for d in self.all_sets
        ]
        self.save_scores(spec, method, seed, logits)
        scale = method.encoder.logit_scale
        return rows_from_logits(entries, c.T, c.score, method.clip_style, scale, c.metric_convention)

    def save_scores(self, spec: MethodSpec, method, seed: int, logits=None) -> None:
        """Per-image OOD scores of every set, for the report's histograms (:mod:`.score_files`)."""
        if distributed.is_main():  # torchrun: the other ranks have the same scores and write nothing
            path = self.out / "scores" / f"{spec.name}-s{seed}.npz"
            save_scores(path, method, self.all_sets, self.cache, self.cfg, logits)

    def row_settings(self, spec: MethodSpec, method) -> dict:
        """Recorded in every test row: the choices where the kit and the official code can differ (template, resize,
        reduce_from, RRP's zs_input and zs_dtype: ``Method.row_settings``), the training precision ``amp`` (of the
        base for RRP/WiSE-FT) and the OOD ``metric_convention``."""
        from reprolab.training import TrainConfig

        train = self.specs[spec.base].train if spec.base else spec.train
        amp = bool(train.get("amp", TrainConfig.amp))
        return dict(method.row_settings(), amp=amp, metric_convention=self.cfg.metric_convention)

    def run_one(self, spec: MethodSpec, seed: int) -> None:
        h = self.spec_hash(spec)
        have = self.present(spec, h, seed) if self.resume else set()
        missing = self.expected(spec) - have
        if not missing:
            log(f"seed {seed} · {spec.name}: all {len(have)} rows present — skipped")
            return
        if spec.name == "residual_reprogrammer" and spec.base:  # reuse the base reprogrammer's checkpoint
            method = self.trained(self.specs[spec.base], seed, method=self.build(spec, seed))
        elif spec.name == "wise_ft":  # interpolate towards the base fine-tuning run's weights
            method, base = self.build(spec, seed), self.trained(self.specs[spec.base], seed)
            method.load_trainable_state(base.trainable_state())
            del base
        else:
            method = self.trained(spec, seed)
        rows = [r for r in self.evaluate(spec, method, missing, seed) if (r["eval_set"], r.get("alpha")) in missing]
        rows = full_rows(self, spec, rows, seed, h, **self.row_settings(spec, method))
        full = annotate(self, spec, method, seed, rows, h)  # + validation marks
        self.db.append_many(full)
        log(f"seed {seed} · {spec.name}: {len(full)} rows appended")
        del method
        gc.collect()


def run(cfg: Config, out_dir, resume: bool = True, executor=None) -> Path:
    """Train and evaluate everything in ``cfg`` into ``out_dir``; returns the path of the HTML report.

    ``executor``: where the trainings run (:mod:`reprolab.experiment.executors`; default: in this process)."""
    from reprolab.experiment.report import build_report

    r, main = Runner(cfg, out_dir, resume, executor), distributed.is_main()
    distributed.barrier()  # torchrun: every rank has read results.jsonl before rank 0 appends to it
    if main:
        (r.out / "config.resolved.yaml").write_text(yaml.safe_dump(r.cfg.to_dict(), sort_keys=False))
    r.load()
    r.executor.schedule(r)  # Ray: every training that waits on no choice starts now
    if r.val_set is not None:  # the fair protocol: sweeps chosen on validation first (reprolab.experiment.protocol)
        select_hyperparameters(r)  # ... which schedules each chosen candidate's other seeds
    for seed in cfg.seeds:
        for spec in r.cfg.methods:  # a base is trained when first needed and loaded afterwards
            r.run_one(spec, seed)
    if r.val_set is not None:
        write_selection(r)
    report = build_report(r.out) if main else r.out / "report.html"
    log(f"report written to {report}")
    return report
