"""``OUT/report.html``: one self-contained page built from ``OUT/results.jsonl`` (works offline).

Contents: with a validation split, first the fair-comparison table of :mod:`reprolab.comparison`; then, per
(encoder, ID task), the paper-style table (:func:`reprolab.paper_table.paper_table`, as in Geng & Chen,
arXiv 2403.10800, Tables 1-2, with the holistic score H = (ID acc + shift acc + AUROC)/3 next to its parts), and
plotly figures — ID accuracy vs OOD detection per method, the α curves of the Residual Reprogrammer
(α = weight on the zero-shot features) and WiSE-FT (α = weight on the fine-tuned weights), per-set bars, score
histograms (from ``OUT/scores/*.npz`` if the runner wrote them) and the reprogrammer's learned frame
δ = M ⊙ tanh(W) (paper §3.1) from its checkpoint. plotly.js is embedded once, inline, so no network is needed.
"""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from .comparison import comparison_html, read_selection
from .errors import ReprolabError
from .paper_table import paper_table
from .results import ResultsDB

STANDIN = "offline stand-in (EfficientNet-Lite0 + MiniLM)"
CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
       "th:first-child,td:first-child{text-align:left}.note{background:#fff7e0;border-left:4px solid #e0a000;"
       "padding:.5em 1em}.howto{background:#eef5ff;border-left:4px solid #3070c0;padding:.5em 1em}")
HOWTO = """<ul>
<li><b>ID acc</b>: accuracy on the test split of the training task. <b>shift acc</b>: mean accuracy on the
covariate-shift sets (same classes, changed pixels). <b>FPR95 / AUROC / AUPR</b>: OOD detection (semantic
shift), means over the OOD sets; ID is the positive class, a higher score means more in-distribution; lower is
better only for FPR95.</li>
<li><b>holistic</b> = (ID acc + shift acc + AUROC) / 3 — one number, shown right after its three parts, since a
gain in one part can hide a loss in another.</li>
<li>Values are percentages, mean ± sample std over seeds (no ± with one seed). α rows: RRP's α is the weight on the
<i>zero-shot</i> features (α = 0 is the reprogrammer, 1 is zero-shot); WiSE-FT's α is the weight on the
<i>fine-tuned</i> weights (α = 0 is zero-shot, 1 is fine-tuned) — opposite directions.</li></ul>"""


def encoder_name(encoder_id: str) -> str:
    """Human name for an encoder id; the stand-in is never called CLIP."""
    if encoder_id.startswith("standin"):
        return f"{STANDIN} — not CLIP"
    if encoder_id.startswith("openclip-tiny"):
        return "tiny random-init model with CLIP's architecture (for tests; its numbers mean nothing)"
    if encoder_id.startswith("openclip-"):
        return f"CLIP via open_clip ({encoder_id[len('openclip-'):]})"
    return encoder_id


class _Figs:
    """Collects plotly figures; plotly.js goes inline with the first one only."""

    def __init__(self):
        self.n = 0

    def html(self, fig) -> str:
        self.n += 1
        return fig.to_html(full_html=False, include_plotlyjs=self.n == 1, default_height=420)


def _latest(df: pd.DataFrame) -> pd.DataFrame:
    """Keep each method's most recent config_hash (older configs in the same folder are hidden)."""
    last = df.sort_values("created").groupby("method")["config_hash"].last()
    return df[df["config_hash"] == df["method"].map(last)]


ORDER = ("zeroshot", "linear_probe", "finetune", "lp_ft", "wise_ft", "coop", "visual_prompt", "reprogrammer",
         "residual_reprogrammer")


def _ordered(table: pd.DataFrame, d: pd.DataFrame) -> pd.DataFrame:
    """Table rows in a fixed method order (baselines first), α ascending within a method."""
    meta = d.drop_duplicates("label").set_index("label")

    def key(label):
        m, a = meta.loc[label, "method"], meta.loc[label, "alpha"]
        return (ORDER.index(m) if m in ORDER else len(ORDER), m, -1.0 if a is None or pd.isna(a) else float(a))
    return table.loc[sorted(table.index, key=key)]


def _labels(df: pd.DataFrame) -> pd.DataFrame:
    d = df.copy()
    d["label"] = [m if a is None or pd.isna(a) else f"{m} (α={float(a):g})" for m, a in zip(d["method"], d["alpha"])]
    return d


def fig_tradeoff(table: pd.DataFrame, d: pd.DataFrame):
    import plotly.graph_objects as go

    meta = d.drop_duplicates("label").set_index("label")
    fig = go.Figure()
    for method, g in table.assign(method=[meta.loc[i, "method"] for i in table.index]).groupby("method", sort=False):
        alpha = len(g) > 1
        fig.add_trace(go.Scatter(x=g["ID acc mean"], y=g["AUROC mean"], name=method, text=list(g.index),
                                 mode="lines+markers" if alpha else "markers", marker=dict(size=9 if alpha else 14),
                                 hovertemplate="%{text}<br>ID acc %{x:.1f}<br>AUROC %{y:.1f}<extra></extra>"))
    fig.update_layout(title="ID accuracy vs OOD detection (up and right is better)",
                      xaxis_title="ID accuracy (%)", yaxis_title="mean OOD AUROC (%)")
    return fig


