"""Every method of the comparison behind one protocol (:class:`Method`) and one registry.

>>> m = build_method("coop", load_encoder("tiny"), n_ctx=4).setup(["cat", "dog"])

``build_method(name, encoder, **kw)`` passes ``kw`` to the class's constructor, except for
``residual_reprogrammer`` (``alpha_zeroshot``, ``renormalise``, ``zs_input`` and ``zs_dtype`` go to the residual wrapper, the rest to the
inner :class:`Reprogrammer`) and ``wise_ft`` (``finetuned=`` a trained FineTune/LPFT, optional; otherwise load a
fine-tuning checkpoint into it with ``load_trainable_state``).

Methods fitted outside :func:`reprolab.training.fit` have a ``prepare(train_set, batch_size)`` hook:
``linear_probe`` (fits the probe on cached features) and ``lp_ft`` (stage 1, the probe). Call it before ``fit``.

May import the paper core (:mod:`reprolab.reprogramming`), training, checkpoint, encoders and errors;
never evaluation, experiment, course or bench.
"""

from __future__ import annotations

import inspect

from reprolab.errors import ConfigError
from reprolab.methods.base import Method, ZeroShot
from reprolab.methods.coop import CoOp
from reprolab.methods.finetune import LPFT, FineTune
from reprolab.methods.linear_probe import LinearProbe
from reprolab.methods.reprogrammer import Reprogrammer
from reprolab.methods.residual_reprogrammer import ResidualReprogrammer
from reprolab.methods.visual_prompt import VisualPrompt
from reprolab.methods.visual_reprogrammer import VisualReprogrammer
from reprolab.methods.wise_ft import WiSEFT

METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (ZeroShot, LinearProbe, FineTune, LPFT, WiSEFT, CoOp, VisualPrompt, Reprogrammer, ResidualReprogrammer)
}
METHODS[VisualReprogrammer.name] = VisualReprogrammer  # a frozen ImageNet classifier + label mapping (notebook 08)


def _check_kwargs(cls, kw: dict, skip=("self", "encoder")) -> None:
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in skip]
    unknown = [k for k in kw if k not in allowed]
    if unknown:
        raise ConfigError(f"{cls.name} has no option {unknown[0]!r}; its options are: {', '.join(allowed)}")


def build_method(name: str, encoder, **kw) -> Method:
    """A method by its registry name (see :data:`METHODS`), constructed on ``encoder``; call ``.setup(classnames)``."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; use one of: {', '.join(METHODS)}")
    if name == "residual_reprogrammer":
        outer = {k: kw.pop(k) for k in ("alpha_zeroshot", "renormalise", "zs_input", "zs_dtype") if k in kw}
        _check_kwargs(Reprogrammer, kw)
        return ResidualReprogrammer(Reprogrammer(encoder, **kw), **outer)
    if name == "wise_ft":
        if "finetuned" in kw:
            kw["finetuned_method"] = kw.pop("finetuned")
        _check_kwargs(WiSEFT, kw, skip=("self", "zeroshot_encoder"))
        return WiSEFT(encoder, **kw)
    _check_kwargs(METHODS[name], kw)
    return METHODS[name](encoder, **kw)


__all__ = [
    "METHODS",
    "build_method",
    "Method",
    "ZeroShot",
    "LinearProbe",
    "FineTune",
    "LPFT",
    "WiSEFT",
    "CoOp",
    "VisualPrompt",
    "Reprogrammer",
    "ResidualReprogrammer",
    "VisualReprogrammer",
]
