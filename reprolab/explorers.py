"""Two interactive explorers for the notebooks, each with a static plotly fallback (for exported HTML / no kernel).

**OOD threshold explorer** (notebook 06). A detector keeps an image as in-distribution when its score is at least
a threshold t (metric convention of :mod:`reprolab.metrics`: ID is the positive class, higher = more ID):

    TPR(t) = #{ID scores ≥ t} / #ID          (ID images kept)
    FPR(t) = #{OOD scores ≥ t} / #OOD        (OOD images wrongly kept; the readout shows the mean over OOD sets)

FPR95 is FPR(t95) at t95 = the largest t with TPR ≥ 0.95, which is where the slider starts. The score is usually
MCM (Ming et al., 2022), the one the paper uses (Geng & Chen, arXiv 2403.10800, Sec. 5).

**Perturbation explorer** (notebook 07). The image reprogrammer (paper §3.1, :mod:`reprolab.image_reprogrammer`)
feeds the frozen encoder x̃ = clamp(pad(up(resize(x))) + δ, 0, 1) with δ = M ⊙ tanh(W). The explorer evaluates

    x̃(λ, c) = clamp(pad(up(resize(x))) + λ · (δ ⊙ c), 0, 1),     c ∈ {0,1}³ (R, G, B switches)

and shows the reprogrammer's class probabilities softmax(s · f_I(x̃) f_Tᵀ) — so λ = 0 removes the learned frame
(but keeps the reprogrammed text side) and λ = 1 is the trained model.

DOM markers for browser tests: ``rl-threshold-slider``, ``rl-threshold-figure`` and ``<span
class="rl-threshold-metrics" data-threshold data-tpr data-fpr>``; ``rl-perturbation-scale``,
``rl-perturbation-figure`` and ``<span class="rl-perturbation-metrics" data-scale data-pred>``.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import plotly.graph_objects as go
import torch

from .errors import ReprolabError
from .metrics import to_numpy

__all__ = ["threshold_at_tpr", "threshold_metrics", "threshold_figure", "threshold_explorer", "roc_figure",
           "perturbed_probs", "perturbation_figure", "perturbation_explorer", "png_bytes"]

ID_COLOUR = "#1f77b4"
OOD_COLOURS = ["#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]


# ----- thumbnails ---------------------------------------------------------------------------------------------------
def png_bytes(image, size: int | None = None) -> bytes:
    """PNG of one image (tensor/array 3×H×W or H×W×3 in [0,1]), optionally resized (nearest) to ``size`` px."""
    from PIL import Image
    a = to_numpy(image, "image", dtype=np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    im = Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8))
    if size:
        im = im.resize((size, size), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _img_tag(image, size: int = 40, title: str = "") -> str:
    data = base64.b64encode(png_bytes(image, size)).decode()
    return (f'<img src="data:image/png;base64,{data}" width="{size}" height="{size}" title="{html.escape(title)}" '
            'style="margin:1px;image-rendering:pixelated">')


# ----- OOD threshold ------------------------------------------------------------------------------------------------
def _score_sets(id_scores, ood_scores: dict) -> tuple[np.ndarray, dict]:
    if not isinstance(ood_scores, dict) or not ood_scores:
        raise ReprolabError("ood_scores must be a dict {OOD set name: scores}; pass at least one OOD set")
    if "ID" in ood_scores:
        raise ReprolabError("an OOD set is named 'ID', which the explorer uses for the ID set; rename it")
    i = to_numpy(id_scores, "id_scores").reshape(-1)
    o = {str(k): to_numpy(v, f"ood_scores[{k}]").reshape(-1) for k, v in ood_scores.items()}
    if i.size == 0 or any(v.size == 0 for v in o.values()):
        raise ReprolabError("a score array is empty; evaluate at least one image per set")
    return i, o


def threshold_at_tpr(id_scores, tpr: float = 0.95) -> float:
    """The largest threshold t with TPR(t) ≥ ``tpr`` (t95 for the default), i.e. the FPR95 operating point."""
    s = np.sort(to_numpy(id_scores, "id_scores").reshape(-1))[::-1]
    return float(s[max(0, int(np.ceil(tpr * len(s))) - 1)])


def threshold_metrics(id_scores, ood_scores: dict, threshold: float) -> dict:
    """``{"threshold", "tpr", "fpr" (mean over OOD sets), "fpr_sets": {name: FPR}, "rejected": {name: count}}``."""
    i, o = _score_sets(id_scores, ood_scores)
    t = float(threshold)
    fpr_sets = {k: float(np.mean(v >= t)) for k, v in o.items()}
    rejected = {"ID": int(np.sum(i < t)), **{k: int(np.sum(v < t)) for k, v in o.items()}}
    return {"threshold": t, "tpr": float(np.mean(i >= t)), "fpr": float(np.mean(list(fpr_sets.values()))),
            "fpr_sets": fpr_sets, "rejected": rejected}


def threshold_figure(id_scores, ood_scores: dict, threshold: float | None = None, score_name: str = "MCM score",
                     widget: bool = False):
    """Overlaid score histograms (ID and each OOD set) with the threshold as a dashed line (static fallback)."""
    i, o = _score_sets(id_scores, ood_scores)
    t = threshold_at_tpr(i) if threshold is None else float(threshold)
    fig = (go.FigureWidget if widget else go.Figure)()
    lo, hi = min(i.min(), *(v.min() for v in o.values())), max(i.max(), *(v.max() for v in o.values()))
    bins = dict(start=lo, end=hi + 1e-9, size=max((hi - lo) / 40, 1e-9))
    fig.add_histogram(x=i, name="ID", marker_color=ID_COLOUR, opacity=0.6, histnorm="probability", xbins=bins)
    for k, (name, v) in enumerate(o.items()):
        fig.add_histogram(x=v, name=f"OOD: {name}", marker_color=OOD_COLOURS[k % len(OOD_COLOURS)], opacity=0.5,
                          histnorm="probability", xbins=bins)
    m = threshold_metrics(i, o, t)
    fig.add_shape(type="line", x0=t, x1=t, y0=0, y1=1, yref="paper", line=dict(color="black", dash="dash"))
    fig.update_layout(barmode="overlay", height=380, xaxis_title=f"{score_name} (higher = more in-distribution)",
                      yaxis_title="fraction of the set", title=_threshold_title(m), legend=dict(x=0.01, y=0.99))
    return fig


def _threshold_title(m: dict) -> str:
    return f"threshold {m['threshold']:.4g}: TPR {100 * m['tpr']:.1f}% (ID kept), FPR {100 * m['fpr']:.1f}% " \
           "(OOD kept, mean over sets)"


def roc_figure(id_scores, ood_scores: dict, title: str = "ROC curves (ID = positive class)") -> go.Figure:
    """ROC curve per OOD set from :func:`sklearn.metrics.roc_curve`, with its AUROC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve
    i, o = _score_sets(id_scores, ood_scores)
    fig = go.Figure()
    for k, (name, v) in enumerate(o.items()):
        y, s = np.r_[np.ones(len(i)), np.zeros(len(v))], np.r_[i, v]
        fpr, tpr, _ = roc_curve(y, s)
        fig.add_scatter(x=fpr, y=tpr, mode="lines", name=f"{name} (AUROC {100 * roc_auc_score(y, s):.1f})",
                        line=dict(color=OOD_COLOURS[k % len(OOD_COLOURS)]))
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="grey", dash="dot"), name="chance")
    fig.add_hline(y=0.95, line=dict(color="black", dash="dash", width=1), annotation_text="TPR 95%")
    fig.update_layout(title=title, xaxis_title="FPR (OOD kept)", yaxis_title="TPR (ID kept)", height=420)
    return fig


