"""The paper-style summary table of a results database (Geng & Chen, arXiv 2403.10800, Tables 1-2).

Per method: ID accuracy, mean covariate-shift accuracy, mean FPR95 / AUROC / AUPR over the OOD sets and the
holistic score (:func:`reprolab.evaluation.metrics.holistic_score`), as mean ± sample std (ddof = 1) over seeds, in percent.
Input: the flat frame of :meth:`reprolab.experiment.results.ResultsDB.to_frame`. Validation rows (kind "val", which only
choose hyper-parameters — :mod:`reprolab.experiment.protocol`) never enter it; :mod:`reprolab.experiment.comparison` builds the fair
comparison table on top of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reprolab.errors import ReprolabError
from reprolab.evaluation.metrics import holistic_score

TABLE_METRICS = ("ID acc", "shift acc", "FPR95", "AUROC", "AUPR-In", "AUPR-Out", "holistic")


def _fmt(mean: float, std: float, digits: int) -> str:
    if not np.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if np.isfinite(std) else "")


def paper_table(df: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Methods × metrics, mean ± std over seeds, in percent (like the paper's tables).

    Per seed: ID acc = mean ``acc`` over kind "id" rows; shift acc = mean ``acc`` over "shift" sets; FPR95,
    AUROC, AUPR-In/Out = means over "ood" sets; holistic = :func:`reprolab.evaluation.metrics.holistic_score` of those.
    Then mean and sample std (ddof=1, NaN for one seed) over seeds. A method with an ``alpha`` is listed once per
    alpha as ``"method (α=a)"``. Columns: ``seeds``; a formatted string column per metric (``"85.00 ± 7.07"``);
    and numeric ``"<metric> mean"`` / ``"<metric> std"`` columns. Lower is better only for FPR95.
    Filter ``df`` to one encoder and train_dataset first; repeated identical rows keep the last.
    """
    need = {"method", "eval_set", "kind", "seed", "alpha", "config_hash"}
    if df is None or len(df) == 0:
        raise ReprolabError("no results to tabulate; run an evaluation first (ResultsDB(path).to_frame())")
    if not need <= set(df.columns):
        raise ReprolabError(f"paper_table needs columns {sorted(need)}; pass ResultsDB(path).to_frame()")
    for col in ("encoder", "train_dataset"):
        if col in df.columns and df[col].nunique() > 1:
            raise ReprolabError(f"results mix {df[col].nunique()} {col}s; filter first, e.g. df[df.{col} == ...]")
    d = df[df["kind"] != "val"].copy()  # validation rows only chose hyper-parameters
    if d.empty:
        raise ReprolabError("only validation rows so far; let `reprolab run` evaluate a method on the test sets")
    d["label"] = [m if a is None or pd.isna(a) else f"{m} (α={float(a):g})" for m, a in zip(d["method"], d["alpha"])]
    key = ["label", "seed", "eval_set"]
    n_cfg = d.groupby(key)["config_hash"].nunique()
    if (n_cfg > 1).any():
        bad = n_cfg[n_cfg > 1].index[0]
        raise ReprolabError(f"{bad[0]!r} seed {bad[1]} has rows from several configs; filter by config_hash first")
    d = d.drop_duplicates(subset=key, keep="last")
    cols = {"acc": None, "fpr95": "FPR95", "auroc": "AUROC", "aupr_in": "AUPR-In", "aupr_out": "AUPR-Out"}
    for c in cols:
        if c not in d.columns:
            d[c] = np.nan
    per_seed = []
    for (label, seed), g in d.groupby(["label", "seed"], sort=False):
        rec = {
            "label": label,
            "seed": seed,
            "ID acc": g.loc[g.kind == "id", "acc"].mean(),
            "shift acc": g.loc[g.kind == "shift", "acc"].mean(),
        }
        ood = g[g.kind == "ood"]
        rec.update({name: ood[c].mean() for c, name in cols.items() if name})
        parts = (rec["ID acc"], rec["shift acc"], rec["AUROC"])
        rec["holistic"] = holistic_score(*parts) if all(np.isfinite(parts)) else np.nan
        per_seed.append(rec)
    ps = pd.DataFrame(per_seed)
    agg = ps.groupby("label", sort=False)
    mean, std = agg[list(TABLE_METRICS)].mean() * 100, agg[list(TABLE_METRICS)].std(ddof=1) * 100
    out = pd.DataFrame({"seeds": agg["seed"].nunique()})
    for m in TABLE_METRICS:
        out[m] = [_fmt(a, b, digits) for a, b in zip(mean[m], std[m])]
    for m in TABLE_METRICS:
        out[f"{m} mean"], out[f"{m} std"] = mean[m], std[m]
    out.index.name = "method"
    return out
