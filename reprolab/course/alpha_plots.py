"""The α curves: the Residual Reprogrammer and WiSE-FT on one axis (notebooks 03, 04 and the α slider).

The α figure puts the Residual Reprogrammer (RRP, paper §3.4) and WiSE-FT on one x-axis, *the weight on the
zero-shot end*: RRP's ``alpha_zeroshot`` as it is, WiSE-FT's ``alpha_finetuned`` as ``1 − alpha_finetuned``
(WiSE-FT's α weights the *fine-tuned* weights; see :mod:`reprolab.reprogramming.residual` and :mod:`reprolab.methods.wise_ft`).
x = 1 is the zero-shot model for both, x = 0 is the plain reprogrammer resp. the fine-tuned model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

METRICS = {"id_acc": "ID accuracy", "shift_acc": "shift accuracy", "auroc": "AUROC", "fpr95": "FPR95"}
COLOURS = {"id_acc": "#1f77b4", "shift_acc": "#ff7f0e", "auroc": "#2ca02c", "fpr95": "#d62728"}
PANEL = {"id_acc": 1, "shift_acc": 1, "auroc": 2, "fpr95": 2}


def curve_from_sweep(rows: list[dict]) -> pd.DataFrame:
    """``alpha_sweeps.rrp_sweep`` / ``wise_ft_sweep`` rows → one row per α with id_acc, shift_acc, fpr95, auroc."""
    from reprolab.evaluation.evaluate import summary

    by_alpha: dict = {}
    for r in rows:
        by_alpha.setdefault(r["alpha"], []).append(r)
    return pd.DataFrame([dict(alpha=a, **summary(rs)) for a, rs in sorted(by_alpha.items())])


def alpha_curve_figure(
    curve: pd.DataFrame,
    wise_curve: pd.DataFrame | None = None,
    alpha: float | None = None,
    marker_metrics: dict | None = None,
    title: str = "Residual Reprogrammer: one α, four metrics",
):
    """Two panels (accuracy | OOD detection) over the zero-shot weight; RRP solid, WiSE-FT dashed (x = 1 − α_ft).

    With ``alpha`` given, four marker traces (``meta="marker:<metric>"``) show the RRP metrics at that α; the
    slider widget moves exactly these traces. ``marker_metrics``: the values at ``alpha`` (else interpolated).
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("accuracy (higher is better)", "OOD detection: AUROC ↑, FPR95 ↓"),
        horizontal_spacing=0.08,
    )
    for key, label in METRICS.items():
        if key not in curve or curve[key].isna().all():
            continue
        fig.add_trace(
            go.Scatter(
                x=curve["alpha"],
                y=curve[key],
                name=f"RRP {label}",
                mode="lines",
                line=dict(color=COLOURS[key], width=2.5),
                legendgroup=key,
                hovertemplate=f"RRP α_zeroshot=%{{x:.2f}}<br>{label} %{{y:.3f}}<extra></extra>",
            ),
            row=1,
            col=PANEL[key],
        )
    if wise_curve is not None:
        for key, label in METRICS.items():
            if key not in wise_curve or wise_curve[key].isna().all():
                continue
            fig.add_trace(
                go.Scatter(
                    x=1 - wise_curve["alpha"],
                    y=wise_curve[key],
                    name=f"WiSE-FT {label}",
                    mode="lines+markers",
                    line=dict(color=COLOURS[key], dash="dash", width=1.5),
                    marker=dict(symbol="square", size=6),
                    legendgroup=key,
                    customdata=wise_curve["alpha"],
                    hovertemplate=f"WiSE-FT α_finetuned=%{{customdata:.2f}}<br>{label} %{{y:.3f}}<extra></extra>",
                ),
                row=1,
                col=PANEL[key],
            )
    if alpha is not None:
        m = marker_metrics or {k: float(np.interp(alpha, curve["alpha"], curve[k])) for k in METRICS if k in curve}
        for key, label in METRICS.items():
            if key not in curve or curve[key].isna().all():
                continue
            fig.add_trace(
                go.Scatter(
                    x=[alpha],
                    y=[m[key]],
                    mode="markers",
                    meta=f"marker:{key}",
                    showlegend=False,
                    marker=dict(size=14, color=COLOURS[key], line=dict(width=2, color="black")),
                    hovertemplate=f"now: α_zeroshot=%{{x:.2f}}<br>{label} %{{y:.3f}}<extra></extra>",
                ),
                row=1,
                col=PANEL[key],
            )
    fig.update_xaxes(range=[-0.02, 1.02], title_text="weight on the zero-shot end (1 = zero-shot)")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(
        title=dict(text=title, x=0.01),
        height=450,
        legend=dict(orientation="h", y=-0.2),
        margin=dict(l=50, r=20, t=70, b=40),
    )
    return fig


def marker_indices(fig) -> dict[str, int]:
    """``{metric: trace index}`` of the α-marker traces in a figure from :func:`alpha_curve_figure`."""
    return {
        tr.meta.split(":", 1)[1]: i
        for i, tr in enumerate(fig.data)
        if isinstance(tr.meta, str) and tr.meta.startswith("marker:")
    }