def threshold_explorer(id_scores, ood_scores: dict, images: dict | None = None, n_show: int = 12,
                       score_name: str = "MCM score"):
    """Slider over the threshold → TPR/FPR readout, histogram with the threshold line, rejected images.

    ``images``: optional ``{"ID" or OOD set name: images [N,3,H,W]}`` aligned with the scores; for each set the
    ``n_show`` rejected images closest to the threshold are shown (ID: false alarms; OOD: correct rejections).
    """
    import ipywidgets as W
    i, o = _score_sets(id_scores, ood_scores)
    sets = {"ID": i, **o}
    images = dict(images or {})
    for k, v in images.items():
        if k not in sets or len(v) != len(sets[k]):
            raise ReprolabError(f"images[{k!r}] must match a set in {list(sets)} with one image per score")
    lo, hi = float(min(v.min() for v in sets.values())), float(max(v.max() for v in sets.values()))
    slider = W.FloatSlider(value=threshold_at_tpr(i), min=lo, max=hi, step=max((hi - lo) / 500, 1e-6),
                           description="threshold", readout_format=".4f", continuous_update=True,
                           layout=W.Layout(width="600px"))
    slider.add_class("rl-threshold-slider")
    readout, gallery = W.HTML(), W.HTML()
    fig = threshold_figure(i, o, slider.value, score_name, widget=True)
    fig.add_class("rl-threshold-figure")
    cache: dict = {}

    def thumb(name, j):
        if (name, j) not in cache:
            cache[name, j] = _img_tag(images[name][j], title=f"{name} #{j}: score {sets[name][j]:.4g}")
        return cache[name, j]

    def update(change=None):
        m = threshold_metrics(i, o, slider.value)
        per = " · ".join(f"{k} {100 * v:.1f}%" for k, v in m["fpr_sets"].items())
        readout.value = (f'<span class="rl-threshold-metrics" data-threshold="{m["threshold"]:.6g}" '
                         f'data-tpr="{m["tpr"]:.6f}" data-fpr="{m["fpr"]:.6f}"><b>TPR {100 * m["tpr"]:.1f}%</b> '
                         f'(ID kept) · <b>FPR {100 * m["fpr"]:.1f}%</b> (OOD kept, mean) — per set: {html.escape(per)}'
                         '</span>')
        with fig.batch_update():
            fig.layout.shapes[0].x0 = fig.layout.shapes[0].x1 = m["threshold"]
            fig.layout.title.text = _threshold_title(m)
        rows = []
        for name, s in sets.items():
            rej = np.flatnonzero(s < m["threshold"])
            what = "false alarms" if name == "ID" else "correctly rejected"
            row = f"<b>{html.escape(name)}</b>: {len(rej)} of {len(s)} rejected ({what})"
            if name in images and len(rej):
                near = rej[np.argsort(-s[rej])][:n_show]  # closest to the threshold first
                row += "<br>" + "".join(thumb(name, int(j)) for j in near)
            rows.append(f"<div>{row}</div>")
        gallery.value = "".join(rows)

    slider.observe(update, names="value")
    update()
    box = W.VBox([slider, readout, fig, gallery])
    box.slider, box.readout, box.figure, box.gallery, box.update = slider, readout, fig, gallery, update
    return box


