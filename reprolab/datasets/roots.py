"""Where datasets live on disk, whether a missing one may be downloaded, and the one-line error when it is missing.

Data roots, searched in order: the ``root`` argument (a path, or several joined by ``os.pathsep``), else the
environment variable ``REPROLAB_DATA`` (same syntax), else the default, which never depends on the current folder:

* in a source checkout (the package sits beside ``pyproject.toml``): ``<checkout>/data/cache`` (git-ignored),
  then the course copy ``<checkout>/../shared/datasets`` when it exists;
* in an installed wheel: the per-user cache folder ``platformdirs.user_cache_path("reprolab") / "data"``.

Each loader looks for its own standard layout (torchvision's, class folders, or a zip of class folders) under every
root. Downloads go to the first root that can be written (a folder without any write permission bit, such as a
read-only course copy, is skipped even when running as root). ``download`` is ``"auto"`` (the default: fetch what is
missing, unless ``REPROLAB_OFFLINE`` is set), ``True`` (always try) or ``False`` (never; report where we looked).
Sets that Debian packages install (``dataset-fashion-mnist``) are also looked for under ``/usr/share/datasets``,
or ``REPROLAB_SYSTEM_DATA`` when that is set (point it at an empty folder to act as if the package were absent).
"""

from __future__ import annotations

import os
from pathlib import Path

from reprolab.errors import DatasetNotFoundError, ReprolabError

ENV_VAR = "REPROLAB_DATA"
OFFLINE_VAR = "REPROLAB_OFFLINE"
SYSTEM_VAR = "REPROLAB_SYSTEM_DATA"
SYSTEM_DATA = Path("/usr/share/datasets")
CHECKOUT = Path(__file__).resolve().parents[2]
REPO_DATA = CHECKOUT / "data"  # small files shipped with the repo (class names, wnids, manifests)
TRUE = ("1", "true", "yes", "on")
DOWNLOAD_HOW = "let it download on a machine with internet (download='auto', REPROLAB_OFFLINE unset)"


def in_checkout() -> bool:
    """True when the package runs from a source checkout (editable install or PYTHONPATH), not from a wheel."""
    return (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "reprolab" / "__init__.py").is_file()


def default_roots() -> list[Path]:
    """The data roots used when neither ``root`` nor ``$REPROLAB_DATA`` is given (see the module doc)."""
    if in_checkout():
        course = CHECKOUT.parent / "shared" / "datasets"
        return [REPO_DATA / "cache", *([course] if course.is_dir() else [])]
    import platformdirs

    return [platformdirs.user_cache_path("reprolab") / "data"]


def data_roots(root=None) -> list[Path]:
    """The list of directories searched, in order (explicit root, then $REPROLAB_DATA, then the default)."""
    if root is not None:
        parts = [root] if isinstance(root, Path) else str(root).split(os.pathsep)
    elif os.environ.get(ENV_VAR):
        parts = os.environ[ENV_VAR].split(os.pathsep)
    else:
        parts = default_roots()
    return [Path(p).expanduser() for p in parts if str(p)]


def system_dir(name: str) -> Path:
    """Where a Debian ``dataset-*`` package puts ``name`` ($REPROLAB_SYSTEM_DATA overrides /usr/share/datasets)."""
    return Path(os.environ.get(SYSTEM_VAR) or SYSTEM_DATA) / name


def allow_download(download) -> bool:
    """Resolve ``download`` (True / False / "auto") to whether a missing set may be fetched now."""
    if download == "auto":
        return os.environ.get(OFFLINE_VAR, "").strip().lower() not in TRUE
    if isinstance(download, bool):
        return download
    raise ReprolabError(f"download must be True, False or 'auto', got {download!r}")


def download_root(roots) -> Path:
    """The first of ``roots`` that exists or can be created, and can be written: downloads land there."""
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    for p in map(Path, roots):
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(p, os.W_OK) and p.stat().st_mode & 0o222:  # no write bit at all: a read-only copy, even for root
            return p
    shown = ", ".join(map(str, roots)) or "(no paths)"
    raise DatasetNotFoundError(
        f"no data root can be written (tried: {shown}); set ${ENV_VAR} to a folder you can write, or pass root="
    )


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


def find(roots: list[Path], candidates: list[str], test=Path.is_dir) -> Path | None:
    """The first ``root/candidate`` passing ``test``, or None (no error: the caller may download it)."""
    return next((r / c for r in roots for c in candidates if test(r / c)), None)
