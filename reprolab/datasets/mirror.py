"""A lab's own copy of the course data: ``REPROLAB_MIRROR`` and ``REPROLAB_CHECKSUMS``.

``REPROLAB_MIRROR=<base URL>`` sends every dataset download of the kit (every entry of
:data:`reprolab.datasets.download.SOURCES`: CIFAR-10/100, DTD, Fashion-MNIST, SVHN, STL-10, CIFAR-10.1/-C,
ImageNet-A/-R/-V2) to ``<base URL>/<file name>`` instead of the publisher's host — the file name is the original
one (``cifar-10-python.tar.gz``, ``dtd-r1.0.1.tar.gz``, ``t10k-images-idx3-ubyte.gz`` ...). The checksums do not
change: the file must be the publisher's file, byte for byte, and is verified against the published MD5/SHA-256
exactly as from the original host. So a lab mirror is a folder of the original downloads behind any web server
(``python -m http.server 8000`` in that folder will do), and a tampered or truncated copy is refused.

``REPROLAB_CHECKSUMS=<file.json>`` (``{"<file name>": "md5:<hex>" | "sha256:<hex>", ...}``) replaces the published
checksum of the files it names, and adds one where the publisher lists none (CIFAR-10.1, ImageNet-A/-R/-V2). It is a
local file on purpose: a mirror cannot vouch for its own files; whoever sets the variable does. Uses: pin the
unpublished checksums of what the lab serves, accept a publisher's re-issued file, and the tests, which serve small
archives in the real formats whose checksums are, of course, not the published ones.

Neither changes where data land (the data roots, :mod:`.roots`) nor whether a download may happen
(``download=``, ``REPROLAB_OFFLINE``). CLIP's weights are not datasets: an offline lab copies a
``reprolab fetch --clip`` folder instead (README, "in a lab without internet").
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from reprolab.errors import ReprolabError

MIRROR_VAR = "REPROLAB_MIRROR"
CHECKSUMS_VAR = "REPROLAB_CHECKSUMS"
ALGORITHMS = ("md5", "sha1", "sha256")  # what pooch checks


def mirror() -> str | None:
    """The mirror's base URL (no trailing slash), or None when ``$REPROLAB_MIRROR`` is unset."""
    base = os.environ.get(MIRROR_VAR, "").strip().rstrip("/")
    if base and "://" not in base:
        raise ReprolabError(f"${MIRROR_VAR}={base!r} is not a URL; write e.g. http://lab-server:8000/reprolab-data")
    return base or None


def checksums() -> dict[str, str]:
    """``{file name: "algorithm:hex"}`` from ``$REPROLAB_CHECKSUMS`` ({} when unset); a bad file is one line."""
    path = os.environ.get(CHECKSUMS_VAR, "").strip()
    if not path:
        return {}
    try:
        table = json.loads(Path(path).expanduser().read_text())
    except (OSError, ValueError) as e:
        raise ReprolabError(f"${CHECKSUMS_VAR}={path} cannot be read ({type(e).__name__}); fix or unset it") from e
    bad = [
        k
        for k, v in (table.items() if isinstance(table, dict) else [("(not an object)", "")])
        if not (isinstance(v, str) and v.partition(":")[0] in ALGORITHMS and v.partition(":")[2])
    ]
    if bad:
        raise ReprolabError(
            f'${CHECKSUMS_VAR}={path}: entries must read "<file name>": "md5:<hex>" (or sha256:), not {bad[0]!r}'
        )
    return table


def resolve(src):
    """``src`` (a :class:`~reprolab.datasets.download.Source`) as it is fetched now: the mirror's URL when one is
    set, the replacement checksum when ``$REPROLAB_CHECKSUMS`` names the file."""
    base, table = mirror(), checksums()
    if base is None and src.fname not in table:
        return src
    url = f"{base}/{src.fname}" if base else src.url
    if src.fname not in table:
        return replace(src, url=url)
    return replace(src, url=url, known_hash=table[src.fname], size="")  # the published size is another file's


def settings_lines() -> list[str]:
    """What ``reprolab doctor`` says about the two settings (nothing when neither is set)."""
    lines = []
    if base := mirror():
        lines.append(
            f"downloads come from the mirror {base}/<file name> (${MIRROR_VAR}), verified as from the publishers"
        )
    if os.environ.get(CHECKSUMS_VAR, "").strip():
        table = checksums()
        lines.append(
            f"${CHECKSUMS_VAR}: {len(table)} checksums replace or add published ones "
            f"({', '.join(sorted(table)[:3])}{' ...' if len(table) > 3 else ''})"
        )
    return lines
