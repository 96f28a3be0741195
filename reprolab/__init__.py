"""reprolab — a notebook-first kit for model reprogramming of text-image encoders.

Implements Geng & Chen, "Model Reprogramming Outperforms Fine-tuning on Out-of-distribution Data in Text-Image
Encoders" (SaTML 2024, arXiv 2403.10800) next to the fine-tuning methods it is compared with.

The public API is the names below; a notebook needs nothing else (``from reprolab import load_encoder, fit``).
They are imported on first use, so ``import reprolab`` (and the ``reprolab`` command) stays light.

Layout, lowest layer first; a package may import from lower layers only (``tests/test_layout.py`` checks it):

* ``errors`` — the one-line errors every layer raises;
* ``datasets``, ``encoders``, ``checkpoint``, ``distributed`` — data, frozen encoders, safetensors checkpoints,
  torchrun's data-parallel helpers;
* ``reprogramming`` (the paper's equations), ``training`` (the one training loop);
* ``methods`` — every method of the comparison behind one interface;
* ``evaluation`` — features, metrics, OOD scores, drift;
* ``experiment`` — configs, the runner, the fair protocol, results and reports;
* ``course`` — the notebooks' figures and widgets;
* ``bench``, ``doctor``, ``fetch`` — measurements, machine checks, downloads for offline use; ``cli`` — the
  ``reprolab`` command.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    # data and encoders
    "load_dataset": "reprolab.datasets",
    "dataset_names": "reprolab.datasets",
    "load_encoder": "reprolab.encoders",
    # the paper
    "ImageReprogrammer": "reprolab.reprogramming.image_reprogrammer",
    "TextReprogrammer": "reprolab.reprogramming.text_reprogrammer",
    "blend": "reprolab.reprogramming.residual",
    "residual_logits": "reprolab.reprogramming.residual",
    "contrastive_loss": "reprolab.reprogramming.losses",
    # methods and training
    "METHODS": "reprolab.methods",
    "build_method": "reprolab.methods",
    "ZeroShot": "reprolab.methods",
    "Reprogrammer": "reprolab.methods",
    "ResidualReprogrammer": "reprolab.methods",
    "LinearProbe": "reprolab.methods",
    "FineTune": "reprolab.methods",
    "LPFT": "reprolab.methods",
    "WiSEFT": "reprolab.methods",
    "CoOp": "reprolab.methods",
    "VisualPrompt": "reprolab.methods",
    "VisualReprogrammer": "reprolab.methods",
    "TrainConfig": "reprolab.training",
    "fit": "reprolab.training",
    "pick_device": "reprolab.training",
    # evaluation
    "accuracy": "reprolab.evaluation.metrics",
    "ood_metrics": "reprolab.evaluation.metrics",
    "FeatureCache": "reprolab.evaluation.features",
    "collect": "reprolab.evaluation.evaluate",
    "evaluate_method": "reprolab.evaluation.evaluate",
    "ood_score": "reprolab.evaluation.evaluate",
    # experiments
    "load_config": "reprolab.experiment.config",
    "run": "reprolab.experiment.runner",
    "ResultsDB": "reprolab.experiment.results",
    "paper_table": "reprolab.experiment.paper_table",
    # errors
    "ReprolabError": "reprolab.errors",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'reprolab' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # imported once
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
