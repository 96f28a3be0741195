"""The fair-comparison table: one row per method with the hyper-parameters and α chosen on validation.

Reads ``OUT/selection.json`` (written by :mod:`reprolab.experiment.protocol` when the config has ``val_subset``) and the test
rows of ``results.jsonl``. Per method it keeps only the rows of the chosen config (its ``config_hash``) and, for the
Residual Reprogrammer and WiSE-FT, of the selected α — RRP's α (``α_zs``) is the weight on the ZERO-SHOT features,
WiSE-FT's (``α_ft``) the weight on the FINE-TUNED weights, opposite conventions — and reports, as
:func:`reprolab.experiment.paper_table.paper_table` does, mean ± std over seeds (in %) of ID accuracy, mean covariate-shift
accuracy, mean FPR95 and mean AUROC over the OOD sets, plus the validation accuracy the choice was made on.
Labels name the choice, e.g. ``"finetune (lr=1e-4)"``, ``"residual_reprogrammer (α_zs=0.6)"``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from reprolab.errors import ReprolabError
from reprolab.experiment.naming import ALPHA_METHODS, fmt
from reprolab.experiment.paper_table import paper_table

COLUMNS = ("seeds", "val acc", "ID acc", "shift acc", "FPR95", "AUROC", "holistic")


def read_selection(out_dir) -> dict | None:
    """``OUT/selection.json`` as a dict, or None when the run had no validation split."""
    path = Path(out_dir) / "selection.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise ReprolabError(f"{path} is not valid JSON; delete it and run `reprolab run` again") from None


def comparison_table(df: pd.DataFrame, selection: dict, digits: int = 2) -> pd.DataFrame:
    """Chosen-configuration rows only, one per method (index: the label naming the choice); see module doc.

    Columns: :data:`COLUMNS` as formatted strings (``"85.00 ± 7.07"``) and the numeric ``"<metric> mean"`` /
    ``"<metric> std"`` of :func:`reprolab.experiment.paper_table.paper_table`; ``val acc`` is one number (the selection seed).
    """
    d = df[df["kind"] != "val"]
    parts, val = [], {}
    for name, e in selection["methods"].items():
        g = d[(d["method"] == name) & (d["config_hash"] == e["config_hash"])]
        a = e.get("alpha")
        g = g[g["alpha"].isna()] if a is None else g[np.isclose(g["alpha"].astype(float), float(a))]
        if g.empty:
            continue
        parts.append(g.assign(method=e["label"], alpha=None))
        val[e["label"]] = e.get("val_acc")
    if not parts:
        raise ReprolabError("no test rows for the chosen configurations yet; let `reprolab run` finish a method")
    table = paper_table(pd.concat(parts, ignore_index=True), digits)
    table["val acc"] = ["—" if val.get(k) is None else f"{100 * val[k]:.{digits}f}" for k in table.index]
    table["val acc mean"] = [np.nan if val.get(k) is None else 100 * val[k] for k in table.index]
    extra = [c for c in table.columns if c.endswith((" mean", " std"))]
    return table[list(COLUMNS) + extra]


def sweep_table(selection: dict, digits: int = 2) -> pd.DataFrame:
    """Every validation score behind the choices: method, candidate (params or α), val acc (%), chosen."""
    recs = []
    for name, e in selection["methods"].items():
        for c in e.get("candidates", []):
            recs.append(
                dict(
                    method=name,
                    candidate=", ".join(f"{k}={fmt(v)}" for k, v in c["params"].items()),
                    val_acc=c["val_acc"],
                    chosen=c["params"] == e["chosen"],
                )
            )
        for c in e.get("alphas", []):
            recs.append(
                dict(
                    method=name,
                    candidate=f"{ALPHA_METHODS[name]}={fmt(float(c['alpha']))}",
                    val_acc=c["val_acc"],
                    chosen=e.get("alpha") is not None and np.isclose(c["alpha"], e["alpha"]),
                )
            )
    t = pd.DataFrame(recs, columns=["method", "candidate", "val_acc", "chosen"])
    t["val acc"] = [f"{100 * v:.{digits}f}" for v in t.pop("val_acc")]
    t["chosen"] = ["✓" if c else "" for c in t["chosen"]]
    return t[["method", "candidate", "val acc", "chosen"]]


def comparison_html(out_dir, df: pd.DataFrame) -> str:
    """The report's fair-comparison section ("" without ``selection.json``)."""
    sel = read_selection(out_dir)
    if sel is None:
        return ""
    try:
        table = comparison_table(df, sel)
    except ReprolabError:
        return ""
    note = (
        f"Hyper-parameters (sweeps) and α were chosen by ID accuracy on <b>{html.escape(sel['val_set'])}</b> "
        f"({sel['val_subset']} images carved from the training split, disjoint from the training images) with "
        f"seed {sel['selection_seed']}, never on a test set; all seeds then ran with the chosen values. "
        "α_zs (Residual Reprogrammer) weights the <i>zero-shot</i> features; α_ft (WiSE-FT) weights the "
        "<i>fine-tuned</i> weights. ID/shift/OOD columns: test sets, mean ± std over seeds (%)."
    )
    sweeps = sweep_table(sel)
    return "\n".join(
        [
            "<h2>Fair comparison — choices made on validation</h2>",
            f"<p>{note}</p>",
            table[list(COLUMNS)].rename_axis("method").to_html(classes="fair", escape=True),
            "<h3>Validation scores behind the choices</h3>" if len(sweeps) else "",
            sweeps.to_html(index=False, classes="sweep", escape=True) if len(sweeps) else "",
        ]
    )


