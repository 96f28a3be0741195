"""Append-only results database (``results.jsonl``): one row per (method, evaluation set, seed[, alpha]).

One JSON object per line, one line per (method, evaluation set, seed[, alpha]):

    {"method": "wise_ft", "encoder": "openclip-ViT-B-32-openai", "train_dataset": "cifar10",
     "eval_set": "cifar10.1", "kind": "shift", "seed": 0, "alpha": 0.5,
     "alpha_meaning": "fine-tuned weight (WiSE-FT)", "metrics": {"acc": 0.87}, "n": 2000,
     "config_hash": "3f2a...", "created": "2024-05-01T12:00:00Z"}

``kind`` is "id" / "shift" (covariate shift, metric ``acc``) or "ood" (semantic shift, metrics ``fpr95, auroc,
aupr_in, aupr_out`` — conventions in :mod:`reprolab.evaluation.metrics`), or "val" (``acc`` on the validation split carved
from the train data, only to choose hyper-parameters — :mod:`reprolab.experiment.protocol`; never in the paper table).
All metrics are fractions in [0, 1].
``alpha`` is null unless the method interpolates, and ``alpha_meaning`` says which weight it is
(e.g. "zero-shot weight (RRP)" for the Residual Reprogrammer, "fine-tuned weight (WiSE-FT)").

Crash safety. Each ``append``/``append_many`` encodes its row(s) as complete ``\\n``-terminated lines and hands
them to a single ``os.write`` on an ``O_APPEND`` descriptor, then ``fsync``s. A hard kill can therefore leave at
most one *partial last line* (no trailing newline): :meth:`ResultsDB.rows` ignores it with a warning, and the
next append truncates it away before writing. Rows are never rewritten otherwise.

Resuming. :func:`config_hash` is the sha1 of the canonical JSON of a config; a runner skips a method when
:meth:`ResultsDB.done` reports rows for its (method, config_hash, seed) — pass ``eval_sets`` to require all.

The paper-style summary of these rows is :func:`reprolab.experiment.paper_table.paper_table`.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from reprolab.errors import ConfigError, CorruptFileError, ReprolabError

try:  # POSIX advisory lock so concurrent appenders do not race on the tail repair
    import fcntl
except ImportError:  # Windows: O_APPEND alone
    fcntl = None

__all__ = ["ResultsDB", "REQUIRED_KEYS", "METRIC_KEYS", "config_hash", "validate_row", "rows_to_frame", "utc_now"]

REQUIRED_KEYS = (
    "method",
    "encoder",
    "train_dataset",
    "eval_set",
    "kind",
    "seed",
    "alpha",
    "alpha_meaning",
    "metrics",
    "n",
    "config_hash",
    "created",
)
METRIC_KEYS = {"id": ("acc",), "shift": ("acc",), "ood": ("fpr95", "auroc", "aupr_in", "aupr_out"), "val": ("acc",)}


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise ConfigError(f"value {o!r} of type {type(o).__name__} is not JSON-able; use str/int/float/list/dict")


def _dumps(obj) -> str:
    try:
        return json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
        )
    except ValueError as e:  # NaN / inf
        raise ConfigError(f"cannot store non-finite numbers ({e}); fix the value before saving") from None


def config_hash(config: dict) -> str:
    """sha1 hex digest (40 chars) of ``json.dumps(config, sort_keys=True, separators=(",", ":"))``.

    Key order does not matter; types do (``1`` and ``1.0`` hash differently). numpy scalars/arrays, paths and
    sets are converted to plain JSON first.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"config_hash needs a dict, got {type(config).__name__}")
    return hashlib.sha1(_dumps(config).encode("utf-8")).hexdigest()


