"""Per-image OOD scores of every evaluation set, saved per method and seed for the report's histograms.

``OUT/scores/<method>-s<seed>.npz`` holds one array per set (``set:<name>``) and ``__kinds__`` (``name\\tkind``
per set); written to a temporary file and renamed, so an interrupted run never leaves half a file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_scores(path: Path, method, sets, cache, cfg, logits: dict | None = None) -> Path:
    """Score ``method``'s logits on ``sets`` (from the feature cache when ``logits`` is None) and write ``path``."""
    from reprolab.evaluation.evaluate import collect, ood_score

    if logits is None:
        outs = collect(method, sets, cache, cfg.eval_batch_size, progress=False)
        logits = {d.name: outs[d.name]["logits"] for d in sets}
    arrays = {
        d.name: ood_score(
            logits[d.name], getattr(method, "clip_style", True), method.encoder.logit_scale, cfg.T, cfg.score
        )
        for d in sets
    }
    kinds = np.array([f"{d.name}\t{d.kind}" for d in sets])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, __kinds__=kinds, **{f"set:{k}": v for k, v in arrays.items()})
    tmp.replace(path)
    return path
