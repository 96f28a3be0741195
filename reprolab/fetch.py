"""``reprolab fetch``: everything a machine without internet needs, downloaded once into one folder.

    reprolab fetch --clip --data course --to DIR

* ``--clip``: OpenAI's CLIP ViT-B/32 weights, through open_clip's own downloader (Hugging Face hub, progress bar),
  kept as the plain file ``DIR/clip/ViT-B-32-quickgelu-openai.safetensors`` (its name tells the loader it needs
  QuickGELU; see :mod:`reprolab.encoders.clip_weights`).
* ``--data course``: every set the quickstart and the notebooks read (:data:`COURSE_SETS`), through the datasets'
  own downloaders (``load_dataset(name, split, root=DIR, download=True)``); ``--data a,b`` names sets,
  ``--data none`` fetches none. Sets the kit generates (``cifar10c:*`` from CIFAR-10, ``sklearn_digits`` from
  scikit-learn) need nothing.
* ``DIR/manifest.json``: SHA-256 and size of every file in DIR, and what was fetched.

The one setting that makes later runs use DIR, here or on any machine DIR is copied to: ``REPROLAB_DATA=DIR``
(datasets are searched there, and ``clip``/``auto`` find the weights in ``DIR/clip/``). ``reprolab doctor`` finds
a fetched folder among the data roots and checks it against its manifest (sizes; ``--verify`` here re-hashes).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
from pathlib import Path

from reprolab.datasets import REGISTRY, load_dataset
from reprolab.datasets.roots import SYSTEM_VAR
from reprolab.encoders.clip_weights import FETCHED_FILE, download_openai, fetched_file
from reprolab.errors import ReprolabError

MANIFEST = "manifest.json"
# (name, split) the quickstart (configs/quickstart.yaml) and the notebooks load; tests/test_fetch.py checks the list
COURSE_SETS = (
    ("cifar10", "train"),
    ("cifar10", "test"),
    ("dtd10", "test"),
    ("fashion_mnist", "test"),
    ("fashion_mnist_ood", "test"),  # the same files as fashion_mnist's test split: a check, not a second download
)
GENERATED = ("cifar10c:", "sklearn_digits", "uniform_noise")  # made by the kit: nothing to download


def _sets(data: str) -> list[tuple[str, str]]:
    if data == "course":
        return list(COURSE_SETS)
    if data in ("none", ""):
        return []
    out = []
    for name in (n.strip() for n in data.split(",") if n.strip()):
        if name not in REGISTRY:
            raise ReprolabError(f"--data {name}: unknown dataset; use 'course', 'none' or names from `reprolab doctor`")
        out += [(name, s) for s in REGISTRY[name].splits if s in ("train", "test")]
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.name != MANIFEST and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("reprolab")
    except metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        return "unknown"


@contextlib.contextmanager
def _no_system_copies(root: Path):
    """Hide system-wide dataset packages (``/usr/share/datasets``) so that every set lands in ``root`` itself."""
    old = os.environ.get(SYSTEM_VAR)
    os.environ[SYSTEM_VAR] = str(root / ".no-system-data")
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(SYSTEM_VAR, None)
        else:
            os.environ[SYSTEM_VAR] = old


def fetch(to, *, clip: bool = False, data: str = "course") -> dict:
    """Download into ``to``, write ``to/manifest.json`` and return it (see the module docstring)."""
    root = Path(to).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    sets = _sets(data)
    weights = fetched_file(root)
    if clip and weights is None:
        print("[reprolab] fetching CLIP ViT-B/32 (OpenAI) weights, about 600 MB …", flush=True)
        weights = download_openai(root / FETCHED_FILE)
    elif clip:
        print(f"[reprolab] CLIP weights already in {weights}")
    status = {}
    for name, split in sets:
        print(f"[reprolab] fetching {name} ({split}) …", flush=True)
        try:
            with _no_system_copies(root):  # a Debian copy here is no copy in DIR: fetch it into DIR
                n = len(load_dataset(name, split, root=str(root), download=True))
            status[f"{name}/{split}"] = f"ok, {n} images"
        except ReprolabError as exc:
            status[f"{name}/{split}"] = f"failed: {exc}"
            print(f"[reprolab] {name} ({split}) not fetched: {exc}")
    manifest = {
        "created_by": "reprolab fetch",
        "reprolab": _version(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "setting": "REPROLAB_DATA",
        "clip": None
        if weights is None
        else {"file": weights.relative_to(root).as_posix(), "arch": "ViT-B-32-quickgelu", "pretrained": "openai"},
        "datasets": status,
        "files": {
            p.relative_to(root).as_posix(): {"sha256": sha256(p), "bytes": p.stat().st_size} for p in _files(root)
        },
    }
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, root / MANIFEST)
    return manifest


def folder_status(root: Path, verify: bool = False) -> str | None:
    """One line about a fetched folder (None if ``root`` holds no manifest): what it holds, and whether every file
    is still there with its size (``verify``: its SHA-256)."""
    path = Path(root) / MANIFEST
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if m.get("created_by") != "reprolab fetch":
        return None
    bad = []
    for rel, info in m.get("files", {}).items():
        p = Path(root) / rel
        if not p.is_file() or p.stat().st_size != info["bytes"] or (verify and sha256(p) != info["sha256"]):
            bad.append(rel)
    sets = sorted({k.split("/")[0] for k, v in m.get("datasets", {}).items() if v.startswith("ok")})
    held = (["CLIP ViT-B/32 weights"] if m.get("clip") else []) + sets
    check = "SHA-256 verified" if verify else "sizes match manifest.json"
    state = (
        f"all {len(m.get('files', {}))} files present, {check}"
        if not bad
        else f"{len(bad)} files missing or changed: {', '.join(bad[:3])}"
    )
    return f"fetched folder {root} ({m.get('created', '?')}): {', '.join(held) or 'nothing'}; {state}"


def main(to, clip: bool, data: str, verify: bool = False) -> int:
    if verify:
        line = folder_status(Path(to).expanduser().resolve(), verify=True)
        if line is None:
            raise ReprolabError(f"{to} holds no {MANIFEST} written by reprolab fetch; run reprolab fetch --to {to}")
        print(line)
        return 0 if "missing or changed" not in line else 1
    m = fetch(to, clip=clip, data=data)
    root = Path(to).expanduser().resolve()
    failed = [k for k, v in m["datasets"].items() if not v.startswith("ok")]
    print(f"[reprolab] {root}/{MANIFEST}: {len(m['files'])} files with SHA-256")
    print(
        f"to use this folder here or on any machine you copy it to (then give its new path):\n  export REPROLAB_DATA={root}"
    )
    print(f"  (Windows: set REPROLAB_DATA={root})")
    if failed:
        raise ReprolabError(f"not fetched: {', '.join(failed)} (reasons above); run the same command again when online")
    return 0
