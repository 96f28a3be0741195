"""From a config's method spec to a built method and the folder its checkpoint lives in.

* :func:`build_from_spec`: ``residual_reprogrammer`` with a ``base`` takes its base reprogrammer's params (its own
  params may only be ``alpha_zeroshot`` — the weight on the ZERO-SHOT features —, ``renormalise``, ``zs_input``
  and ``zs_dtype``); ``wise_ft``
  needs a ``base`` fine-tuning run; a method whose constructor takes ``seed`` gets the run's seed.
* :func:`checkpoint_dir`: ``OUT/checkpoints/<method>-s<seed>[-<params hash>]``, marked with the hash of its training
  config; a checkpoint of another training config is moved aside to ``….stale-<hash>`` (and moved back if that
  config is run again), so it is never resumed by mistake and never lost.
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

from reprolab.errors import ConfigError
from reprolab.experiment.log import log


def build_from_spec(spec, specs: dict, encoder, classnames, seed: int):
    """The method of ``spec`` (``specs``: every spec of the run by name, for its base), set up for ``classnames``."""
    from reprolab.methods import METHODS, build_method

    params = dict(spec.params)
    if spec.name == "residual_reprogrammer" and spec.base:
        extra = [k for k in params if k not in ("alpha_zeroshot", "renormalise", "zs_input", "zs_dtype")]
        if extra or specs[spec.base].name != "reprogrammer":
            raise ConfigError(
                f"methods.residual_reprogrammer reuses base {spec.base!r}: its base must be the "
                f"reprogrammer and its params only alpha_zeroshot/renormalise/zs_input/zs_dtype (got {extra})"
            )
        params = {**specs[spec.base].params, **params}
    if spec.name == "wise_ft" and (not spec.base or specs[spec.base].name not in ("finetune", "lp_ft")):
        raise ConfigError("methods.wise_ft needs base: finetune (or lp_ft), the run whose weights it interpolates")
    cls = METHODS["reprogrammer" if spec.name == "residual_reprogrammer" else spec.name]
    if "seed" in inspect.signature(cls.__init__).parameters:
        params.setdefault("seed", seed)  # e.g. RP frame init, probe validation split follow the run seed
    return build_method(spec.name, encoder, **params).setup(classnames)


def checkpoint_dir(d: Path, h: str) -> Path:
    """Create (or reclaim) checkpoint folder ``d`` for training-config hash ``h``; see the module docstring."""
    marker = d / "config_hash.txt"
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
    if not marker.exists() or marker.read_text().strip() != h:  # rewritten only when new: a Ray worker may read it
        marker.write_text(h)
    return d
