"""Where datasets live on disk, and the one-line error when they do not.

Search order for a data root: the ``root`` argument (a path, or several joined by ``os.pathsep``), else the
environment variable ``REPROLAB_DATA`` (same syntax), else ``./data/cache``. Each dataset loader then looks for
its own standard layout (torchvision's, class folders, or a zip of class folders) under every root, in order.
Downloads (``download=True``) go to the first root.
"""

from __future__ import annotations

import os
from pathlib import Path

from reprolab.errors import DatasetNotFoundError

DEFAULT_ROOT = Path("data") / "cache"
ENV_VAR = "REPROLAB_DATA"
REPO_DATA = Path(__file__).resolve().parents[2] / "data"  # small files shipped with the repo (class names, wnids)


def data_roots(root=None) -> list[Path]:
    """The list of directories searched, in order (explicit root, then $REPROLAB_DATA, then ./data/cache)."""
    if root is not None:
        parts = [root] if isinstance(root, Path) else str(root).split(os.pathsep)
    elif os.environ.get(ENV_VAR):
        parts = os.environ[ENV_VAR].split(os.pathsep)
    else:
        parts = [DEFAULT_ROOT]
    return [Path(p).expanduser() for p in parts if str(p)]


def download_root(root=None) -> Path:
    """First data root; created on demand because torchvision writes there."""
    path = data_roots(root)[0]
    path.mkdir(parents=True, exist_ok=True)
    return path


def not_found(name: str, looked: list[Path], how: str) -> DatasetNotFoundError:
    """Build the documented one-line error: which set, where we looked, how to get it."""
    shown = ", ".join(str(p) for p in looked) or "(no paths)"
    return DatasetNotFoundError(
        f"dataset '{name}' not found (looked in: {shown}); {how}; "
        f"or set root= (or ${ENV_VAR}) to the folder that holds it"
    )


def locate(name: str, roots: list[Path], candidates: list[str], how: str, test=None) -> Path:
    """Return the first ``root/candidate`` that exists (and passes ``test``), else raise :func:`not_found`."""
    looked = []
    for r in roots:
        for c in candidates:
            p = r / c
            looked.append(p)
            if p.exists() and (test is None or test(p)):
                return p
    raise not_found(name, looked, how)


def try_download(name: str, fn, how: str):
    """Run a torchvision/URL download; turn network failures into a DatasetNotFoundError (one line)."""
    try:
        return fn()
    except DatasetNotFoundError:
        raise
    except Exception as e:  # URLError, HTTPError, socket errors, checksum failures
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DatasetNotFoundError(f"downloading '{name}' failed ({type(e).__name__}: {msg}); {how}") from e
