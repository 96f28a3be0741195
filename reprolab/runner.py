"""Run a config: train every method, evaluate it on ID / covariate-shift / OOD sets, append rows, write a report.

The experiment of Geng & Chen (arXiv 2403.10800, Sec. 5) as one resumable loop over seeds × methods:

* one encoder and one set of datasets per run (class-balanced subsets drawn with ``data_seed``);
* each method is built with :func:`reprolab.methods.build_method`, trained with :func:`reprolab.training.fit`
  (checkpoints in ``OUT/checkpoints/<method>-s<seed>/``, resumed exactly after an interruption), evaluated with
  :func:`reprolab.evaluate.evaluate_method` (features cached in ``OUT/features/``), and its rows are appended to
  ``OUT/results.jsonl`` in one atomic write;
* ``residual_reprogrammer`` reuses the checkpoint of its ``base`` reprogrammer and is swept over ``rrp_alphas``
  (α = weight on the zero-shot features) from cached features; ``wise_ft`` loads its ``base`` fine-tuning
  checkpoint and is swept over ``wise_alphas`` (α = weight on the fine-tuned weights).
* with ``val_subset``, the fair protocol of :mod:`reprolab.protocol`: a validation split carved from the train
  split, ``sweep`` candidates and both α's chosen on it (first seed), ``OUT/selection.json``.

Resuming: a row's identity is (method, config_hash, seed, eval_set, alpha). ``config_hash`` covers the method's
own config section (and its base's), the encoder and the data settings — not the list of evaluation sets or α's,
so adding a set or an α evaluates only what is missing. Rows already present are never written again, so killing
``reprolab run`` and starting it again neither loses nor duplicates rows. A checkpoint directory is tagged with
the hash of what changes the trained weights only, so e.g. a new score or test subset re-evaluates without
retraining, while a new training config moves the old checkpoint aside instead of resuming from it.
"""
from __future__ import annotations

import dataclasses
import gc
import inspect
import shutil
from pathlib import Path

import numpy as np
import torch
import yaml

from .checkpoint import checkpoint_exists, load_checkpoint, save_checkpoint
from .config import Config, MethodSpec
from .errors import ConfigError
from .protocol import annotate, full_rows, load_train, params_tag, select_hyperparameters, write_selection
from .results import ResultsDB, config_hash

HASH_EXCLUDE = ("progress", "ckpt_every", "device")  # training options that do not change the numbers


def log(msg: str) -> None:
    print(f"[reprolab] {msg}", flush=True)


