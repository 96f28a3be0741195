"""Notebook 08's figures: which ImageNet class each target class is mapped to, and how ILM's map moves.

There are no ImageNet images offline, so an ImageNet class is shown by its name and, where there is one, by the
target-task image the frozen network assigns to that class most confidently (:func:`most_confident_examples`).
"""

from __future__ import annotations

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from reprolab.course.plots import to_uint8


def most_confident_examples(source_logits, images, source_ids) -> list:
    """For each source class k in ``source_ids``: the image (3×H×W) with the highest softmax probability of k."""
    p = torch.softmax(torch.as_tensor(source_logits).float(), dim=1)
    return [images[int(p[:, k].argmax())] for k in source_ids]


def mapping_figure(classnames, class_examples, columns: dict, title: str = "label maps", tile_px: int = 92):
    """Rows: target classes (with an example image); one column per map: ``{name: [(imagenet name, image|None)]}``."""
    names = list(columns)
    cols = 1 + len(names)
    titles = []
    for i, c in enumerate(classnames):
        titles.append(f"<b>{c}</b>")
        titles += [columns[n][i][0][:22] for n in names]
    fig = make_subplots(
        rows=len(classnames), cols=cols, subplot_titles=titles, horizontal_spacing=0.01, vertical_spacing=0.03
    )
    for i, img in enumerate(class_examples):
        fig.add_trace(go.Image(z=to_uint8(img[None])[0], hoverinfo="skip"), row=i + 1, col=1)
        for j, n in enumerate(names):
            name, ex = columns[n][i]
            if ex is not None:
                hover = f"{classnames[i]} ↦ {name}<extra>{n}</extra>"
                fig.add_trace(go.Image(z=to_uint8(ex[None])[0], hovertemplate=hover), row=i + 1, col=j + 2)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_annotations(font_size=10)
    for j, n in enumerate(["target class"] + names):
        fig.add_annotation(
            text=f"<b>{n}</b>", x=(j + 0.5) / cols, y=1.0, yshift=38, xref="paper", yref="paper", showarrow=False
        )
    fig.update_layout(
        title=title, height=len(classnames) * (tile_px + 24) + 110, width=cols * (tile_px + 40) + 60,
        margin=dict(l=10, r=10, t=110, b=10),
    )  # fmt: skip
    return fig


def ilm_history_figure(classnames, history_names: list[list[str]], epochs: list, title: str = "ILM's map by epoch"):
    """Target class × epoch; the cell says the ImageNet class mapped to, dark when it changed since the last epoch."""
    changed = [
        [float(e > 0 and history_names[e][c] != history_names[e - 1][c]) for e in range(len(history_names))]
        for c in range(len(classnames))
    ]
    text = [[history_names[e][c][:18] for e in range(len(history_names))] for c in range(len(classnames))]
    fig = go.Figure(
        go.Heatmap(
            z=changed, x=[f"epoch {e}" for e in epochs], y=list(classnames), text=text, texttemplate="%{text}",
            colorscale=[[0, "#eef3fb"], [1, "#f4a261"]], zmin=0, zmax=1, showscale=False,
            hovertemplate="%{y} ↦ %{text} (%{x})<extra></extra>",
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title + " (orange: re-mapped at this epoch)", height=90 + 34 * len(classnames))
    return fig
