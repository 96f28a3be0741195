"""Fast Residual-Reprogrammer α explorer: ID/shift accuracy and OOD metrics for any α in milliseconds.

The Residual Reprogrammer (paper §3.4, :mod:`reprolab.reprogramming.residual`) blends both towers with α = ``alpha_zeroshot``
(the weight on the *zero-shot* features; 0 = reprogrammer, 1 = zero-shot):

    logits(α) = s · [(1−α) I_rp + α I_zs] · [(1−α) T_rp + α T_zs]ᵀ
              = s · [(1−α)² I_rp T_rpᵀ + α(1−α) (I_rp T_zsᵀ + I_zs T_rpᵀ) + α² I_zs T_zsᵀ]

so the three N×C products are computed once and each α costs one N×C combination (C = 10 for CIFAR), then the
MCM score ``max softmax(cos / T)`` (:mod:`reprolab.evaluation.scores`) and :func:`reprolab.evaluation.metrics.fast_fpr95_auroc`
(metric convention: :mod:`reprolab.evaluation.metrics`). This is **exact** for ``renormalise=False`` (the default, as the
official code). With ``renormalise=True`` it stays exact: each blended vector's norm is
``‖(1−α)a + αb‖² = (1−α)²‖a‖² + 2α(1−α)⟨a,b⟩ + α²‖b‖²``, precomputed per image and per class, and the logits are
divided by the two norms. Everything runs in float64 numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reprolab.errors import ShapeError
from reprolab.evaluation.metrics import fast_fpr95_auroc, holistic_score, to_numpy
from reprolab.reprogramming.residual import check_alpha

__all__ = ["AlphaExplorer"]


def _feats(x, name: str, d: int | None = None) -> np.ndarray:
    a = to_numpy(x, name)
    if a.ndim != 2 or a.shape[0] == 0 or (d is not None and a.shape[1] != d):
        raise ShapeError(
            f"{name} must be a non-empty [N, {d or 'D'}] feature matrix, got {a.shape}; pass the image "
            "features of one set (same encoder for RP and zero-shot)"
        )
    return a


class AlphaExplorer:
    """Precomputes the α-independent products once; :meth:`metrics_at` then costs a few ms (see module doc).

    ``shift``: ``{name: (image_rp, image_zs, labels)}``; ``ood``: ``{name: (image_rp, image_zs)}``; features are
    [N, D] L2-normalised image features, ``text_rp``/``text_zs`` [C, D] class features, ``labels_id`` [N].
    """

    def __init__(
        self,
        image_rp_id,
        image_zs_id,
        text_rp,
        text_zs,
        labels_id,
        shift: dict | None = None,
        ood: dict | None = None,
        T: float = 0.01,
        logit_scale: float = 100.0,
        renormalise: bool = False,
        id_name: str = "id",
    ):
        t_rp = _feats(text_rp, "text_rp")
        C, D = t_rp.shape
        t_zs = _feats(text_zs, "text_zs", D)
        if t_zs.shape != t_rp.shape:
            raise ShapeError(f"text_rp {t_rp.shape} and text_zs {t_zs.shape} differ; encode the same class prompts")
        self.T, self.logit_scale, self.renormalise = float(T), float(logit_scale), renormalise
        self.n_classes, self.dim = C, D
        sets = [(id_name, "id", image_rp_id, image_zs_id, labels_id)]
        sets += [(n, "shift", *v) for n, v in (shift or {}).items()]
        sets += [(n, "ood", *v, None) for n, v in (ood or {}).items()]
        names = [s[0] for s in sets]
        if len(set(names)) != len(names):
            raise ShapeError(f"set names {names} repeat; give the ID, shift and OOD sets distinct names")
        self.id_name = id_name
        blocks, img_norms, self.slices, self.labels = [], [], {}, {}
        start = 0
        for name, kind, i_rp, i_zs, y in sets:
            a, b = _feats(i_rp, f"{name} image_rp", D), _feats(i_zs, f"{name} image_zs", D)
            if a.shape != b.shape:
                raise ShapeError(f"{name}: image_rp {a.shape} and image_zs {b.shape} differ; use the same images")
            blocks.append(np.stack([t_rp @ a.T, t_zs @ a.T + t_rp @ b.T, t_zs @ b.T]))  # class-major [3, C, N]
            img_norms.append(np.stack([(a * a).sum(1), (a * b).sum(1), (b * b).sum(1)]))
            self.slices[name] = (kind, slice(start, start + len(a)))
            if y is not None:
                y = to_numpy(y, f"{name} labels", dtype=np.int64).reshape(-1)
                if len(y) != len(a):
                    raise ShapeError(f"{name}: {len(y)} labels for {len(a)} images; pass the labels of those images")
                self.labels[name] = y
            start += len(a)
        self.products = np.ascontiguousarray(np.concatenate(blocks, axis=2))  # [3, C, N_total]
        self.image_norm_terms = np.concatenate(img_norms, axis=1)  # [3, N_total]
        self.text_norm_terms = np.stack([(t_rp * t_rp).sum(1), (t_rp * t_zs).sum(1), (t_zs * t_zs).sum(1)])
        self.shift_names = [n for n, (k, _) in self.slices.items() if k == "shift"]
        self.ood_names = [n for n, (k, _) in self.slices.items() if k == "ood"]

    # ----- per-α computation ----------------------------------------------------------------------------------------
    # Class-major [C, N] arrays and elementwise numpy only: reductions over C run as vector ops across images,
    # and no BLAS call (whose thread start-up dominates at this size) is on the per-α path.
    def _cos_cn(self, alpha_zeroshot: float) -> np.ndarray:
        a = check_alpha(alpha_zeroshot)
        p0, p1, p2 = self.products
        cos = p0 * ((1 - a) ** 2)
        cos += p1 * (a * (1 - a))
        cos += p2 * (a * a)
        if self.renormalise:
            (i0, i1, i2), (t0, t1, t2) = self.image_norm_terms, self.text_norm_terms
            w0, w1, w2 = (1 - a) ** 2, 2 * a * (1 - a), a * a
            cos /= np.sqrt(w0 * t0 + w1 * t1 + w2 * t2)[:, None] * np.sqrt(w0 * i0 + w1 * i1 + w2 * i2)[None, :]
        return cos

    def _scores_cn(self, cos: np.ndarray) -> np.ndarray:
        z = cos / self.T
        z -= z.max(axis=0)
        np.exp(z, out=z)
        return 1.0 / z.sum(axis=0)  # MCM = max_c softmax(cos / T)_c = 1 / sum_c exp((cos_c - cos_max) / T)

    def cosines_at(self, alpha_zeroshot: float) -> np.ndarray:
        """Blended cosines (logits / s) of all images stacked [N_total, C]; rows per set in :attr:`slices`."""
        return self._cos_cn(alpha_zeroshot).T

    def logits_at(self, alpha_zeroshot: float) -> dict[str, np.ndarray]:
        """``{set name: logits [N, C]}`` (= s · cosines; the ID set is keyed by ``id_name``)."""
        cos = self.cosines_at(alpha_zeroshot) * self.logit_scale
        return {n: cos[sl] for n, (_, sl) in self.slices.items()}

    def scores_at(self, alpha_zeroshot: float) -> dict[str, np.ndarray]:
        """``{set name: MCM scores [N]}`` at α."""
        s = self._scores_cn(self._cos_cn(alpha_zeroshot))
        return {n: s[sl] for n, (_, sl) in self.slices.items()}

    def metrics_at(self, alpha_zeroshot: float, per_set: bool = False) -> dict:
        """``id_acc, shift_acc`` (mean over shift sets; NaN if none), ``fpr95, auroc`` (mean over OOD sets; NaN if
        none) and ``holistic``; ``per_set=True`` adds ``"sets": {name: {acc | fpr95, auroc}}``."""
        cos = self._cos_cn(alpha_zeroshot)
        pred = cos.argmax(axis=0)
        accs = {n: float(np.mean(pred[self.slices[n][1]] == self.labels[n])) for n in [self.id_name, *self.shift_names]}
        out = {
            "id_acc": accs[self.id_name],
            "shift_acc": float(np.mean([accs[n] for n in self.shift_names])) if self.shift_names else math.nan,
        }
        per = {n: {"acc": accs[n]} for n in accs}
        if self.ood_names:
            s = self._scores_cn(cos)
            id_s = s[self.slices[self.id_name][1]]
            for n in self.ood_names:
                fpr, auc = fast_fpr95_auroc(id_s, s[self.slices[n][1]])
                per[n] = {"fpr95": fpr, "auroc": auc}
            out["fpr95"] = float(np.mean([per[n]["fpr95"] for n in self.ood_names]))
            out["auroc"] = float(np.mean([per[n]["auroc"] for n in self.ood_names]))
        else:
            out["fpr95"] = out["auroc"] = math.nan
        out["holistic"] = holistic_score(out["id_acc"], out["shift_acc"], out["auroc"])
        if per_set:
            out["sets"] = per
        return out

    def curve(self, alphas) -> pd.DataFrame:
        """One row per α: ``alpha, id_acc, shift_acc, fpr95, auroc, holistic``."""
        return pd.DataFrame([dict(alpha=float(a), **self.metrics_at(a)) for a in alphas])

    # ----- constructors -------------------------------------------------------------------------------------------
    @classmethod
    def from_features(cls, feats: dict, T: float = 0.01, renormalise: bool = False) -> AlphaExplorer:
        """From :func:`reprolab.evaluation.alpha_sweeps.rrp_features` output (exactly one set of kind "id")."""
        sets = feats["sets"]
        ids = [n for n, f in sets.items() if f["kind"] == "id"]
        if len(ids) != 1:
            raise ShapeError(f"found {len(ids)} ID sets in the features; pass exactly one set of kind 'id'")
        bad = [n for n, f in sets.items() if f.get("class_subset") is not None]
        if bad:
            raise ShapeError(f"sets {bad} use a class subset (ImageNet-A/R); evaluate them with rrp_sweep instead")
        f_id = sets[ids[0]]
        shift = {n: (f["image_rp"], f["image_zs"], f["labels"]) for n, f in sets.items() if f["kind"] == "shift"}
        ood = {n: (f["image_rp"], f["image_zs"]) for n, f in sets.items() if f["kind"] == "ood"}
        return cls(
            f_id["image_rp"],
            f_id["image_zs"],
            feats["text_rp"],
            feats["text_zs"],
            f_id["labels"],
            shift,
            ood,
            T=T,
            logit_scale=feats["logit_scale"],
            renormalise=renormalise,
            id_name=ids[0],
        )

    @classmethod
    def from_methods(
        cls,
        rp_method,
        id_set,
        shift_sets,
        ood_sets,
        cache=None,
        T: float = 0.01,
        batch_size: int = 256,
        renormalise: bool = False,
        progress: bool = True,
    ) -> AlphaExplorer:
        """One RP pass and one zero-shot pass over every set (cached if ``cache``), then :meth:`from_features`.
        Kinds come from the argument slots, not from the sets' ``.kind``."""
        from reprolab.evaluation.alpha_sweeps import rrp_features

        sets = [id_set, *shift_sets, *ood_sets]
        feats = rrp_features(rp_method, sets, cache, batch_size, progress)
        kinds = {id_set.name: "id", **{d.name: "shift" for d in shift_sets}, **{d.name: "ood" for d in ood_sets}}
        for name, f in feats["sets"].items():
            f["kind"] = kinds[name]
        return cls.from_features(feats, T=T, renormalise=renormalise)