class Runner:
    def __init__(self, cfg: Config, out_dir, resume: bool = True):
        self.cfg, self.out, self.resume = cfg, Path(out_dir), resume
        self.out.mkdir(parents=True, exist_ok=True)
        self.db = ResultsDB(self.out / "results.jsonl")
        names = [m.name for m in cfg.methods]
        if "residual_reprogrammer" in names and "reprogrammer" in names:  # default: RRP reuses the RP run
            cfg = dataclasses.replace(cfg, methods=[
                dataclasses.replace(m, base=m.base or "reprogrammer") if m.name == "residual_reprogrammer" else m
                for m in cfg.methods])
            self.cfg = cfg
        self.specs = {m.name: m for m in cfg.methods}
        self.swept, self.chosen, self.sweep_log = {m.name for m in cfg.methods if m.sweep}, {}, {}  # protocol
        self.fresh: set = set()  # checkpoints trained by this process: reused even with resume=False

    # ----- set-up -------------------------------------------------------------------------------------------------
    def load(self) -> None:
        from .datasets import load_dataset
        from .encoders import load_encoder
        from .features import FeatureCache
        from .training import pick_device

        c = self.cfg
        self.encoder = load_encoder(c.encoder)
        self.encoder.to(pick_device(c.device))
        log(f"encoder: {self.encoder.display_name} [{self.encoder.id}]")
        common = dict(root=c.data_root, seed=c.data_seed, download=c.download)
        self.train_set, self.val_set = load_train(c, **common)  # val_set: None without val_subset
        self.id_set = load_dataset(c.id_dataset, "test", subset=c.test_subset, size=c.image_size, **common)
        self.shift_sets = [load_dataset(n, "test", subset=c.shift_subset, size=c.image_size, id_task=c.id_dataset,
                                        **common) for n in c.shift_sets]
        self.ood_sets = [load_dataset(n, "test", subset=c.ood_subset, size=c.ood_size, id_task=c.id_dataset,
                                      **common) for n in c.ood_sets]
        self.all_sets = [self.id_set] + self.shift_sets + self.ood_sets
        self.cache = FeatureCache(self.out / "features")
        val = f" (+ {len(self.val_set)} validation: {self.val_set.name})" if self.val_set is not None else ""
        log(f"data: {len(self.train_set)} train{val}, {len(self.id_set)} ID test, "
            f"{len(self.shift_sets)} shift sets, {len(self.ood_sets)} OOD sets")

    def data_settings(self) -> dict:
        c = self.cfg
        return dict(encoder=self.encoder.id, id_dataset=c.id_dataset, train_subset=c.train_subset,
                    test_subset=c.test_subset, shift_subset=c.shift_subset, ood_subset=c.ood_subset,
                    data_seed=c.data_seed, image_size=c.image_size, ood_size=c.ood_size, score=c.score, T=c.T,
                    **({"val_subset": c.val_subset} if c.val_subset else {}))

    def spec_hash(self, spec: MethodSpec, training_only: bool = False) -> str:
        """Hash of the method's config section (and its base's) and the data settings (rows' config_hash);
        ``training_only``: just what changes the trained weights (names a checkpoint)."""
        def section(s):
            train = {k: v for k, v in s.train.items() if k not in HASH_EXCLUDE}
            return dict(name=s.name, params=s.params, train=train)
        data = self.data_settings()
        if training_only:
            data = {k: data[k] for k in ("encoder", "id_dataset", "train_subset", "val_subset", "data_seed",
                                         "image_size") if k in data}
        base = section(self.specs[spec.base]) if spec.base else None
        return config_hash(dict(method=section(spec), base=base, data=data))

    # ----- building and training ----------------------------------------------------------------------------------
    def build(self, spec: MethodSpec, seed: int):
        from .methods import METHODS, build_method

        params = dict(spec.params)
        if spec.name == "residual_reprogrammer" and spec.base:
            extra = [k for k in params if k not in ("alpha_zeroshot", "renormalise")]
            if extra or self.specs[spec.base].name != "reprogrammer":
                raise ConfigError(f"methods.residual_reprogrammer reuses base {spec.base!r}: its base must be the "
                                  f"reprogrammer and its params only alpha_zeroshot/renormalise (got {extra})")
            params = {**self.specs[spec.base].params, **params}
        if spec.name == "wise_ft" and (not spec.base or self.specs[spec.base].name not in ("finetune", "lp_ft")):
            raise ConfigError("methods.wise_ft needs base: finetune (or lp_ft), the run whose weights it interpolates")
        cls = METHODS["reprogrammer" if spec.name == "residual_reprogrammer" else spec.name]
        if "seed" in inspect.signature(cls.__init__).parameters:
            params.setdefault("seed", seed)  # e.g. RP frame init, probe validation split follow the run seed
        return build_method(spec.name, self.encoder, **params).setup(self.id_set.classnames)

    def ckpt_dir(self, spec: MethodSpec, seed: int) -> Path:
        """``OUT/checkpoints/<method>-s<seed>``; a checkpoint of another training config is moved aside to
        ``….stale-<hash>`` (and moved back if that config is run again); swept methods add ``-<params hash>``."""
        tag = f"-{params_tag(spec)}" if spec.name in self.swept else ""
        d = self.out / "checkpoints" / f"{spec.name}-s{seed}{tag}"
        marker, h = d / "config_hash.txt", self.spec_hash(spec, training_only=True)
        if d.exists() and (not marker.exists() or marker.read_text().strip() != h):
            old = marker.read_text().strip()[:8] if marker.exists() else "unknown"
            stale = d.with_name(f"{d.name}.stale-{old}")
            shutil.rmtree(stale, ignore_errors=True)
            d.rename(stale)
            log(f"{d.name}: checkpoint belongs to another training config; moved it to {stale.name}")
        mine = d.with_name(f"{d.name}.stale-{h[:8]}")
        if not d.exists() and mine.is_dir():
            mine.rename(d)
        d.mkdir(parents=True, exist_ok=True)
        marker.write_text(h)
        return d

    def trained(self, spec: MethodSpec, seed: int, method=None):
        """The method with its trained state: loaded from a finished checkpoint, or trained (resuming) now."""
        from .training import TrainConfig, fit

        method = method if method is not None else self.build(spec, seed)
        target = getattr(method, "rp", method)  # a residual reprogrammer trains (or loads) its inner RP
        has_prepare = hasattr(target, "prepare")
        if not (has_prepare or spec.train or target.trainable_parameters()):
            return method  # nothing to train (zero-shot)
        ckpt = self.ckpt_dir(spec, seed)
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
            log(f"seed {seed} · {spec.name}: training {tc.total_steps(len(self.train_set))} steps "
                f"(batch {tc.batch_size}), checkpoints in {ckpt}")
            fit(target, self.train_set, tc, out_dir=ckpt, resume=self.resume)
        elif has_prepare:
            save_checkpoint(ckpt, {f"model.{k}": v for k, v in target.trainable_state().items()},
                            dict(step=0, total=0, method=target.config()))
        self.fresh.add(ckpt)
        return method

    # ----- evaluation -----------------------------------------------------------------------------------------------
    def frozen_features(self, sets) -> dict:
        """Frozen-encoder outputs per set, through the cache: the zero-shot run's image features are the probe's."""
        from .evaluate import collect
        from .methods import ZeroShot

        zs = ZeroShot(self.encoder).setup(self.id_set.classnames)
        return collect(zs, sets, self.cache, self.cfg.eval_batch_size)

    def expected(self, spec: MethodSpec) -> set:
        alphas = self.alphas(spec)
        return {(d.name, a) for d in self.all_sets for a in alphas}

    def alphas(self, spec: MethodSpec) -> list:
        if spec.name == "residual_reprogrammer":
            return [float(a) for a in self.cfg.rrp_alphas] or [float(spec.params.get("alpha_zeroshot", 0.4))]
        if spec.name == "wise_ft":
            return [float(a) for a in self.cfg.wise_alphas] or [float(spec.params.get("alpha_finetuned", 0.5))]
        return [None]

    def present(self, spec: MethodSpec, h: str, seed: int) -> set:
        return {(r["eval_set"], None if r.get("alpha") is None else float(r["alpha"])) for r in self.db.rows()
                if r["method"] == spec.name and r["config_hash"] == h and int(r["seed"]) == seed}

    def evaluate(self, spec: MethodSpec, method, missing: set, seed: int) -> list[dict]:
        from .evaluate import evaluate_method, rows_from_logits, rrp_features, rrp_sweep, wise_ft_sweep

        c = self.cfg
        alphas = sorted({a for _, a in missing})
        if spec.name == "residual_reprogrammer":
            feats = rrp_features(method, self.all_sets, self.cache, c.eval_batch_size)
            return rrp_sweep(feats, alphas, c.T, c.score, renormalise=method.renormalise)
        if spec.name == "wise_ft":
            return wise_ft_sweep(method, self.all_sets, alphas, c.T, self.cache, c.eval_batch_size, c.score)
        if spec.name != "linear_probe":
            rows = evaluate_method(method, self.id_set, self.shift_sets, self.ood_sets, c.T, self.cache,
                                   c.eval_batch_size, c.score)
            self.save_scores(spec, method, seed)
            return rows
        outs, dev = self.frozen_features(self.all_sets), method.head.weight.device  # no second encoder pass
        with torch.no_grad():
            logits = {d.name: method.head(outs[d.name]["image_features"].to(dev)).cpu() for d in self.all_sets}
        entries = [dict(name=d.name, kind=d.kind, logits=logits[d.name], labels=outs[d.name]["labels"],
                        class_subset=getattr(d, "class_subset", None)) for d in self.all_sets]
        self.save_scores(spec, method, seed, logits)
        return rows_from_logits(entries, c.T, c.score, method.clip_style, method.encoder.logit_scale)

    def save_scores(self, spec: MethodSpec, method, seed: int, logits=None) -> None:
        """Per-image OOD scores of every set (from the feature cache) for the report's histograms."""
        from .evaluate import collect, ood_score

        if logits is None:
            outs = collect(method, self.all_sets, self.cache, self.cfg.eval_batch_size, progress=False)
            logits = {d.name: outs[d.name]["logits"] for d in self.all_sets}
        arrays = {d.name: ood_score(logits[d.name], getattr(method, "clip_style", True),
                                    method.encoder.logit_scale, self.cfg.T, self.cfg.score) for d in self.all_sets}
        kinds = np.array([f"{d.name}\t{d.kind}" for d in self.all_sets])
        path = self.out / "scores" / f"{spec.name}-s{seed}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, __kinds__=kinds, **{f"set:{k}": v for k, v in arrays.items()})
        tmp.replace(path)

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
        full = annotate(self, spec, method, seed, full_rows(self, spec, rows, seed, h), h)  # + validation marks
        self.db.append_many(full)
        log(f"seed {seed} · {spec.name}: {len(full)} rows appended")
        del method
        gc.collect()


def run(cfg: Config, out_dir, resume: bool = True) -> Path:
    """Train and evaluate everything in ``cfg`` into ``out_dir``; returns the path of the HTML report."""
    from .report import build_report

    r = Runner(cfg, out_dir, resume)
    (r.out / "config.resolved.yaml").write_text(yaml.safe_dump(r.cfg.to_dict(), sort_keys=False))
    r.load()
    if r.val_set is not None:  # the fair protocol: sweeps chosen on validation first (reprolab.protocol)
        select_hyperparameters(r)
    for seed in cfg.seeds:
        for spec in r.cfg.methods:  # a base is trained when first needed and loaded afterwards
            r.run_one(spec, seed)
    if r.val_set is not None:
        write_selection(r)
    report = build_report(r.out)
    log(f"report written to {report}")
    return report
