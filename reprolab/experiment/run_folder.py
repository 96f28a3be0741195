"""Where a run's files go, and which rows of a run folder belong to the run at hand.

A classroom's path is: run the course on the offline stand-in, fetch CLIP's weights, run it again in the same
checkout. Rows, checkpoints and cached features already carry the encoder in their identity
(:mod:`reprolab.experiment.identity`), but a run *folder* named only after its config would collect the rows of
both encoders, and a table over the whole folder would mix them. So:

* :func:`run_folder` names a folder after the config *and* the encoder (``runs/quickstart-standin-weak-128``);
  ``reprolab run`` without ``--out`` and the notebooks use it, so switching the encoder switches the folder;
* :func:`current_rows` keeps, from any folder, only the rows the current config and encoder would write — rows of
  another encoder or an older config in the same folder (an explicit ``--out`` reused) never reach a table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd


def encoder_slug(encoder_id: str) -> str:
    """A file-name-safe form of an encoder id (``openclip-ViT-B-32-quickgelu-random-init-s0`` stays as it is)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id).strip("._") or "encoder"


def run_folder(root, name: str, encoder_id: str) -> Path:
    """``root/<name>-<encoder slug>``: one folder per config name and encoder."""
    return Path(root) / f"{name}-{encoder_slug(encoder_id)}"


def resolve_encoder_id(name: str) -> str:
    """The id of the encoder a config's ``encoder:`` name loads on this machine (``auto`` resolved), by loading it.

    The stand-ins are cached per process, so the runner's own load costs nothing more; an open_clip model is
    loaded twice (a few seconds for ViT-B/32), which is the price of a folder that cannot be wrong.
    """
    import gc

    from reprolab.encoders import load_encoder

    enc = load_encoder(name, verbose=False)
    eid = enc.id
    del enc
    gc.collect()
    return eid


def default_out(config_path, cfg, root="runs") -> Path:
    """``reprolab run``'s folder when ``--out`` is not given: ``runs/<config stem>-<encoder slug>``."""
    return run_folder(root, Path(config_path).stem, resolve_encoder_id(cfg.encoder))


def current_rows(df: pd.DataFrame, cfg, encoder_id: str) -> pd.DataFrame:
    """The rows of ``df`` (``ResultsDB(...).to_frame()``) that ``cfg`` run with ``encoder_id`` writes: same encoder
    and, per method, the same config hash (:func:`reprolab.experiment.identity.spec_hash`). Validation rows of the
    fair protocol are kept alongside (they carry their own hashes and only choose hyper-parameters)."""
    from reprolab.experiment.identity import data_settings, spec_hash
    from reprolab.experiment.runner import Runner

    if df is None or len(df) == 0:
        return df
    specs = {m.name: m for m in Runner.effective_methods(cfg)}
    data = data_settings(cfg, encoder_id)
    keep = {(name, spec_hash(s, specs, data)) for name, s in specs.items()}
    mine = df["encoder"] == encoder_id
    match = pd.Series([(m, h) in keep for m, h in zip(df["method"], df["config_hash"])], index=df.index)
    return df[mine & (match | (df["kind"] == "val"))]
