"""The Residual Reprogrammer (RRP, paper §3.4) as a method: a trained Reprogrammer blended with zero-shot CLIP.

The equation, (1 − α)·f^RP + α·f^ZS on both towers with α = ``alpha_zeroshot``, is in
:mod:`reprolab.reprogramming.residual`. This module connects it to a trained
:class:`~reprolab.methods.reprogrammer.Reprogrammer` and to the zero-shot branch of the frozen encoder
(:class:`ZeroShotBranch`). Two options set how the zero-shot half is computed. Every result row records both.

``zs_input``: the image the zero-shot half encodes.

* ``"full"`` (the kit's default): the dataset image, resized to the canvas (``encoder.resize``). This is what the
  plain zero-shot method sees.
* ``"reduced"`` (the official code; the default in ``configs/paper/``): the image the reprogrammer sees before
  its frame. It is reduced to ``image_res``, then upsampled to the whole canvas with the reprogrammer's ``resize``
  kernel. The official ``evaluate_*.py`` applies CLIP's preprocess to the loader's ``image_res`` image, which is
  the same thing. ``"reduced"`` is also the only choice when the reprogrammer reads ``reduce_from="raw"``: that
  image set has no full-size images.

``zs_dtype``: the precision of the zero-shot half, for both image and text features.

* ``"fp32"`` (the kit's default).
* ``"fp16"`` (the official code, whose zero-shot CLIP is loaded in half precision; the default in
  ``configs/paper/``): the branch runs under ``torch.autocast(float16)``. The matrix products are fp16, as with
  the official half-precision weights. Autocast keeps the residual stream in fp32, where the official model
  keeps it in fp16, so this is close to the official numbers but not bit-exact. It applies **on CUDA only**. On
  any other device the branch runs in fp32 (a one-line warning says so) and the row records
  ``zs_dtype: fp32``, the precision actually used. On the tiny test model, fp16 features lie within ≈ 5e-4 of
  fp32 features (``tests/test_fidelity.py``).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from reprolab.errors import ReprolabError
from reprolab.methods.base import Method, ZeroShot
from reprolab.methods.reprogrammer import Reprogrammer
from reprolab.reprogramming.residual import blend, check_alpha, residual_logits

ZS_INPUTS = ("full", "reduced")
ZS_DTYPES = ("fp32", "fp16")


def zs_dtype_used(zs_dtype: str, device) -> str:
    """The precision the zero-shot half really runs in: ``"fp16"`` only when asked for *and* on CUDA."""
    return "fp16" if zs_dtype == "fp16" and torch.device(device).type == "cuda" else "fp32"


class ZeroShotBranch(ZeroShot):
    """The zero-shot half of RRP: the input view ``zs_input`` at precision ``zs_dtype`` (module docstring).
    Nothing is trained. Its config names the view and the precision when they differ from plain zero-shot, so its
    cached features never mix with the plain zero-shot ones. With the defaults, it *is* plain zero-shot and
    shares that method's cache entries."""

    def __init__(self, rp: Reprogrammer, zs_input: str = "full", zs_dtype: str = "fp32"):
        super().__init__(rp.encoder, rp.template)
        self.rp, self.zs_input, self.zs_dtype = [rp], zs_input, zs_dtype  # a list: not registered as a submodule

    def dtype_used(self) -> str:
        return zs_dtype_used(self.zs_dtype, self.encoder.device)

    def precision(self):
        return torch.autocast(self.encoder.device.type, dtype=torch.float16, enabled=self.dtype_used() == "fp16")

    def input_view(self, dataset):
        """The reduced view reads the reprogrammer's images (its ``reduce_from``); the full view reads the set."""
        return self.rp[0].input_view(dataset) if self.zs_input == "reduced" else dataset

    def image_features(self, images: Tensor) -> Tensor:
        x = self.encoder.resize(images) if self.zs_input == "full" else self.rp[0].image_rp.zero_shot_view(images)
        with self.precision():
            return self.encoder.encode_image(x).float()

    def zero_shot_text_features(self) -> Tensor:
        if self._zs_text is None or self._zs_text.device != self.encoder.device:
            with torch.no_grad(), self.precision():
                self._zs_text = self.encoder.encode_text(self.class_tokens()).float()
        return self._zs_text

    def config(self) -> dict:
        extra = {}
        if self.zs_input == "reduced":
            g = self.rp[0].geometry
            extra = dict(zs_input="reduced", image_res=g["image_res"], resize=g["resize"])
            extra.update({"reduce_from": "raw"} if self.rp[0].reduce_from == "raw" else {})
        if self.dtype_used() == "fp16":
            extra["zs_dtype"] = "fp16"
        return dict(super().config(), **extra)