def utc_now() -> str:
    """Current time as ISO-8601 UTC, e.g. ``2024-05-01T12:00:00Z``."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def validate_row(row: dict) -> dict:
    """Check one result row and return a normalised copy (plain int/float); one-line ReprolabError if bad."""
    if not isinstance(row, dict):
        raise ReprolabError(f"a result row must be a dict, got {type(row).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in row]
    if missing:
        raise ReprolabError(f"result row lacks key(s) {missing}; add them (alpha/alpha_meaning may be None)")
    r = dict(row)
    tag = f"row {r['method']!r}/{r['eval_set']!r}"
    for k in ("method", "encoder", "train_dataset", "eval_set", "config_hash", "created"):
        if not isinstance(r[k], str) or not r[k]:
            raise ReprolabError(f"{tag}: {k!r} must be a non-empty string, got {r[k]!r}")
    if r["kind"] not in METRIC_KEYS:
        raise ReprolabError(f"{tag}: kind must be one of {sorted(METRIC_KEYS)}, got {r['kind']!r}")
    for k in ("seed", "n"):
        if not isinstance(r[k], numbers.Integral) or isinstance(r[k], bool) or (k == "n" and r[k] < 0):
            raise ReprolabError(f"{tag}: {k!r} must be a non-negative integer, got {r[k]!r}")
        r[k] = int(r[k])
    if r["alpha"] is not None:
        if not isinstance(r["alpha"], numbers.Real) or not math.isfinite(r["alpha"]):
            raise ReprolabError(f"{tag}: alpha must be a finite number or None, got {r['alpha']!r}")
        if not isinstance(r["alpha_meaning"], str) or not r["alpha_meaning"]:
            raise ReprolabError(f"{tag}: alpha is set, so give alpha_meaning, e.g. 'fine-tuned weight (WiSE-FT)'")
        r["alpha"] = float(r["alpha"])
    m = r["metrics"]
    if not isinstance(m, dict):
        raise ReprolabError(f"{tag}: metrics must be a dict, got {type(m).__name__}")
    need = [k for k in METRIC_KEYS[r["kind"]] if k not in m]
    if need:
        raise ReprolabError(f"{tag}: kind {r['kind']!r} needs metrics {list(METRIC_KEYS[r['kind']])}, missing {need}")
    for k, v in m.items():
        if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v):
            raise ReprolabError(f"{tag}: metric {k!r} must be a finite number, got {v!r}")
    r["metrics"] = {k: float(v) for k, v in m.items()}
    return r


class ResultsDB:
    """Append-only JSONL store of result rows; see the module docstring for format and crash safety."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"ResultsDB({str(self.path)!r})"

    # ---- writing ------------------------------------------------------------------------------------------
    def append(self, row: dict) -> dict:
        """Validate and append one row (``created`` is filled in if absent); returns the stored row."""
        return self.append_many([row])[0]

    def append_many(self, rows) -> list[dict]:
        """Validate all rows first (nothing is written if one is bad), then append them with one write."""
        now = utc_now()
        clean = [validate_row({"created": now, **r} if isinstance(r, dict) else r) for r in rows]
        if not clean:
            return []
        data = "".join(_dumps(r) + "\n" for r in clean).encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        fd = os.open(self.path, flags, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._drop_partial_tail()
            written = os.write(fd, data)
            while written < len(data):  # regular files write fully; loop only for exotic filesystems
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)  # also releases the lock
        return clean

    def _drop_partial_tail(self) -> None:
        """Truncate a last line that has no newline (left by a hard kill mid-write)."""
        size = self.path.stat().st_size
        if size == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            pos, cut = size, 0
            while pos > 0:  # scan backwards for the last newline
                step = min(65536, pos)
                pos -= step
                f.seek(pos)
                k = f.read(step).rfind(b"\n")
                if k >= 0:
                    cut = pos + k + 1
                    break
        warnings.warn(
            f"{self.path}: removing a partial last line ({size - cut} bytes) from an interrupted write", stacklevel=4
        )
        os.truncate(self.path, cut)

    # ---- reading ------------------------------------------------------------------------------------------
    def rows(self) -> list[dict]:
        """All complete rows in file order ([] if the file does not exist)."""
        if not self.path.exists():
            return []
        lines = self.path.read_bytes().split(b"\n")
        if lines[-1].strip():
            warnings.warn(
                f"{self.path}: ignoring a partial last line ({len(lines[-1])} bytes) from an interrupted "
                "write; the next append removes it",
                stacklevel=2,
            )
        out = []
        for i, line in enumerate(lines[:-1], start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                raise CorruptFileError(f"{self.path} line {i} is not valid JSON; delete or fix that line") from None
        return out

    def done_keys(self) -> set[tuple[str, str, int]]:
        """Set of (method, config_hash, seed) that have at least one row."""
        return {(r["method"], r["config_hash"], int(r["seed"])) for r in self.rows()}

    def done(self, method: str, config_hash: str, seed: int, eval_sets=None) -> bool:
        """True if rows exist for (method, config_hash, seed) — and, if ``eval_sets`` is given, for all of them."""
        have = {
            r["eval_set"]
            for r in self.rows()
            if r["method"] == method and r["config_hash"] == config_hash and int(r["seed"]) == int(seed)
        }
        return bool(have) and (eval_sets is None or set(eval_sets) <= have)

    def to_frame(self) -> pd.DataFrame:
        """All rows as a flat DataFrame (``metrics`` spread into columns ``acc``, ``fpr95``, ...)."""
        return rows_to_frame(self.rows())


def rows_to_frame(rows: list[dict]) -> pd.DataFrame:
    """Flatten rows: every key except ``metrics`` is a column, and each metric becomes its own column."""
    flat = []
    for r in rows:
        d = {k: v for k, v in r.items() if k != "metrics"}
        for k, v in r.get("metrics", {}).items():
            d[f"metrics.{k}" if k in r else k] = v
        flat.append(d)
    base = [k for k in REQUIRED_KEYS if k != "metrics"]
    metric_cols = list(dict.fromkeys(k for ks in METRIC_KEYS.values() for k in ks))
    df = pd.DataFrame(flat)
    present = [c for c in metric_cols if c in df.columns]
    extras = [c for c in df.columns if c not in base and c not in metric_cols]
    return df.reindex(columns=base + present + extras)
