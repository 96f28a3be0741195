"""The OOD threshold explorer (notebook 06), with a static plotly fallback (for exported HTML / no kernel).

**OOD threshold explorer** (notebook 06). A detector keeps an image as in-distribution when its score is at least
a threshold t (metric convention of :mod:`reprolab.evaluation.metrics`: ID is the positive class, higher = more ID):

    TPR(t) = #{ID scores ≥ t} / #ID          (ID images kept)
    FPR(t) = #{OOD scores ≥ t} / #OOD        (OOD images wrongly kept; the readout shows the mean over OOD sets)

FPR95 is FPR(t95) at t95 = the largest t with TPR ≥ 0.95, which is where the slider starts. The score is usually
MCM (Ming et al., 2022), the one the paper uses (Geng & Chen, arXiv 2403.10800, Sec. 5).

DOM markers for browser tests: ``rl-threshold-slider``, ``rl-threshold-figure`` and ``<span
class="rl-threshold-metrics" data-threshold data-tpr data-fpr>``.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import plotly.graph_objects as go

from reprolab.errors import ReprolabError
from reprolab.evaluation.metrics import to_numpy

__all__ = ["threshold_at_tpr", "threshold_metrics", "threshold_figure", "threshold_explorer", "roc_figure", "png_bytes"]

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
    return (
        f'<img src="data:image/png;base64,{data}" width="{size}" height="{size}" title="{html.escape(title)}" '
        'style="margin:1px;image-rendering:pixelated">'
    )


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
    return {
        "threshold": t,
        "tpr": float(np.mean(i >= t)),
        "fpr": float(np.mean(list(fpr_sets.values()))),
        "fpr_sets": fpr_sets,
        "rejected": rejected,
    }


def threshold_figure(
    id_scores, ood_scores: dict, threshold: float | None = None, score_name: str = "MCM score", widget: bool = False
):
    """Overlaid score histograms (ID and each OOD set) with the threshold as a dashed line (static fallback)."""
    i, o = _score_sets(id_scores, ood_scores)
    t = threshold_at_tpr(i) if threshold is None else float(threshold)
    fig = (go.FigureWidget if widget else go.Figure)()
    lo, hi = min(i.min(), *(v.min() for v in o.values())), max(i.max(), *(v.max() for v in o.values()))
    bins = dict(start=lo, end=hi + 1e-9, size=max((hi - lo) / 40, 1e-9))
    fig.add_histogram(x=i, name="ID", marker_color=ID_COLOUR, opacity=0.6, histnorm="probability", xbins=bins)
    for k, (name, v) in enumerate(o.items()):
        fig.add_histogram(
            x=v,
            name=f"OOD: {name}",
            marker_color=OOD_COLOURS[k % len(OOD_COLOURS)],
            opacity=0.5,
            histnorm="probability",
            xbins=bins,
        )
    m = threshold_metrics(i, o, t)
    fig.add_shape(type="line", x0=t, x1=t, y0=0, y1=1, yref="paper", line=dict(color="black", dash="dash"))
    fig.update_layout(
        barmode="overlay",
        height=380,
        xaxis_title=f"{score_name} (higher = more in-distribution)",
        yaxis_title="fraction of the set",
        title=_threshold_title(m),
        legend=dict(x=0.01, y=0.99),
    )
    return fig


def _threshold_title(m: dict) -> str:
    return (
        f"threshold {m['threshold']:.4g}: TPR {100 * m['tpr']:.1f}% (ID kept), FPR {100 * m['fpr']:.1f}% "
        "(OOD kept, mean over sets)"
    )


def roc_figure(id_scores, ood_scores: dict, title: str = "ROC curves (ID = positive class)") -> go.Figure:
    """ROC curve per OOD set from :func:`sklearn.metrics.roc_curve`, with its AUROC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    i, o = _score_sets(id_scores, ood_scores)
    fig = go.Figure()
    for k, (name, v) in enumerate(o.items()):
        y, s = np.r_[np.ones(len(i)), np.zeros(len(v))], np.r_[i, v]
        fpr, tpr, _ = roc_curve(y, s)
        fig.add_scatter(
            x=fpr,
            y=tpr,
            mode="lines",
            name=f"{name} (AUROC {100 * roc_auc_score(y, s):.1f})",
            line=dict(color=OOD_COLOURS[k % len(OOD_COLOURS)]),
        )
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="grey", dash="dot"), name="chance")
    fig.add_hline(y=0.95, line=dict(color="black", dash="dash", width=1), annotation_text="TPR 95%")
    fig.update_layout(title=title, xaxis_title="FPR (OOD kept)", yaxis_title="TPR (ID kept)", height=420)
    return fig


def threshold_explorer(
    id_scores, ood_scores: dict, images: dict | None = None, n_show: int = 12, score_name: str = "MCM score"
):
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
    slider = W.FloatSlider(
        value=threshold_at_tpr(i),
        min=lo,
        max=hi,
        step=max((hi - lo) / 500, 1e-6),
        description="threshold",
        readout_format=".4f",
        continuous_update=True,
        layout=W.Layout(width="600px"),
    )
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
        readout.value = (
            f'<span class="rl-threshold-metrics" data-threshold="{m["threshold"]:.6g}" '
            f'data-tpr="{m["tpr"]:.6f}" data-fpr="{m["fpr"]:.6f}"><b>TPR {100 * m["tpr"]:.1f}%</b> '
            f"(ID kept) · <b>FPR {100 * m['fpr']:.1f}%</b> (OOD kept, mean) — per set: {html.escape(per)}"
            "</span>"
        )
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
