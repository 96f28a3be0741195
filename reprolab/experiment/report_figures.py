"""The report's plotly figures: ID accuracy vs OOD detection, the α curves, per-set bars, score histograms, the frame.

Each builder returns a figure, or None when the run has nothing to show for it (no α method, no score files, no
reprogrammer checkpoint). The α curves keep each method's own α: RRP's is the weight on the ZERO-SHOT features,
WiSE-FT's the weight on the FINE-TUNED weights (opposite directions; the legend says which).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reprolab.experiment.comparison import read_selection


def fig_tradeoff(table: pd.DataFrame, d: pd.DataFrame):
    import plotly.graph_objects as go

    meta = d.drop_duplicates("label").set_index("label")
    fig = go.Figure()
    for method, g in table.assign(method=[meta.loc[i, "method"] for i in table.index]).groupby("method", sort=False):
        alpha = len(g) > 1
        fig.add_trace(
            go.Scatter(
                x=g["ID acc mean"],
                y=g["AUROC mean"],
                name=method,
                text=list(g.index),
                mode="lines+markers" if alpha else "markers",
                marker=dict(size=9 if alpha else 14),
                hovertemplate="%{text}<br>ID acc %{x:.1f}<br>AUROC %{y:.1f}<extra></extra>",
            )
        )
    fig.update_layout(
        title="ID accuracy vs OOD detection (up and right is better)",
        xaxis_title="ID accuracy (%)",
        yaxis_title="mean OOD AUROC (%)",
    )
    return fig


def fig_alpha(table: pd.DataFrame, d: pd.DataFrame):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    meta = d.drop_duplicates("label").set_index("label")
    rows = table[[meta.loc[i, "alpha"] is not None and not pd.isna(meta.loc[i, "alpha"]) for i in table.index]]
    if rows.empty:
        return None
    metrics = ["ID acc", "shift acc", "AUROC"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=metrics, shared_xaxes=True)
    colors = {}
    for method in dict.fromkeys(meta.loc[rows.index, "method"]):
        g = rows[[meta.loc[i, "method"] == method for i in rows.index]]
        x = [float(meta.loc[i, "alpha"]) for i in g.index]
        order = np.argsort(x)
        meaning = meta.loc[g.index[0], "alpha_meaning"]
        colors.setdefault(method, ["#d62728", "#1f77b4", "#2ca02c"][len(colors) % 3])
        for k, m in enumerate(metrics):
            fig.add_trace(
                go.Scatter(
                    x=np.array(x)[order],
                    y=g[f"{m} mean"].to_numpy()[order],
                    mode="lines+markers",
                    name=f"{method}: α = {meaning}",
                    legendgroup=method,
                    showlegend=k == 0,
                    line=dict(color=colors[method]),
                ),
                row=1,
                col=k + 1,
            )
    fig.update_xaxes(title_text="α (see legend: what it weights)", range=[-0.05, 1.05])
    fig.update_yaxes(title_text="%", col=1)
    fig.update_layout(
        title="α sweeps — RRP: α = weight on zero-shot features; WiSE-FT: α = weight on fine-tuned weights",
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def fig_sets(d: pd.DataFrame):
    import plotly.express as px
    from plotly.subplots import make_subplots

    plain = d[d["alpha"].isna()]
    acc = plain[plain.kind.isin(["id", "shift"])].groupby(["method", "eval_set"], sort=False)["acc"].mean()
    auroc = plain[plain.kind == "ood"].groupby(["method", "eval_set"], sort=False)["auroc"].mean()
    fig = make_subplots(rows=1, cols=2, subplot_titles=["accuracy: ID and covariate-shift sets", "AUROC: OOD sets"])
    for col, s in ((1, acc), (2, auroc)):
        if s.empty:
            continue
        sub = px.bar((s * 100).reset_index(name="value"), x="eval_set", y="value", color="method", barmode="group")
        for tr in sub.data:
            tr.showlegend = col == 1
            fig.add_trace(tr, row=1, col=col)
    fig.update_layout(barmode="group", title="Per evaluation set (mean over seeds, %)")
    return fig


def fig_scores(out: Path):
    """Histograms of ID vs OOD scores from the first seed's ``scores/<method>-s<seed>.npz``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    files = sorted((out / "scores").glob("*.npz"))
    files = [f for f in files if f.stem.endswith(f"-s{min(int(p.stem.rsplit('-s', 1)[1]) for p in files)}")]
    if not files:
        return None
    fig = make_subplots(rows=1, cols=len(files), subplot_titles=[f.stem for f in files])
    for c, f in enumerate(files, start=1):
        z = np.load(f)
        kinds = dict(line.split("\t") for line in z["__kinds__"])
        for name, kind in kinds.items():
            if kind == "shift":
                continue
            fig.add_trace(
                go.Histogram(
                    x=z[f"set:{name}"],
                    name=name,
                    histnorm="probability",
                    opacity=0.55,
                    nbinsx=40,
                    legendgroup=name,
                    showlegend=c == 1,
                ),
                row=1,
                col=c,
            )
    fig.update_layout(
        barmode="overlay",
        title="OOD score distributions (ID test set vs each OOD set; higher = more in-distribution)",
        height=380,
    )
    return fig


def fig_delta(out: Path):
    """The learned frame δ = M ⊙ tanh(W) of the first reprogrammer checkpoint (the chosen one of a sweep)."""
    import plotly.express as px
    import torch

    from reprolab.checkpoint import load_checkpoint
    from reprolab.reprogramming.image_reprogrammer import centre_mask

    tag = ((read_selection(out) or {}).get("methods", {}).get("reprogrammer") or {}).get("checkpoint_tag")
    first = lambda d: (bool(tag) and not d.name.endswith(tag), d.name)  # noqa: E731  (a sweep's choice first)
    for d in sorted((out / "checkpoints").glob("reprogrammer-s*"), key=first):
        if d.suffix or not (d / "checkpoint.json").exists():
            continue
        tensors, meta = load_checkpoint(d)
        W = tensors.get("model.image.W")
        if W is None:
            return None
        cfg = meta.get("method", {})
        delta = centre_mask(W.shape[-1], int(cfg.get("mr_res", W.shape[-1]))) * torch.tanh(W.float())
        img = ((delta.numpy().transpose(1, 2, 0) + 1) / 2 * 255).round().astype(np.uint8)
        fig = px.imshow(img, title=f"learned frame δ = M ⊙ tanh(W) ({d.name}); grey = 0, the centre is the image")
        fig.update_layout(height=420, width=460)
        return fig
    return None
