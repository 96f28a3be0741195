"""The report's one-line verdict (reprolab/experiment/verdict.py): what this run shows, against the paper's claims."""

import numpy as np
import pandas as pd

from reprolab.experiment.verdict import verdict, verdict_html


def rows(rp_id, rrp_auroc, ft_auroc):
    out = []

    def add(method, kind, eval_set, alpha=None, acc=np.nan, auroc=np.nan):
        out.append(
            dict(
                method=method,
                kind=kind,
                eval_set=eval_set,
                seed=0,
                alpha=alpha,
                config_hash=method,
                acc=acc,
                auroc=auroc,
                fpr95=0.9,
                encoder="standin",
                train_dataset="cifar10",
                created=len(out),
            )
        )

    for m, id_acc, auroc in [("zeroshot", 0.44, 0.65), ("reprogrammer", rp_id, 0.55), ("finetune", 0.50, ft_auroc)]:
        add(m, "id", "cifar10", acc=id_acc)
        add(m, "ood", "dtd10", auroc=auroc)
    for a, auroc in [(0.0, 0.55), (0.4, rrp_auroc), (1.0, 0.99)]:  # α = 1 is zero-shot: never "the best RRP"
        add("residual_reprogrammer", "id", "cifar10", alpha=a, acc=0.45)
        add("residual_reprogrammer", "ood", "dtd10", alpha=a, auroc=auroc)
    return pd.DataFrame(out)


def test_says_above_or_below_zero_shot_and_who_detects_ood_better():
    good = verdict(rows(0.46, 0.70, 0.60))
    assert "ends above zero-shot on ID accuracy (46.0 vs 44.0), as the paper reports" in good
    assert "RRP (α_zs = 0.4" in good and "beats fine-tuning" in good and "(AUROC 70.0 vs 60.0)" in good
    bad = verdict(rows(0.40, 0.58, 0.60))
    assert "ends below zero-shot" in bad and "unlike the paper" in bad and "trails fine-tuning" in bad
    assert verdict_html(rows(0.46, 0.70, 0.60)).startswith('<p class="verdict">')
