"""The measured fair comparisons shipped in docs/results/ (weak and strong stand-in priors) are complete and
readable: the course's last notebook and docs/results.md are built from them."""

from pathlib import Path

import pytest

from reprolab.errors import ReprolabError
from reprolab.experiment.comparison import load_comparison, prior_figure

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
METHODS = {"zeroshot", "linear_probe", "finetune", "lp_ft", "wise_ft", "reprogrammer", "residual_reprogrammer"}


@pytest.mark.parametrize("run", ["fair_strong", "fair_weak"])
def test_shipped_comparison_has_every_method_over_three_seeds(run):
    t = load_comparison(RESULTS / run)
    assert {label.split(" (")[0] for label in t.index} == METHODS
    assert (t["seeds"] == 3).all()
    for col in ("ID acc mean", "shift acc mean", "FPR95 mean", "AUROC mean"):
        assert t[col].between(0, 100).all(), col
    # the tuned methods name their choice, and the two α's their (opposite) meanings
    labels = " ".join(t.index)
    assert "lr=" in labels and "α_zs=" in labels and "α_ft=" in labels


def test_prior_figure_joins_each_method_across_priors():
    tables = {p: load_comparison(RESULTS / f"fair_{p}") for p in ("weak", "strong")}
    fig = prior_figure(tables)
    assert len(fig.data) == len(METHODS)
    assert all(len(tr.x) == 2 and list(tr.text) == ["weak", "strong"] for tr in fig.data)


def test_missing_run_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(ReprolabError, match="reprolab run") as e:
        load_comparison(tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("run", ["fair_strong", "fair_weak"])
def test_alpha_curves_end_at_zero_shot(run):
    """RRP at α_zs = 1 is the zero-shot model exactly, so its curve must end on the zero-shot row."""
    from reprolab.experiment.comparison import alpha_curves

    curves, table = alpha_curves(RESULTS / run), load_comparison(RESULTS / run)
    rrp1 = curves.loc["residual_reprogrammer (α_zs=1)"]
    zs = table.loc["zeroshot"]
    assert rrp1["ID acc"].split(" ±")[0] == zs["ID acc"].split(" ±")[0]
    assert rrp1["AUROC"].split(" ±")[0] == zs["AUROC"].split(" ±")[0]
    assert {f"wise_ft (α_ft={a})" for a in ("0.25", "0.5", "0.75")} <= set(curves.index)