# ----- perturbation -------------------------------------------------------------------------------------------------
def _image_side(rp_method):
    rp = getattr(rp_method, "rp", rp_method)  # a ResidualReprogrammer explores its inner reprogrammer
    if getattr(rp, "image_rp", None) is None or getattr(rp, "mode", "image") == "text":
        raise ReprolabError("the perturbation explorer needs a Reprogrammer with an image side (mode 'image' or "
                            "'both'); train one first")
    if not rp.classnames:
        raise ReprolabError("the reprogrammer has no classes; call rp.setup(classnames) first")
    return rp


@torch.no_grad()
def perturbed_probs(rp_method, images, scales=(1.0,), channels=(True, True, True)) -> tuple[np.ndarray, torch.Tensor]:
    """Class probabilities [S, N, C] and the encoder inputs x̃ [S, N, 3, canvas, canvas] for each scale λ."""
    rp = _image_side(rp_method)
    rp.eval()
    dev = rp.encoder.device
    x = torch.as_tensor(images, dtype=torch.float32)
    x = x[None] if x.ndim == 3 else x
    placed = rp.image_rp.place(x.to(dev))
    c = torch.tensor([float(b) for b in channels], device=dev).view(3, 1, 1)
    delta = rp.image_rp.delta() * c
    text = rp.text_features()
    probs, inputs = [], []
    for lam in scales:
        xt = (placed + float(lam) * delta).clamp(0, 1)
        logits = rp.encoder.logit_scale * rp.encoder.encode_image(xt) @ text.t()
        probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        inputs.append(xt.cpu())
    return np.stack(probs), torch.stack(inputs)


