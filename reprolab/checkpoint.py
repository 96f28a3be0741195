"""Checkpoints: safetensors of the trainable tensors + a JSON of the config and step. Never pickles.

A checkpoint directory holds ``NAME.safetensors`` and ``NAME.json``. Both are written atomically (temporary file
in the same directory, fsync, ``os.replace``), the JSON last, and the JSON records the SHA-256 of the tensor file,
so a half-written or corrupted checkpoint is detected on load instead of silently training from garbage.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from reprolab.errors import CheckpointError


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(directory, tensors: dict, meta: dict, name: str = "checkpoint") -> Path:
    """Write ``tensors`` (str → Tensor) and ``meta`` (JSON-able) atomically; returns the JSON path."""
    d = Path(directory)
    st, js = d / f"{name}.safetensors", d / f"{name}.json"
    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    _atomic_write(st, lambda tmp: save_file(clean, tmp))
    record = dict(meta, sha256=_sha256(st), format="reprolab-checkpoint-v1")
    _atomic_write(js, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1, sort_keys=True)))
    return js


def checkpoint_exists(directory, name: str = "checkpoint") -> bool:
    return (Path(directory) / f"{name}.json").exists()


def load_checkpoint(directory, name: str = "checkpoint") -> tuple[dict, dict]:
    """Return ``(tensors, meta)``; raise :class:`CheckpointError` (one line, with the fix) if anything is off."""
    d = Path(directory)
    st, js = d / f"{name}.safetensors", d / f"{name}.json"
    if not js.exists() or not st.exists():
        raise CheckpointError(
            f"no checkpoint {name!r} in {d}; train first or point to the run directory that has "
            f"{name}.json and {name}.safetensors"
        )
    try:
        meta = json.loads(js.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"checkpoint config {js} is corrupt; delete {d} and retrain (or restore it)") from None
    if meta.get("sha256") and meta["sha256"] != _sha256(st):
        raise CheckpointError(
            f"checkpoint {st} does not match its recorded SHA-256 (truncated or modified); "
            f"delete {d} and retrain, or restore the file"
        )
    try:
        tensors = load_file(str(st))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {st} is unreadable ({exc}); delete {d} and retrain") from None
    return tensors, meta
