"""Print the fair-comparison tables of the runs in docs/results/ as Markdown (pasted into docs/results.md).

    python scripts/results_tables.py [docs/results/fair_strong docs/results/fair_weak ...]
"""
import sys
from pathlib import Path

import pandas as pd

from reprolab.comparison import load_comparison, read_selection, sweep_table
from reprolab.results import ResultsDB

COLS = ["seeds", "val acc", "ID acc", "shift acc", "FPR95", "AUROC", "holistic"]


def markdown(df, index_name="method") -> str:
    cols = list(df.columns)
    rows = [f"| {index_name} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    rows += [f"| {i} | " + " | ".join(str(v) for v in r) + " |" for i, r in zip(df.index, df.itertuples(index=False))]
    return "\n".join(rows)


def alpha_curves(run) -> pd.DataFrame:
    """Whole α curves of RRP (α_zs, weight on zero-shot features) and WiSE-FT (α_ft, weight on fine-tuned
    weights): mean ± std over seeds (%) of ID acc, mean shift acc, mean FPR95 and AUROC over the OOD sets."""
    df = ResultsDB(Path(run) / "results.jsonl").to_frame()
    d = df[(df.kind != "val") & df.method.isin(["residual_reprogrammer", "wise_ft"])]
    recs = []
    for (m, a), g in d.groupby(["method", "alpha"]):
        per_seed = pd.DataFrame([{"ID acc": s[s.kind == "id"].acc.mean(), "shift acc": s[s.kind == "shift"].acc.mean(),
                                  "FPR95": s[s.kind == "ood"].fpr95.mean(), "AUROC": s[s.kind == "ood"].auroc.mean()}
                                 for _, s in g.groupby("seed")])
        name = f"{m} (α_zs={a:g})" if m == "residual_reprogrammer" else f"{m} (α_ft={a:g})"
        recs.append({"method": name, **{k: f"{100 * per_seed[k].mean():.2f} ± {100 * per_seed[k].std():.2f}"
                                        for k in per_seed}})
    return pd.DataFrame(recs).set_index("method")


if __name__ == "__main__":
    runs = sys.argv[1:] or ["docs/results/fair_strong", "docs/results/fair_weak"]
    for run in runs:
        print(f"### {Path(run).name}\n")
        print(markdown(load_comparison(run)[COLS]), "\n")
        print(markdown(sweep_table(read_selection(run)).set_index("method")), "\n")
        print(markdown(alpha_curves(run)), "\n")
