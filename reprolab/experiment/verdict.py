"""One line per (encoder, ID task) that says what a run shows and how it relates to the paper's claims.

The paper (Geng & Chen, arXiv 2403.10800, §5) claims, with CLIP, that the reprogrammer (RP) improves on zero-shot
ID accuracy and that RP / the Residual Reprogrammer (RRP) keep OOD detection better than fine-tuning (FT). This
module reads the run's own table (:func:`reprolab.experiment.paper_table.paper_table`) and states, in words,
whether *this run* agrees — each comparison with the measured numbers, nothing from the paper's tables.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from reprolab.errors import ReprolabError
from reprolab.experiment.paper_table import paper_table


def _get(table: pd.DataFrame, label: str, metric: str) -> float:
    return float(table.loc[label, f"{metric} mean"]) if label in table.index else float("nan")


def verdict(df: pd.DataFrame) -> str:
    """The sentence for one encoder and ID task (``df``: test rows of one run)."""
    t = paper_table(df, digits=1)
    zs, rp, ft = (_get(t, m, "ID acc") for m in ("zeroshot", "reprogrammer", "finetune"))
    parts = []
    if np.isfinite(zs) and np.isfinite(rp):
        side = "above" if rp > zs else "below" if rp < zs else "level with"
        agree = "as the paper reports with CLIP" if rp > zs else "unlike the paper's CLIP results"
        parts.append(f"the reprogrammer ends {side} zero-shot on ID accuracy ({rp:.1f} vs {zs:.1f}), {agree}")
    rrp = [i for i in t.index if i.startswith("residual_reprogrammer (α=") and not i.endswith("(α=1)")]
    ft_auc = _get(t, "finetune", "AUROC")
    if rrp and np.isfinite(ft_auc):
        best = max(rrp, key=lambda i: _get(t, i, "AUROC"))
        auc = _get(t, best, "AUROC")
        alpha = best[len("residual_reprogrammer (α=") : -1]
        ahead = auc > ft_auc
        parts.append(
            f"the best RRP (α_zs = {alpha}, chosen here on the test sets) {'beats' if ahead else 'trails'} fine-tuning "
            f"on OOD detection (AUROC {auc:.1f} vs {ft_auc:.1f}), "
            + ("the paper's direction" if ahead else "against the paper's claim")
        )
    elif np.isfinite(ft) and np.isfinite(rp):
        parts.append(f"fine-tuning reaches {ft:.1f} ID accuracy")
    if not parts:
        return ""
    return "This run: " + "; ".join(parts) + "."


def verdict_html(df: pd.DataFrame) -> str:
    """``<p class="verdict">`` lines, one per (encoder, ID task), from test rows (each method's latest config)."""
    if df is None or df.empty:
        return ""
    lines = []
    for _, g in df[df["kind"] != "val"].groupby(["encoder", "train_dataset"], sort=False):
        try:
            text = verdict(g)
        except ReprolabError:  # rows a table cannot summarise yet (e.g. mixed configs): no sentence
            text = ""
        if text:
            lines.append(f'<p class="verdict"><b>{html.escape(text)}</b></p>')
    return "\n".join(lines)
