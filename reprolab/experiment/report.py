"""``OUT/report.html``: one self-contained page built from ``OUT/results.jsonl`` (works offline).

Contents: with a validation split, first the fair-comparison table of :mod:`reprolab.experiment.comparison`; then, per
(encoder, ID task), the paper-style table (:func:`reprolab.experiment.paper_table.paper_table`, as in Geng & Chen,
arXiv 2403.10800, Tables 1-2, with the holistic score H = (ID acc + shift acc + AUROC)/3 next to its parts), and
plotly figures — ID accuracy vs OOD detection per method, the α curves of the Residual Reprogrammer
(α = weight on the zero-shot features) and WiSE-FT (α = weight on the fine-tuned weights), per-set bars, score
histograms (from ``OUT/scores/*.npz`` if the runner wrote them) and the reprogrammer's learned frame
δ = M ⊙ tanh(W) (paper §3.1) from its checkpoint. plotly.js is embedded once, inline, so no network is needed.
Shift and OOD sets that the config names but the run could not find (optional sets are skipped, see
:mod:`reprolab.experiment.run_data`) are listed at the top as "not evaluated", with how to add each.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import yaml

from reprolab.errors import ReprolabError
from reprolab.experiment.comparison import comparison_html
from reprolab.experiment.paper_table import paper_table
from reprolab.experiment.report_figures import fig_alpha, fig_delta, fig_scores, fig_sets, fig_tradeoff
from reprolab.experiment.results import ResultsDB
from reprolab.experiment.verdict import verdict_html

TEXT_MODELS = {"minilm": "MiniLM", "mpnet": "MPNet"}
CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}.note{background:#fff7e0;border-left:4px solid #e0a000;"
    "padding:.5em 1em}.howto{background:#eef5ff;border-left:4px solid #3070c0;padding:.5em 1em}"
)
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
    if encoder_id.startswith("standin"):  # standin-effnetlite{N}-{text model}-...: say which stand-in it was
        parts = encoder_id.split("-")
        net = parts[1].replace("effnetlite", "EfficientNet-Lite") if len(parts) > 2 else "?"
        text = TEXT_MODELS.get(parts[2], parts[2]) if len(parts) > 2 else "?"
        return f"offline stand-in ({net} + {text}) — not CLIP"
    if encoder_id.startswith("openclip-tiny"):
        return "tiny random-init model with CLIP's architecture (for tests; its numbers mean nothing)"
    if encoder_id.startswith("openclip-") and "-random-init" in encoder_id:  # reprolab.encoders.testing
        arch = encoder_id[len("openclip-") :].split("-random-init")[0]
        return f"CLIP-shaped {arch}, random weights — accuracies mean nothing (shapes, time and memory are CLIP's)"
    if encoder_id.startswith("openclip-"):
        return f"CLIP via open_clip ({encoder_id[len('openclip-') :]})"
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


ORDER = (
    "zeroshot",
    "linear_probe",
    "finetune",
    "lp_ft",
    "wise_ft",
    "coop",
    "visual_prompt",
    "reprogrammer",
    "residual_reprogrammer",
)


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


def not_evaluated(out: Path, df: pd.DataFrame) -> list[str]:
    """One line per shift/OOD set of the run's config that no result row covers (the run skipped it)."""
    from reprolab.datasets.registry import ALIASES, skip_line

    path = out / "config.resolved.yaml"
    cfg = yaml.safe_load(path.read_text()) if path.is_file() else {}
    wanted = [*(cfg.get("shift_sets") or []), *(cfg.get("ood_sets") or [])]
    have = set(df["eval_set"])
    return [skip_line(n, why="not found when the run loaded its data") for n in wanted if ALIASES.get(n, n) not in have]


CONVENTION_TEXT = {
    "kit": "kit (scikit-learn's ROC and average precision, as MCM)",
    "official": "official (the official reprogrammer code's compute_metrics.py: FPR95 at sorted(ID)[round(0.05·n)], "
    "trapezoid AUPR)",
}


def convention_line(d: pd.DataFrame) -> str:
    """The OOD metric convention(s) of these rows (``metric_convention``; rows written before it existed: kit)."""
    col = d["metric_convention"] if "metric_convention" in d else pd.Series("kit", index=d.index)
    used = sorted(col.fillna("kit").unique())
    text = "; ".join(CONVENTION_TEXT.get(c, c) for c in used)
    return f"<p><b>OOD metric convention</b>: {html.escape(text)} — see docs/fidelity.md.</p>"


def section(df: pd.DataFrame, out: Path, figs: _Figs) -> str:
    d = _labels(_latest(df))
    table = _ordered(paper_table(d).rename_axis("label"), d)
    shown = table[["seeds", "ID acc", "shift acc", "AUROC", "holistic", "FPR95", "AUPR-In", "AUPR-Out"]]
    sets = {k: sorted(d.loc[d.kind == k, "eval_set"].unique()) for k in ("id", "shift", "ood")}
    parts = [
        f"<h2>Encoder: {html.escape(encoder_name(d['encoder'].iloc[0]))} · trained on "
        f"{html.escape(str(d['train_dataset'].iloc[0]))}</h2>",
        "<p>" + "; ".join(f"<b>{k}</b>: {html.escape(', '.join(v)) or '—'}" for k, v in sets.items()) + "</p>",
        convention_line(d),
        shown.rename_axis("method").to_html(classes="paper", escape=True),
    ]
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
    skipped = "".join(
        f'<p class="note">{html.escape(line)}; then run the same command again: finished methods are evaluated on '
        "it and the report is rebuilt</p>"
        for line in not_evaluated(out, df)
    )
    body = [skipped, fair] + [section(g, out, figs) for _, g in df.groupby(["encoder", "train_dataset"], sort=False)]
    for fig in (fig_scores(out), fig_delta(out)):
        if fig is not None:
            body.append(figs.html(fig))
    names = sorted({encoder_name(e) for e in df["encoder"]})
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>reprolab report</title>
<style>{CSS}</style></head><body>
<h1>reprolab report — reprogramming vs fine-tuning</h1>
<p>Encoder(s): <b>{html.escape("; ".join(names))}</b>. {len(df)} result rows from {html.escape(str(db.path))}.</p>
<p class="note"><b>These numbers were measured by this run</b>, on this machine, with the data subsets and training
budget of its config — they are not the paper's numbers (Geng &amp; Chen, arXiv 2403.10800).
{
        "The offline stand-in is a different, much weaker zero-shot model than CLIP, so conclusions need not carry over."
        if any(str(e).startswith("standin") for e in df["encoder"])
        else ""
    }</p>
{verdict_html(_latest(df))}
<div class="howto"><b>How to read this</b>{HOWTO}</div>
{"".join(body)}
</body></html>"""
    path = out / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
