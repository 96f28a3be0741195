"""Plotly figure builders shared by the notebooks (images, the reprogramming frame, curves, heatmaps, α curves).

The builders return a ``plotly.graph_objects.Figure`` from plain tensors / arrays / DataFrames, so the notebooks
stay thin drivers of the library; :class:`AccuracyTracker` records test accuracy during ``fit``. Images are ``[3,H,W]`` or ``[N,3,H,W]`` tensors (or HWC arrays) in
``[0,1]``; signed tensors such as tanh(W) or δ ∈ [−1, 1] are shown with :func:`signed_to_unit` (0 → mid-grey).

The α curves (RRP and WiSE-FT on one axis) are in :mod:`reprolab.course.alpha_plots`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from reprolab.evaluation.metrics import accuracy


# ----- images ---------------------------------------------------------------------------------------------------
def signed_to_unit(t):
    """Map a signed tensor in [−1, 1] (tanh W, δ) to [0, 1] for display: 0 → grey 0.5."""
    return (torch.as_tensor(t).detach().float().cpu() + 1) / 2


def to_uint8(images) -> np.ndarray:
    """[N,3,H,W] / [3,H,W] tensor (or HWC array) in [0,1] → uint8 array [N,H,W,3]."""
    a = images.detach().float().cpu().numpy() if torch.is_tensor(images) else np.asarray(images, dtype=np.float32)
    if a.ndim == 3:
        a = a[None]
    if a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(0, 2, 3, 1)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def image_grid(images, titles=None, ncols: int = 8, title: str | None = None, tile_px: int = 110) -> go.Figure:
    """Images of one size in a grid (``px.imshow`` facets), each with an optional caption."""
    a = to_uint8(images)
    n = len(a)
    ncols = max(1, min(ncols, n))
    fig = px.imshow(
        a,
        facet_col=0,
        facet_col_wrap=ncols,
        facet_row_spacing=0.06 if n > ncols else 0.0,
        facet_col_spacing=0.01,
        binary_string=True,
    )
    labels = list(titles) if titles is not None else [""] * n
    for ann in fig.layout.annotations:  # facet captions are "facet_col=K"
        k = int(ann.text.split("=")[-1])
        ann.text = labels[k] if k < len(labels) else ""
        ann.font.size = 10
    rows = math.ceil(n / ncols)
    fig.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
    fig.update_layout(
        title=title,
        height=rows * tile_px + 70,
        width=ncols * tile_px + 40,
        margin=dict(l=10, r=10, t=60 if title else 30, b=10),
    )
    return fig


def image_panels(images: dict, title: str | None = None, height: int = 260) -> go.Figure:
    """Images of *different* sizes side by side (one subplot each, pixel-true), e.g. the stages of the frame."""
    names = list(images)  # dict keys are the subplot titles (so they are unique)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.02)
    for i, name in enumerate(names):
        a = to_uint8(images[name])[0]
        fig.add_trace(
            go.Image(z=a, hovertemplate=f"{name}<br>x=%{{x}} y=%{{y}}<br>rgb=%{{z}}<extra></extra>"), row=1, col=i + 1
        )
        fig.update_xaxes(showticklabels=False, row=1, col=i + 1)
        fig.update_yaxes(showticklabels=False, row=1, col=i + 1)
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=70 if title else 40, b=10))
    return fig


def frame_figure(W, delta, reprogrammed, titles=None, title: str | None = None) -> go.Figure:
    """tanh(W), δ = M ⊙ tanh(W) and a few reprogrammed images x̃ side by side (signed maps shown with grey = 0)."""
    panels = {
        "tanh(W)": signed_to_unit(torch.tanh(torch.as_tensor(W).detach())),
        "δ = M ⊙ tanh(W)": signed_to_unit(delta),
    }
    xs = torch.as_tensor(reprogrammed).detach()
    for i, x in enumerate(xs):
        name = titles[i] if titles else "x̃"
        panels[name if name not in panels else f"{name} #{i}"] = x
    return image_panels(panels, title=title)


# ----- training ---------------------------------------------------------------------------------------------------
class AccuracyTracker:
    """A ``fit(callback=...)`` callback: test accuracy every ``every`` steps (eval mode, no gradients).

    The test images are loaded once. ``tracker.accuracy(method)`` measures without recording;
    ``tracker.evaluate(method, step)`` also records (e.g. step 0 before training); ``tracker.frame()`` is a
    DataFrame (step, test_acc).
    A method measured before is not measured again: the accuracy is remembered under what fixes it — the method's
    config (encoder, template, geometry, rates), class names, α's and the hash of its trained tensors, as the
    feature cache keys outputs — so an exercise's checker that re-derives a student's answer costs nothing (with
    CLIP ViT-B/32 on a 2-core CPU each pass over 200 images is ≈ 13 s).
    """

    def __init__(self, test_set, every: int = 10, batch_size: int = 128):
        from reprolab.evaluation.features import batches

        self.every, self.records, self._known = every, [], {}
        pairs = list(batches(test_set, batch_size))
        self.images, self.labels = torch.cat([x for x, _ in pairs]), torch.cat([y for _, y in pairs])

    def accuracy(self, method) -> float:
        from reprolab.evaluation.features import key_hash, state_hash

        key = key_hash(
            dict(
                config=method.config(),
                classnames=list(getattr(method, "classnames", [])),
                alpha=[getattr(method, a, None) for a in ("alpha_zeroshot", "alpha_finetuned")],
                state=state_hash(method.trainable_state()),
            )
        )
        if key not in self._known:
            self._known[key] = self.measure(method)
        return self._known[key]

    @torch.no_grad()
    def measure(self, method) -> float:
        """Test accuracy of ``method`` on the tracked images, always computed (``accuracy`` remembers it)."""
        was = method.training
        method.eval()
        dev = method.encoder.device
        logits = torch.cat(
            [method.logits(self.images[i : i + 128].to(dev)).cpu() for i in range(0, len(self.images), 128)]
        )
        method.train(was)
        return accuracy(logits, self.labels)

    def evaluate(self, method, step: int) -> float:
        acc = self.accuracy(method)
        self.records.append({"step": step, "test_acc": acc})
        return acc

    def __call__(self, step, method, record) -> None:
        if step % self.every == 0:
            self.evaluate(method, step)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.records)


def training_curve(history, tracker: AccuracyTracker | None = None, title: str = "training") -> go.Figure:
    """Loss (right axis), in-batch train accuracy and — if tracked — test accuracy (left axis) over steps."""
    h = history.as_frame() if hasattr(history, "as_frame") else pd.DataFrame(history)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if "acc" in h and h["acc"].notna().any():
        smooth = h["acc"].rolling(5, min_periods=1).mean()
        fig.add_trace(
            go.Scatter(x=h["step"], y=smooth, name="train acc (in-batch, 5-step mean)", line=dict(color="#aec7e8")),
            secondary_y=False,
        )
    if tracker is not None and tracker.records:
        t = tracker.frame()
        fig.add_trace(
            go.Scatter(
                x=t["step"], y=t["test_acc"], name="test acc", mode="lines+markers", line=dict(color="#1f77b4", width=3)
            ),
            secondary_y=False,
        )
    fig.add_trace(
        go.Scatter(x=h["step"], y=h["loss"], name="loss", line=dict(color="#d62728", dash="dot")), secondary_y=True
    )
    fig.update_yaxes(title_text="accuracy", range=[0, 1], secondary_y=False)
    fig.update_yaxes(title_text="loss", secondary_y=True)
    fig.update_layout(title=title, xaxis_title="step", height=380, legend=dict(orientation="h", y=-0.25))
    return fig


# ----- classification -------------------------------------------------------------------------------------------
def confusion_figure(labels, preds, classnames, title: str = "confusion matrix") -> go.Figure:
    """Row-normalised confusion matrix (rows: true class, columns: predicted), counts in the hover."""
    y, p = np.asarray(labels).ravel(), np.asarray(preds).ravel()
    C = len(classnames)
    counts = np.zeros((C, C), dtype=int)
    np.add.at(counts, (y, p), 1)
    frac = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig = px.imshow(
        frac,
        x=list(classnames),
        y=list(classnames),
        text_auto=".2f",
        zmin=0,
        zmax=1,
        color_continuous_scale="Blues",
        labels=dict(x="predicted", y="true", color="fraction"),
    )
    fig.update_traces(
        customdata=counts, hovertemplate="true %{y} → predicted %{x}: %{customdata} images<extra></extra>"
    )
    fig.update_layout(title=title, height=520, width=620)
    return fig


def similarity_figure(probs, classnames, row_labels, title: str = "softmax over class prompts") -> go.Figure:
    """Heatmap of per-image class probabilities (rows: images, columns: class prompts)."""
    p = probs.detach().cpu().numpy() if torch.is_tensor(probs) else np.asarray(probs)
    fig = px.imshow(
        p,
        x=list(classnames),
        y=list(row_labels),
        text_auto=".2f",
        zmin=0,
        zmax=1,
        color_continuous_scale="Viridis",
        labels=dict(x="class prompt", y="image", color="p"),
    )
    fig.update_layout(title=title, height=60 + 38 * len(p), width=760)
    return fig


def bar_figure(labels, values, title: str, value_title: str, horizontal: bool = True) -> go.Figure:
    """A sorted bar chart (largest on top), e.g. the tokens whose embeddings moved most."""
    df = pd.DataFrame({"label": [str(s) for s in labels], "value": np.asarray(values, dtype=float)})
    df = df.sort_values("value", ascending=horizontal)
    if horizontal:
        fig = px.bar(df, x="value", y="label", orientation="h", labels=dict(value=value_title, label=""))
        fig.update_layout(height=120 + 22 * len(df))
    else:
        fig = px.bar(df, x="label", y="value", labels=dict(value=value_title, label=""))
    return fig.update_layout(title=title)


def score_histograms(scores: dict, title: str = "MCM scores", xaxis: str = "MCM score (higher = more ID)"):
    """Overlaid histograms of per-image OOD scores, one per set (ID vs OOD)."""
    fig = go.Figure()
    for name, s in scores.items():
        fig.add_trace(go.Histogram(x=np.asarray(s), name=name, opacity=0.55, nbinsx=40, histnorm="probability"))
    return fig.update_layout(barmode="overlay", title=title, xaxis_title=xaxis, yaxis_title="fraction", height=360)