def load_comparison(out_dir, digits: int = 2) -> pd.DataFrame:
    """:func:`comparison_table` of a finished run folder (``results.jsonl`` + ``selection.json``), e.g. the
    measured runs shipped in ``docs/results/``."""
    from reprolab.experiment.results import ResultsDB

    out = Path(out_dir)
    sel = read_selection(out)
    if sel is None or not (out / "results.jsonl").exists():
        raise ReprolabError(
            f"{out} holds no fair-comparison run (results.jsonl + selection.json); run "
            f"`reprolab run configs/fair_comparison.yaml --out {out}` first"
        )
    return comparison_table(ResultsDB(out / "results.jsonl").to_frame(), sel, digits)


def prior_figure(tables: dict, x: str = "ID acc", y: str = "AUROC"):
    """One marker per (prior, method) at (x, y) with ±std bars; a line joins each method across priors, so the
    figure shows what a stronger pretrained prior changes. ``tables``: {prior label: comparison_table}."""
    import plotly.graph_objects as go

    fig = go.Figure()
    family = {}
    for prior, t in tables.items():
        for label, r in t.iterrows():
            family.setdefault(label.split(" (")[0], []).append((prior, label, r))
    for name, pts in family.items():
        fig.add_trace(
            go.Scatter(
                x=[r[f"{x} mean"] for _, _, r in pts],
                y=[r[f"{y} mean"] for _, _, r in pts],
                name=name,
                mode="lines+markers+text",
                text=[p for p, _, _ in pts],
                textposition="top center",
                hovertext=[f"{p}: {lab}" for p, lab, _ in pts],
                error_x=dict(type="data", array=[r[f"{x} std"] for _, _, r in pts]),
                error_y=dict(type="data", array=[r[f"{y} std"] for _, _, r in pts]),
            )
        )
    fig.update_layout(
        title=f"{y} vs {x} (mean ± std over seeds, %) — one line per method across priors",
        xaxis_title=f"{x} (%)",
        yaxis_title=f"{y} (%)",
        height=480,
    )
    return fig


def alpha_curves(run) -> pd.DataFrame:
    """Whole α curves of RRP (α_zs, weight on zero-shot features) and WiSE-FT (α_ft, weight on fine-tuned
    weights): mean ± std over seeds (%) of ID acc, mean shift acc, mean FPR95 and AUROC over the OOD sets."""
    from reprolab.experiment.results import ResultsDB

    df = ResultsDB(Path(run) / "results.jsonl").to_frame()
    d = df[(df.kind != "val") & df.method.isin(["residual_reprogrammer", "wise_ft"])]
    recs = []
    for (m, a), g in d.groupby(["method", "alpha"]):
        per_seed = pd.DataFrame(
            [
                {
                    "ID acc": s[s.kind == "id"].acc.mean(),
                    "shift acc": s[s.kind == "shift"].acc.mean(),
                    "FPR95": s[s.kind == "ood"].fpr95.mean(),
                    "AUROC": s[s.kind == "ood"].auroc.mean(),
                }
                for _, s in g.groupby("seed")
            ]
        )
        name = f"{m} (α_zs={a:g})" if m == "residual_reprogrammer" else f"{m} (α_ft={a:g})"
        recs.append(
            {"method": name, **{k: f"{100 * per_seed[k].mean():.2f} ± {100 * per_seed[k].std():.2f}" for k in per_seed}}
        )
    return pd.DataFrame(recs).set_index("method")