def fig_alpha(table: pd.DataFrame, d: pd.DataFrame):
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

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
            fig.add_trace(go.Scatter(x=np.array(x)[order], y=g[f"{m} mean"].to_numpy()[order], mode="lines+markers",
                                     name=f"{method}: α = {meaning}", legendgroup=method, showlegend=k == 0,
                                     line=dict(color=colors[method])), row=1, col=k + 1)
    fig.update_xaxes(title_text="α (see legend: what it weights)", range=[-0.05, 1.05])
    fig.update_yaxes(title_text="%", col=1)
    fig.update_layout(title="α sweeps — RRP: α = weight on zero-shot features; WiSE-FT: α = weight on fine-tuned "
                            "weights", legend=dict(orientation="h", y=-0.25))
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
            fig.add_trace(go.Histogram(x=z[f"set:{name}"], name=name, histnorm="probability", opacity=0.55,
                                       nbinsx=40, legendgroup=name, showlegend=c == 1), row=1, col=c)
    fig.update_layout(barmode="overlay", title="OOD score distributions (ID test set vs each OOD set; "
                      "higher = more in-distribution)", height=380)
    return fig


def fig_delta(out: Path):
    """The learned frame δ = M ⊙ tanh(W) of the first reprogrammer checkpoint (the chosen one of a sweep)."""
    import plotly.express as px
    import torch

    from .checkpoint import load_checkpoint
    from .image_reprogrammer import centre_mask

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


def section(df: pd.DataFrame, out: Path, figs: _Figs) -> str:
    d = _labels(_latest(df))
    table = _ordered(paper_table(d).rename_axis("label"), d)
    shown = table[["seeds", "ID acc", "shift acc", "AUROC", "holistic", "FPR95", "AUPR-In", "AUPR-Out"]]
    sets = {k: sorted(d.loc[d.kind == k, "eval_set"].unique()) for k in ("id", "shift", "ood")}
    parts = [f"<h2>Encoder: {html.escape(encoder_name(d['encoder'].iloc[0]))} · trained on "
             f"{html.escape(str(d['train_dataset'].iloc[0]))}</h2>",
             "<p>" + "; ".join(f"<b>{k}</b>: {html.escape(', '.join(v)) or '—'}" for k, v in sets.items()) + "</p>",
             shown.rename_axis("method").to_html(classes="paper", escape=True)]
    for fig in (fig_tradeoff(table, d), fig_alpha(table, d), fig_sets(d)):
        if fig is not None:
            parts.append(figs.html(fig))
    return "\n".join(parts)


def build_report(out_dir) -> Path:
    """(Re)build ``OUT/report.html`` from ``OUT/results.jsonl``; returns its path."""
    out = Path(out_dir)
    db = ResultsDB(out / "results.jsonl")
    if not db.path.exists():
        raise ReprolabError(f"{db.path} not found; run `reprolab run CONFIG --out {out}` first")
    df = db.to_frame()
    fair = comparison_html(out, df) if len(df) else ""  # the fair-comparison table, when the run had val_subset
    df = df[df["kind"] != "val"] if len(df) else df  # validation rows only chose hyper-parameters
    if df.empty:
        raise ReprolabError(f"{db.path} has no rows yet; let `reprolab run` finish at least one method")
    figs = _Figs()
    body = [fair] + [section(g, out, figs) for _, g in df.groupby(["encoder", "train_dataset"], sort=False)]
    for fig in (fig_scores(out), fig_delta(out)):
        if fig is not None:
            body.append(figs.html(fig))
    names = sorted({encoder_name(e) for e in df["encoder"]})
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>reprolab report</title>
<style>{CSS}</style></head><body>
<h1>reprolab report — reprogramming vs fine-tuning</h1>
<p>Encoder(s): <b>{html.escape('; '.join(names))}</b>. {len(df)} result rows from {html.escape(str(db.path))}.</p>
<p class="note"><b>These numbers were measured by this run</b>, on this machine, with the data subsets and training
budget of its config — they are not the paper's numbers (Geng &amp; Chen, arXiv 2403.10800).
{"The offline stand-in is a different, much weaker zero-shot model than CLIP, so conclusions need not carry over."
 if any(str(e).startswith("standin") for e in df["encoder"]) else ""}</p>
<div class="howto"><b>How to read this</b>{HOWTO}</div>
{''.join(body)}
</body></html>"""
    path = out / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
