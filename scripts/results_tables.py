"""Print the fair-comparison tables of the runs in docs/results/ as Markdown (pasted into docs/results.md).

python scripts/results_tables.py [docs/results/fair_strong docs/results/fair_weak ...]
"""

import sys
from pathlib import Path

from reprolab.experiment.comparison import alpha_curves, load_comparison, read_selection, sweep_table

COLS = ["seeds", "val acc", "ID acc", "shift acc", "FPR95", "AUROC", "holistic"]


def markdown(df, index_name="method") -> str:
    """A Markdown table (pandas' to_markdown needs `tabulate`, which the kit does not otherwise depend on)."""
    cols = list(df.columns)
    rows = [f"| {index_name} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    rows += [f"| {i} | " + " | ".join(str(v) for v in r) + " |" for i, r in zip(df.index, df.itertuples(index=False))]
    return "\n".join(rows)


if __name__ == "__main__":
    runs = sys.argv[1:] or ["docs/results/fair_strong", "docs/results/fair_weak"]
    for run in runs:
        print(f"### {Path(run).name}\n")
        print(markdown(load_comparison(run)[COLS]), "\n")
        print(markdown(sweep_table(read_selection(run)).set_index("method")), "\n")
        print(markdown(alpha_curves(run)), "\n")
