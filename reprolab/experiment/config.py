"""Run configs: small YAML files, validated on load, overridable from the command line.

A config says which encoder and data to use and which methods to train and evaluate (the experiment grid of
Geng & Chen, arXiv 2403.10800, Sec. 5: ID accuracy, covariate-shift accuracy and OOD detection per method).
Every key is checked: an unknown key or a value of the wrong type raises :class:`~reprolab.errors.ConfigError`
with one line that names the key and the fix. ``--set a.b=value`` overrides use dotted keys; inside ``methods``
the second part is the method's ``name`` (``methods.reprogrammer.train.steps=50``). Values are YAML scalars
(``1e-3`` is read as a float, as in YAML 1.2).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from reprolab.errors import ConfigError
from reprolab.experiment.protocol import check_config
from reprolab.training import TrainConfig

SCORES = ("mcm", "energy", "max_logit")
METRIC_CONVENTIONS = ("kit", "official")  # reprolab.evaluation.metrics.CONVENTIONS (not imported: no sklearn here)
# Training options a config may set (the seed comes from ``seeds``, so it is not one of them).
TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "seed")


@dataclass
class MethodSpec:
    name: str  # a reprolab.methods name, e.g. "reprogrammer"
    params: dict = field(default_factory=dict)  # constructor keyword arguments
    train: dict = field(default_factory=dict)  # TrainConfig fields: steps, epochs, batch_size, warmup, ...
    base: str | None = None  # method whose checkpoint it reuses (residual_reprogrammer, wise_ft)
    sweep: dict = field(
        default_factory=dict
    )  # {param: [values]}: chosen on val_subset (see reprolab.experiment.protocol)


@dataclass
class Config:
    encoder: str = "auto"  # auto | clip | standin | tiny | openclip:ARCH:TAG
    data_root: str | None = None  # None: $REPROLAB_DATA, else the kit's data folder (reprolab.datasets.roots)
    download: bool | str = "auto"  # auto: fetch what is missing (unless $REPROLAB_OFFLINE) | true | false: never
    id_dataset: str = "cifar10"
    train_subset: int | None = None  # class-balanced subset of the train split (None: all)
    val_subset: int | None = None  # validation images carved from the train split (reprolab.experiment.protocol)
    test_subset: int | None = None  # ... of the ID test split
    shift_subset: int | None = None  # ... of each covariate-shift set
    ood_subset: int | None = None  # ... of each OOD set
    data_seed: int = 0  # which subset is drawn (fixed across training seeds)
    seeds: list[int] = field(default_factory=lambda: [0])
    image_size: int | None = None  # side of ID/shift images (None: native, 32 for CIFAR)
    ood_size: int | None = None  # side of OOD images (None: the task default, 32 for CIFAR)
    shift_sets: list[str] = field(default_factory=list)
    ood_sets: list[str] = field(default_factory=list)
    score: str = "mcm"  # OOD score: mcm | energy | max_logit
    T: float = 0.01  # temperature of the score
    metric_convention: str = "kit"  # OOD metrics: kit (scikit-learn, as MCM) | official (compute_metrics.py)
    eval_batch_size: int = 256
    device: str = "auto"
    methods: list[MethodSpec] = field(default_factory=list)
    rrp_alphas: list[float] = field(default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    wise_alphas: list[float] = field(default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])

    def method(self, name: str) -> MethodSpec:
        for m in self.methods:
            if m.name == name:
                return m
        raise ConfigError(
            f"no method {name!r} in this config; add it under methods or use one of {[m.name for m in self.methods]}"
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---- YAML with YAML-1.2 floats (PyYAML reads "1e-3" as a string otherwise) --------------------------------------
class _Loader(yaml.SafeLoader):
    pass


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                       |\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.yaml_implicit_resolvers = {
    k: [(t, r) for t, r in v if t != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def parse_value(text: str):
    """A ``--set`` value as a YAML scalar/flow value: ``50`` → int, ``1e-3`` → float, ``[0,1]`` → list, ``null``."""
    try:
        return yaml.load(text, Loader=_Loader) if text.strip() else ""
    except yaml.YAMLError:
        return text


# ---- validation ----------------------------------------------------------------------------------------------
def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check(value, tp, key: str):
    """Return ``value`` converted to ``tp`` or raise a one-line ConfigError naming ``key``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check(value, inner[0], key)
    if origin is list:
        if not isinstance(value, list):
            value = [value] if not isinstance(value, (dict, tuple)) else value
            if not isinstance(value, list):
                raise ConfigError(f"{key} must be a list of {_type_name(args[0])}, e.g. {key}=[...]")
        return [_check(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is MethodSpec:
        return _method(value, key)
    if tp is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping (key: value), got {value!r}")
        return value
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        base = re.sub(r"\[\d+\]", "", key)
        raise ConfigError(
            f"{key} must be {'a number' if tp is float else _type_name(tp)}, got {value!r} "
            f"({type(value).__name__}); fix it in the config or with --set {base}=..."
        )
    return float(value) if tp is float else value


def _download(value):
    """``download``: true, false or auto (the default)."""
    if isinstance(value, bool) or value == "auto":
        return value
    raise ConfigError(
        f"download must be bool (true / false) or auto, got {value!r}; fix it in the config or with --set download=auto"
    )


def _unknown(key: str, allowed, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
    return ConfigError(f"unknown key {where}{key!r}; {hint}")


def _method(value, key: str) -> MethodSpec:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a mapping with name/params/train, got {value!r}")
    names = [f.name for f in dataclasses.fields(MethodSpec)]
    for k in value:
        if k not in names:
            raise _unknown(k, names, f"in {key}: ")
    if "name" not in value:
        raise ConfigError(f"{key} has no name; add e.g. 'name: reprogrammer'")
    key = f"methods.{value['name']}" if isinstance(value["name"], str) else key
    mh = typing.get_type_hints(MethodSpec)
    spec = MethodSpec(**{k: _check(v, mh[k], f"{key}.{k}") for k, v in value.items()})
    hints = typing.get_type_hints(TrainConfig)
    for k, v in spec.train.items():
        if k not in TRAIN_KEYS:
            raise _unknown(k, TRAIN_KEYS, f"in methods.{spec.name}.train: ")
        spec.train[k] = _check(v, hints[k], f"methods.{spec.name}.train.{k}")
    return spec


def from_dict(raw: dict) -> Config:
    """Validate a plain dict (e.g. parsed YAML) into a :class:`Config`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of keys to values, got {type(raw).__name__}")
    hints = typing.get_type_hints(Config)
    for k in raw:
        if k not in hints:
            raise _unknown(k, list(hints), "")
    cfg = Config(**{k: _download(v) if k == "download" else _check(v, hints[k], k) for k, v in raw.items()})
    if cfg.data_root is None and os.environ.get("REPROLAB_DATA"):
        cfg.data_root = os.environ["REPROLAB_DATA"]
    if cfg.score not in SCORES:
        raise ConfigError(f"score must be one of {', '.join(SCORES)}, got {cfg.score!r}")
    if cfg.metric_convention not in METRIC_CONVENTIONS:
        raise ConfigError(
            f"metric_convention must be kit (scikit-learn, as MCM) or official (the official code's "
            f"compute_metrics.py), got {cfg.metric_convention!r}"
        )
    if not cfg.seeds:
        raise ConfigError("seeds is empty; give at least one, e.g. seeds: [0]")
    for k in ("rrp_alphas", "wise_alphas"):
        bad = [a for a in getattr(cfg, k) if not 0.0 <= a <= 1.0]
        if bad:
            raise ConfigError(f"{k} must lie in [0, 1], got {bad}")
    names = [m.name for m in cfg.methods]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"method(s) {dup} listed twice; each name may appear once in methods")
    _check_methods(cfg)
    return cfg


def _check_methods(cfg: Config) -> None:
    try:
        from reprolab.methods import METHODS
    except ImportError:  # methods registry not importable: checked again when the run builds them
        return
    for m in cfg.methods:
        if m.name not in METHODS:
            close = difflib.get_close_matches(m.name, list(METHODS), n=1)
            raise ConfigError(
                f"unknown method {m.name!r}; "
                + (f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(METHODS)}")
            )
    names = [m.name for m in cfg.methods]
    for m in cfg.methods:
        if m.base is not None and m.base not in names:
            raise ConfigError(f"methods.{m.name}.base is {m.base!r}, which is not in methods; add it or fix base")
    check_config(cfg, METHODS)  # val_subset and sweeps: the protocol's rules


# ---- overrides and loading -----------------------------------------------------------------------------------
def apply_override(raw: dict, assignment: str) -> None:
    """Apply one ``key.sub=value`` to the raw dict in place (validation happens afterwards)."""
    if "=" not in assignment:
        raise ConfigError(f"--set needs key=value, got {assignment!r}; e.g. --set train_subset=500")
    key, text = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"--set key {key!r} is malformed; write dotted keys like methods.finetune.train.steps")
    node = raw
    for i, p in enumerate(parts[:-1]):
        if isinstance(node, list):  # methods: address entries by name
            hit = [m for m in node if (m.get("name") if isinstance(m, dict) else m) == p]
            if not hit:
                raise ConfigError(f"--set {key}: no method named {p!r} in the config; add it under methods first")
            j = node.index(hit[0])
            if isinstance(node[j], str):
                node[j] = {"name": node[j]}
            node = node[j]
            continue
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {} if parts[0] != "methods" or i else []
        if not isinstance(nxt, (dict, list)):
            raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is a value, not a section")
        node = nxt
    if isinstance(node, list):
        raise ConfigError(f"--set {key}: address a method by name, e.g. methods.reprogrammer.train.steps=50")
    node[parts[-1]] = parse_value(text)


def load_config(path, overrides=()) -> Config:
    """Read and validate a YAML config, then apply ``--set`` overrides (validated the same way)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found; pass a YAML file such as configs/quickstart.yaml")
    try:
        raw = yaml.load(p.read_text(), Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{p}{where} is not valid YAML ({getattr(e, 'problem', e)}); fix the syntax") from None
    raw = {} if raw is None else raw
    for a in overrides:
        apply_override(raw, a)
    return from_dict(raw)
