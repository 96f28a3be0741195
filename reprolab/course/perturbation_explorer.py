"""The perturbation explorer (notebook 07), with a static plotly fallback (for exported HTML / no kernel).

**Perturbation explorer** (notebook 07). The image reprogrammer (paper §3.1, :mod:`reprolab.reprogramming.image_reprogrammer`)
feeds the frozen encoder x̃ = clamp(pad(up(resize(x))) + δ, 0, 1) with δ = M ⊙ tanh(W). The explorer evaluates

    x̃(λ, c) = clamp(pad(up(resize(x))) + λ · (δ ⊙ c), 0, 1),     c ∈ {0,1}³ (R, G, B switches)

and shows the reprogrammer's class probabilities softmax(s · f_I(x̃) f_Tᵀ) — so λ = 0 removes the learned frame
(but keeps the reprogrammed text side) and λ = 1 is the trained model.

Without a widget front end (exported HTML, nbviewer) use :func:`perturbation_static_figure`: the encoder's input
and the top classes for a few images, with a plotly (kernel-free) slider over λ whose steps carry precomputed
images and probabilities; the R/G/B switches are live-only.

DOM markers for browser tests: ``rl-perturbation-scale``, ``rl-perturbation-figure`` and
``<span class="rl-perturbation-metrics" data-scale data-pred>``.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
import torch

from reprolab.course.threshold_explorer import ID_COLOUR, png_bytes
from reprolab.errors import ReprolabError

__all__ = ["perturbed_probs", "perturbation_figure", "perturbation_explorer", "perturbation_static_figure"]


# ----- perturbation -------------------------------------------------------------------------------------------------
def _image_side(rp_method):
    rp = getattr(rp_method, "rp", rp_method)  # a ResidualReprogrammer explores its inner reprogrammer
    if getattr(rp, "image_rp", None) is None or getattr(rp, "mode", "image") == "text":
        raise ReprolabError(
            "the perturbation explorer needs a Reprogrammer with an image side (mode 'image' or "
            "'both'); train one first"
        )
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
    fig.update_layout(
        title="Reprogrammer's class probabilities as the learned frame δ is scaled by λ",
        xaxis_title="λ (0 = no frame, 1 = trained frame)",
        yaxis_title="probability",
        yaxis_range=[0, 1],
        height=380,
    )
    return fig


def perturbation_explorer(
    rp_method, images, classnames, labels=None, top: int = 3, max_images: int = 32, display_px: int = 160
):
    """Scale δ (slider), switch its R/G/B channels, pick an image, and watch the top-``top`` prediction."""
    import ipywidgets as W

    _image_side(rp_method)
    if not isinstance(images, torch.Tensor):  # an ImageSet: evenly spaced images (subsets are sorted by class)
        pick_idx = np.unique(np.linspace(0, len(images) - 1, min(len(images), max_images)).round().astype(int))
        items = [images[int(j)] for j in pick_idx]
        images, labels = torch.stack([x for x, _ in items]), (labels if labels is not None else [y for _, y in items])
    images = images[:max_images]
    names = [
        f"#{j}" + (f" (true: {classnames[int(labels[j])]})" if labels is not None and int(labels[j]) >= 0 else "")
        for j in range(len(images))
    ]
    scale = W.FloatSlider(
        value=1.0, min=0.0, max=2.0, step=0.05, description="δ scale λ", layout=W.Layout(width="420px")
    )
    scale.add_class("rl-perturbation-scale")
    chans = [W.Checkbox(value=True, description=c, indent=False, layout=W.Layout(width="60px")) for c in "RGB"]
    for cb in chans:
        cb.add_class("rl-perturbation-channel")
    pick = W.Dropdown(options=[(n, j) for j, n in enumerate(names)], value=0, description="image")
    pick.add_class("rl-perturbation-image")
    view, readout = W.Image(format="png", width=display_px, height=display_px), W.HTML()
    fig = go.FigureWidget(go.Bar(x=[0.0] * top, y=[""] * top, orientation="h", marker_color=ID_COLOUR))
    fig.update_layout(
        height=220,
        width=420,
        margin=dict(l=10, r=10, t=40, b=30),
        xaxis_range=[0, 1],
        yaxis_autorange="reversed",
        title=f"top-{top} class probabilities",
    )
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
        readout.value = (
            f'<span class="rl-perturbation-metrics" data-scale="{scale.value:.4g}" '
            f'data-pred="{html.escape(classnames[best[0]])}" data-prob="{p[best[0]]:.6f}">'
            f"λ = {scale.value:.2f}, channels {chan}: predicts <b>{html.escape(classnames[best[0]])}"
            f"</b> ({100 * p[best[0]]:.1f}%)</span>"
        )

    for w in (scale, pick, *chans):
        w.observe(update, names="value")
    update()
    controls = W.VBox([pick, scale, W.HBox([W.Label("frame channels:"), *chans]), readout])
    box = W.VBox([controls, W.HBox([view, fig])])
    box.scale, box.channels, box.picker, box.image, box.readout, box.figure, box.update = (
        scale,
        chans,
        pick,
        view,
        readout,
        fig,
        update,
    )
    return box


def _pick(images, labels, n: int):
    """(images [n,3,H,W], labels or None): evenly spaced items of an ImageSet, or the first ``n`` of a tensor."""
    if isinstance(images, torch.Tensor):
        x = images[None] if images.ndim == 3 else images
        return x[:n], (None if labels is None else list(labels)[:n])
    idx = np.unique(np.linspace(0, len(images) - 1, min(len(images), n)).round().astype(int))
    items = [images[int(j)] for j in idx]
    return torch.stack([x for x, _ in items]), (labels if labels is not None else [y for _, y in items])


def perturbation_static_figure(
    rp_method, images, classnames, labels=None, scales=None, top: int = 3, n_images: int = 4
):
    """The explorer's static fallback: for ``n_images`` images, the encoder's input x̃(λ) and the top-``top``
    probabilities, with a plotly slider over λ (each step restyles every image and bar) — no kernel needed."""
    import base64

    from plotly.subplots import make_subplots

    scales = np.round(np.linspace(0, 2, 9), 4) if scales is None else np.asarray(scales, dtype=float)
    x, labels = _pick(images, labels, n_images)
    p, xt = perturbed_probs(rp_method, x, scales)  # [S, N, C], [S, N, 3, H, W]
    uri = lambda t: "data:image/png;base64," + base64.b64encode(png_bytes(t)).decode()
    titles = []
    for j in range(len(x)):
        true = f" (true: {classnames[int(labels[j])]})" if labels is not None and int(labels[j]) >= 0 else ""
        titles += [f"image #{j}{true}", f"top-{top} classes"]
    fig = make_subplots(rows=len(x), cols=2, subplot_titles=titles, horizontal_spacing=0.2)
    start = int(np.argmin(np.abs(scales - 1.0)))
    image_idx, bar_idx = [], []

    def bars(s, j):
        best = np.argsort(-p[s, j])[:top]
        return [float(p[s, j, c]) for c in best], [classnames[c] for c in best]

    for j in range(len(x)):
        fig.add_trace(go.Image(source=uri(xt[start, j]), hoverinfo="skip"), row=j + 1, col=1)
        image_idx.append(len(fig.data) - 1)
        bx, by = bars(start, j)
        fig.add_trace(go.Bar(x=bx, y=by, orientation="h", marker_color=ID_COLOUR, showlegend=False), row=j + 1, col=2)
        bar_idx.append(len(fig.data) - 1)
        fig.update_xaxes(range=[0, 1], row=j + 1, col=2)
        fig.update_yaxes(autorange="reversed", row=j + 1, col=2)
        fig.update_xaxes(visible=False, row=j + 1, col=1)
        fig.update_yaxes(visible=False, row=j + 1, col=1)
    steps = []
    for s, lam in enumerate(scales):
        b = [bars(s, j) for j in range(len(x))]
        upd = {"source": [uri(xt[s, j]) for j in range(len(x))] + [None] * len(x)}
        upd["x"] = [None] * len(x) + [bx for bx, _ in b]
        upd["y"] = [None] * len(x) + [by for _, by in b]
        steps.append(dict(method="restyle", label=f"{lam:.2f}", args=[upd, image_idx + bar_idx]))
    fig.update_layout(
        title="The learned frame δ scaled by λ (0 = no frame, 1 = trained): the encoder's input and its prediction",
        sliders=[dict(active=start, steps=steps, currentvalue=dict(prefix="δ scale λ = "), y=0, yanchor="top")],
        height=230 * len(x) + 120,
        margin=dict(b=110),
    )
    return fig