class ResidualReprogrammer(Method):
    """RRP: logits from (1−α)·RP + α·zero-shot features on both towers; α = ``alpha_zeroshot``; the zero-shot
    half sees ``zs_input`` at ``zs_dtype`` (module docstring)."""

    name = "residual_reprogrammer"

    def __init__(
        self,
        reprogrammer: Reprogrammer,
        alpha_zeroshot: float = 0.4,
        renormalise: bool = False,
        zs_input: str = "full",
        zs_dtype: str = "fp32",
    ):
        super().__init__(reprogrammer.encoder, reprogrammer.template)
        if zs_input not in ZS_INPUTS:
            raise ReprolabError(f"zs_input={zs_input!r}; use 'full' (kit) or 'reduced' (official code)")
        if zs_dtype not in ZS_DTYPES:
            raise ReprolabError(f"zs_dtype={zs_dtype!r}; use 'fp32' (kit) or 'fp16' (official code, CUDA only)")
        if zs_input == "full" and reprogrammer.reduce_from == "raw":
            raise ReprolabError(
                "zs_input='full' needs the set's full-size images, but the reprogrammer reads reduce_from='raw' "
                "images; use zs_input='reduced' (the official pairing) or reduce_from='dataset'"
            )
        self.rp = reprogrammer
        self.alpha_zeroshot = check_alpha(alpha_zeroshot)
        self.renormalise = renormalise
        self.zs_input, self.zs_dtype = zs_input, zs_dtype
        self._branch: list = []  # the ZeroShotBranch, boxed so that it is not registered as a submodule

    def setup(self, classnames):
        super().setup(classnames)
        self.rp.setup(classnames)
        self._branch.clear()
        return self

    def zero_shot_branch(self) -> ZeroShotBranch:
        """The zero-shot method whose features form the α-weighted half, set up for the same classes."""
        if not self._branch:
            if self.zs_dtype == "fp16" and self.encoder.device.type != "cuda":
                warnings.warn(
                    f"zs_dtype='fp16' applies on CUDA only; on {self.encoder.device.type} the zero-shot half runs "
                    "in fp32 (rows record zs_dtype: fp32)",
                    stacklevel=2,
                )
            self._branch.append(ZeroShotBranch(self.rp, self.zs_input, self.zs_dtype).setup(self.rp.classnames))
        return self._branch[0]

    def input_view(self, dataset):
        return self.rp.input_view(dataset)

    def zero_shot_image_features(self, images: Tensor) -> Tensor:
        return self.zero_shot_branch().image_features(images)

    def image_features(self, images):  # blended image features (for drift and caching)
        return blend(
            self.rp.image_features(images), self.zero_shot_image_features(images), self.alpha_zeroshot, self.renormalise
        )

    def text_features(self):
        zs = self.zero_shot_branch().text_features()
        return blend(self.rp.text_features(), zs, self.alpha_zeroshot, self.renormalise)

    def logits(self, images):
        return residual_logits(
            self.rp.image_features(images),
            self.zero_shot_image_features(images),
            self.rp.text_features(),
            self.zero_shot_branch().text_features(),
            self.alpha_zeroshot,
            self.encoder.logit_scale,
            self.renormalise,
        )

    def trainable_state(self):
        return self.rp.trainable_state()

    def load_trainable_state(self, state):
        self.rp.load_trainable_state(state)

    def row_settings(self) -> dict:
        return dict(
            self.rp.row_settings(), zs_input=self.zs_input, zs_dtype=zs_dtype_used(self.zs_dtype, self.encoder.device)
        )

    def config(self):
        extra = {} if self.zs_input == "full" else {"zs_input": self.zs_input}  # "full": the key the kit always had
        if zs_dtype_used(self.zs_dtype, self.encoder.device) == "fp16":
            extra["zs_dtype"] = "fp16"
        return dict(
            self.rp.config(),
            method=self.name,
            alpha_zeroshot=self.alpha_zeroshot,
            renormalise=self.renormalise,
            **extra,
        )
