"""What identifies a result row and a checkpoint: hashes of the settings that change the numbers, and the α's.

A row's identity is (method, config_hash, seed, eval_set, alpha). ``config_hash`` covers the method's own config
section (and its base's), the encoder and the data settings — not the list of evaluation sets or α's, so adding a
set or an α evaluates only what is missing. A checkpoint is named by the hash of what changes the trained weights
only (``training_only=True``), so a new score or test subset re-evaluates without retraining.
"""

from __future__ import annotations

from reprolab.experiment.results import config_hash

HASH_EXCLUDE = ("progress", "ckpt_every", "device")  # training options that do not change the numbers
TRAINING_DATA_KEYS = ("encoder", "id_dataset", "train_subset", "val_subset", "data_seed", "image_size")


def data_settings(cfg, encoder_id: str) -> dict:
    """The encoder and data settings that every row of a run shares. Keys added later (``val_subset``,
    ``metric_convention``) appear only when set away from their default, so older rows keep their hashes."""
    return dict(
        encoder=encoder_id,
        id_dataset=cfg.id_dataset,
        train_subset=cfg.train_subset,
        test_subset=cfg.test_subset,
        shift_subset=cfg.shift_subset,
        ood_subset=cfg.ood_subset,
        data_seed=cfg.data_seed,
        image_size=cfg.image_size,
        ood_size=cfg.ood_size,
        score=cfg.score,
        T=cfg.T,
        **({"val_subset": cfg.val_subset} if cfg.val_subset else {}),
        **({"metric_convention": cfg.metric_convention} if cfg.metric_convention != "kit" else {}),
    )


def spec_hash(spec, specs: dict, data: dict, training_only: bool = False) -> str:
    """Hash of the method's config section (and its base's, looked up in ``specs``) and the data settings;
    ``training_only``: just what changes the trained weights (names a checkpoint)."""

    def section(s):
        train = {k: v for k, v in s.train.items() if k not in HASH_EXCLUDE}
        return dict(name=s.name, params=s.params, train=train)

    if training_only:
        data = {k: data[k] for k in TRAINING_DATA_KEYS if k in data}
    base = section(specs[spec.base]) if spec.base else None
    return config_hash(dict(method=section(spec), base=base, data=data))


def method_alphas(cfg, spec) -> list:
    """The α's a method is evaluated at: RRP's ``rrp_alphas`` (weight on the zero-shot features), WiSE-FT's
    ``wise_alphas`` (weight on the fine-tuned weights), else ``[None]``; an empty list falls back to the param."""
    if spec.name == "residual_reprogrammer":
        return [float(a) for a in cfg.rrp_alphas] or [float(spec.params.get("alpha_zeroshot", 0.4))]
    if spec.name == "wise_ft":
        return [float(a) for a in cfg.wise_alphas] or [float(spec.params.get("alpha_finetuned", 0.5))]
    return [None]
