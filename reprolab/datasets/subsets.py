"""Deterministic class-balanced subsets ("fast mode") and the JSON manifests that record them.

``balanced_indices(labels, n, seed)``: for C classes, class k gets ``n // C`` items (the first ``n % C`` classes one
more), drawn without replacement by ``numpy.random.default_rng(seed)``; unlabelled (OOD, label -1) sets get a
uniform draw of ``n``. The result is sorted, so the same (labels, n, seed) always gives the same list.
A manifest stores the indices *and* the item ids (file names) plus a sha256 of both, so a subset can be
written under ``data/manifests/``, committed, and re-read bit-for-bit on another machine.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from reprolab.datasets.roots import REPO_DATA
from reprolab.errors import CorruptFileError, ReprolabError

MANIFEST_DIR = REPO_DATA / "manifests"


def balanced_indices(labels, n: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of a class-balanced subset of size ``n`` (all indices when n is None or >= len)."""
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    if n <= 0:
        raise ReprolabError(f"subset must be a positive number of images, got {n}; pass subset=None for all")
    rng = np.random.default_rng(seed)
    classes = [c for c in np.unique(labels) if c >= 0]
    if not classes:  # OOD: no classes to balance
        return np.sort(rng.choice(len(labels), size=n, replace=False))
    per, extra = divmod(n, len(classes))
    picks = []
    for k, c in enumerate(classes):
        members = np.flatnonzero(labels == c)
        want = per + (1 if k < extra else 0)
        if want > len(members):
            raise ReprolabError(
                f"subset={n} needs {want} images of class {c} but the set has {len(members)}; pick a smaller subset"
            )
        picks.append(rng.choice(members, size=want, replace=False))
    return np.sort(np.concatenate(picks))


def _digest(indices: list[int], ids: list[str]) -> str:
    blob = json.dumps({"indices": indices, "ids": ids}, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def manifest(ds) -> dict:
    """The manifest dict of an ImageSet (name, split, subset, seed, size, key, indices, ids, sha256)."""
    idx = [int(i) for i in ds.indices]
    ids = ds.ids
    return {
        "name": ds.name,
        "split": ds.split,
        "subset": ds.subset,
        "seed": ds.seed,
        "size": ds.size,
        "key": ds.key,
        "n": len(idx),
        "indices": idx,
        "ids": ids,
        "sha256": _digest(idx, ids),
    }


def default_manifest_path(ds) -> Path:
    return MANIFEST_DIR / (re.sub(r"[^A-Za-z0-9_.-]+", "_", ds.key) + ".json")


def save_manifest(ds, path=None) -> Path:
    """Write ``manifest(ds)`` as JSON (default: data/manifests/<key>.json) and return the path."""
    path = Path(path) if path is not None else default_manifest_path(ds)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest(ds), indent=1) + "\n")
    return path


def read_manifest(path) -> dict:
    """Load and verify a manifest (sha256 of its indices and ids); raise CorruptFileError if it does not match."""
    path = Path(path)
    try:
        m = json.loads(path.read_text())
        ok = _digest(m["indices"], m["ids"]) == m["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CorruptFileError(f"manifest {path} is unreadable ({e}); re-create it with save_manifest") from e
    if not ok:
        raise CorruptFileError(f"manifest {path} fails its sha256 check; re-create it with save_manifest")
    return m


def indices_from_manifest(m: dict, all_ids: list[str]) -> np.ndarray:
    """Check that the manifest's ids match this copy of the dataset and return its indices."""
    idx = np.asarray(m["indices"], dtype=np.int64)
    if len(idx) and (idx.max() >= len(all_ids) or idx.min() < 0):
        raise ReprolabError(
            f"manifest for '{m['name']}' has indices beyond this copy's {len(all_ids)} images; "
            "use the same dataset copy or re-create the manifest"
        )
    bad = [i for i, f in zip(idx, m["ids"]) if all_ids[i] != f]
    if bad:
        raise ReprolabError(
            f"manifest for '{m['name']}' names different files than this copy "
            f"(first: index {bad[0]}); use the same dataset copy or re-create the manifest"
        )
    return idx