def perturbation_figure(rp_method, image, classnames, scales=None, top: int = 3) -> go.Figure:
    """Static fallback: probability of the top classes (at λ = 1) as the frame is scaled from 0 to 2."""
    scales = np.linspace(0, 2, 11) if scales is None else np.asarray(scales, dtype=float)
    p, _ = perturbed_probs(rp_method, image, scales)
    p = p[:, 0]
    ref = p[int(np.argmin(np.abs(scales - 1.0)))]
    fig = go.Figure()
    for c in np.argsort(-ref)[:top]:
        fig.add_scatter(x=scales, y=p[:, c], mode="lines+markers", name=classnames[c])
    fig.add_vline(x=1.0, line=dict(dash="dash", color="grey"), annotation_text="trained δ")
    fig.update_layout(title="Reprogrammer's class probabilities as the learned frame δ is scaled by λ",
                      xaxis_title="λ (0 = no frame, 1 = trained frame)", yaxis_title="probability",
                      yaxis_range=[0, 1], height=380)
    return fig


def perturbation_explorer(rp_method, images, classnames, labels=None, top: int = 3, max_images: int = 32,
                          display_px: int = 160):
    """Scale δ (slider), switch its R/G/B channels, pick an image, and watch the top-``top`` prediction."""
    import ipywidgets as W
    _image_side(rp_method)
    if not isinstance(images, torch.Tensor):  # an ImageSet: evenly spaced images (subsets are sorted by class)
        pick_idx = np.unique(np.linspace(0, len(images) - 1, min(len(images), max_images)).round().astype(int))
        items = [images[int(j)] for j in pick_idx]
        images, labels = torch.stack([x for x, _ in items]), (labels if labels is not None else [y for _, y in items])
    images = images[:max_images]
    names = [f"#{j}" + (f" (true: {classnames[int(labels[j])]})" if labels is not None and int(labels[j]) >= 0
                        else "") for j in range(len(images))]
    scale = W.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.05, description="δ scale λ",
                          layout=W.Layout(width="420px"))
    scale.add_class("rl-perturbation-scale")
    chans = [W.Checkbox(value=True, description=c, indent=False, layout=W.Layout(width="60px")) for c in "RGB"]
    for cb in chans:
        cb.add_class("rl-perturbation-channel")
    pick = W.Dropdown(options=[(n, j) for j, n in enumerate(names)], value=0, description="image")
    pick.add_class("rl-perturbation-image")
    view, readout = W.Image(format="png", width=display_px, height=display_px), W.HTML()
    fig = go.FigureWidget(go.Bar(x=[0.0] * top, y=[""] * top, orientation="h", marker_color=ID_COLOUR))
    fig.update_layout(height=220, width=420, margin=dict(l=10, r=10, t=40, b=30), xaxis_range=[0, 1],
                      yaxis_autorange="reversed", title=f"top-{top} class probabilities")
    fig.add_class("rl-perturbation-figure")

    def update(change=None):
        on = [cb.value for cb in chans]
        p, xt = perturbed_probs(rp_method, images[pick.value], [scale.value], on)
        p = p[0, 0]
        best = np.argsort(-p)[:top]
        view.value = png_bytes(xt[0, 0])
        with fig.batch_update():
            fig.data[0].x = [float(p[c]) for c in best]
            fig.data[0].y = [classnames[c] for c in best]
        chan = "".join(c for c, b in zip("RGB", on) if b) or "none"
        readout.value = (f'<span class="rl-perturbation-metrics" data-scale="{scale.value:.4g}" '
                         f'data-pred="{html.escape(classnames[best[0]])}" data-prob="{p[best[0]]:.6f}">'
                         f'λ = {scale.value:.2f}, channels {chan}: predicts <b>{html.escape(classnames[best[0]])}'
                         f'</b> ({100 * p[best[0]]:.1f}%)</span>')

    for w in (scale, pick, *chans):
        w.observe(update, names="value")
    update()
    controls = W.VBox([pick, scale, W.HBox([W.Label("frame channels:"), *chans]), readout])
    box = W.VBox([controls, W.HBox([view, fig])])
    box.scale, box.channels, box.picker, box.image, box.readout, box.figure, box.update = \
        scale, chans, pick, view, readout, fig, update
    return box
