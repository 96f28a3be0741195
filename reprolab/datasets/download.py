"""Downloads: one registry of sources (URL + checksum), fetched with pooch, put in place only when complete.

``SOURCES`` maps a key to a :class:`Source`. Where torchvision knows a set, its URL and MD5 are torchvision's own
class attributes (``CIFAR10.url``, ``DTD._URL``, ``FashionMNIST.resources`` ...), so there is one source of truth
and the files land in torchvision's layout, which the kit's loaders then read. The registry is a plain module-level
dict; ``REPROLAB_MIRROR`` (a lab's copy of the original files) and ``REPROLAB_CHECKSUMS`` change where an entry is
fetched from and which checksum it must match, at the moment of fetching (:mod:`.mirror`).

Why pooch rather than torchvision's ``download_url``: pooch streams into a temporary file, checks the checksum and
only then renames the file into place, so an interrupted or corrupt download leaves nothing; torchvision writes the
target in place. Archives are unpacked into a temporary folder next to their destination and renamed into place at
the end, so a data root never holds half a dataset; the archive is deleted afterwards (the unpacked folder is what
the loaders look for, so nothing is fetched twice). Every failure is one :class:`DatasetNotFoundError` line naming
the URL that was tried and the manual fix. ``REPROLAB_DOWNLOAD_TIMEOUT`` (seconds, default 30) bounds each wait.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from reprolab.datasets.mirror import resolve
from reprolab.errors import DatasetNotFoundError


@dataclass(frozen=True)
class Source:
    url: str
    known_hash: str | None  # "md5:..." / "sha256:..."; None only where the publisher lists none
    size: str = ""  # for the message, e.g. "163 MB"

    @property
    def fname(self) -> str:
        return self.url.rsplit("/", 1)[-1].split("?", 1)[0]


def _torchvision_sources() -> dict[str, Source]:
    import torchvision.datasets as tvd

    out = {
        "cifar10": Source(tvd.CIFAR10.url, f"md5:{tvd.CIFAR10.tgz_md5}", "163 MB"),
        "cifar100": Source(tvd.CIFAR100.url, f"md5:{tvd.CIFAR100.tgz_md5}", "161 MB"),
        "stl10": Source(tvd.STL10.url, f"md5:{tvd.STL10.tgz_md5}", "2.6 GB"),
        "dtd": Source(tvd.DTD._URL, f"md5:{tvd.DTD._MD5}", "625 MB"),
    }
    url, _, md5 = tvd.SVHN.split_list["test"]
    out["svhn/test_32x32.mat"] = Source(url, f"md5:{md5}", "64 MB")
    sizes = {"train-images": "26 MB", "t10k-images": "4.4 MB"}
    for fname, md5 in tvd.FashionMNIST.resources:
        out[f"fashion_mnist/{fname}"] = Source(
            tvd.FashionMNIST.mirrors[0] + fname, f"md5:{md5}", sizes.get(fname[:11], "")
        )
    return out


CIFAR10_1 = "https://raw.githubusercontent.com/modestyachts/CIFAR-10.1/master/datasets/"
IMAGENET_OOD = "https://people.eecs.berkeley.edu/~hendrycks/"
SOURCES: dict[str, Source] = {
    **_torchvision_sources(),
    # CIFAR-10.1: the repository publishes no checksums (pooch prints the SHA-256 it got)
    **{
        f"cifar10_1/{f}": Source(CIFAR10_1 + f, None, "6 MB")
        for v in ("v4", "v6")
        for f in (f"cifar10.1_{v}_data.npy", f"cifar10.1_{v}_labels.npy")
    },
    # CIFAR-10-C: MD5 as listed on Zenodo record 2535967
    "cifar10c": Source(
        "https://zenodo.org/records/2535967/files/CIFAR-10-C.tar", "md5:56bf5dcef84df0e2308c6dcbcbbd8499", "2.9 GB"
    ),
    "imagenet_a": Source(IMAGENET_OOD + "imagenet-a.tar", None, "0.7 GB"),
    "imagenet_r": Source(IMAGENET_OOD + "imagenet-r.tar", None, "2.1 GB"),
    "imagenet_v2": Source(
        "https://huggingface.co/datasets/vaishaal/ImageNetV2/resolve/main/imagenetv2-matched-frequency.tar.gz",
        None,
        "1.2 GB",
    ),
}


def say(msg: str) -> None:
    """Download messages: one ``[reprolab]`` line each, like ``reprolab run``'s log."""
    print(f"[reprolab] {msg}", flush=True)


def done(name: str, keys: list[str], where: Path) -> None:
    """The one line after a download: what came, from where, how it was checked, where it is now."""
    srcs = [resolve(SOURCES[k]) for k in keys]
    size = " + ".join(s.size for s in srcs if s.size) or "size not published"
    checks = {
        s.known_hash.split(":")[0].upper() + " verified" if s.known_hash else "no published checksum" for s in srcs
    }
    host = srcs[0].url.rsplit("/", 1)[0]
    files = ", ".join(s.fname for s in srcs)
    say(
        f"'{name}' was not on this machine: downloaded {files} ({size}, {', '.join(sorted(checks))}) from {host}/ into {where}"
    )


def reason(err: Exception, timeout: float | None = None) -> str:
    """A short reason for a failed download (requests' and pooch's own messages run over several lines)."""
    import requests

    text = " ".join(str(err).split())
    if isinstance(err, requests.exceptions.Timeout):
        return f"no answer within {timeout:g} s" if timeout else "timed out"
    if isinstance(err, requests.exceptions.ConnectionError):
        return "cannot connect (no internet, or the host is unreachable)"
    if "does not match the known hash" in text:
        return "checksum mismatch: the file is corrupt or has changed; it was deleted"
    return f"{type(err).__name__}: {text[:160] or 'no message'}"


def failed(name: str, src: Source, err: Exception, how: str, timeout: float | None = None) -> DatasetNotFoundError:
    return DatasetNotFoundError(f"downloading '{name}' from {src.url} failed ({reason(err, timeout)}); {how}")


def _retrieve(name: str, key: str, folder: Path, how: str) -> Path:
    """Download ``SOURCES[key]`` into ``folder`` with a progress bar and its checksum; the verified file's path."""
    import pooch
    from tqdm.auto import tqdm

    if key not in SOURCES:
        raise DatasetNotFoundError(f"'{name}' has no download source '{key}'; {how}")
    src = resolve(SOURCES[key])
    timeout = float(os.environ.get("REPROLAB_DOWNLOAD_TIMEOUT") or 30)
    # total=1 until pooch sets the real size (pooch tests the bar for truth); delay: no bar when it fails at once
    bar = tqdm(total=1, unit="B", unit_scale=True, desc=f"downloading {name}: {src.fname}", leave=False, delay=1)
    logger, level = pooch.get_logger(), pooch.get_logger().level
    logger.setLevel(logging.WARNING)  # the bar, then done()'s line or the error, say what happened
    try:
        got = pooch.retrieve(
            src.url,
            src.known_hash,
            fname=src.fname,
            path=folder,
            downloader=pooch.HTTPDownloader(progressbar=bar, timeout=timeout, chunk_size=1 << 16),
        )
    except Exception as e:  # network errors, HTTP errors, checksum mismatch: pooch has removed its temporary file
        raise failed(name, src, e, how, timeout) from e
    finally:
        bar.close()
        logger.setLevel(level)
    return Path(got)


def _staging(root: Path, name: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".partial-{name.replace(':', '_')}-", dir=root))


def place(src: Path, dest: Path) -> None:
    """Move a finished file or folder into place; an existing folder is merged file by file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir() and dest.is_dir():
        for child in src.iterdir():
            place(child, dest / child.name)
    elif not dest.exists():
        os.replace(src, dest)


def unpack(archive: Path, out: Path) -> None:
    """Extract a zip or a (compressed) tar into ``out``; tar members may not leave ``out`` (tarfile's data filter)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            z.extractall(out)
        return
    with tarfile.open(archive) as t:
        if hasattr(tarfile, "data_filter"):
            t.extractall(out, filter="data")
        else:  # Python < 3.10.12 has no extraction filters
            t.extractall(out)  # noqa: S202


def fetch_files(name: str, keys: list[str], root: Path, dest: str, how: str) -> Path:
    """Download the files of ``keys`` into ``root/dest`` (all of them or none); returns that folder."""
    tmp = _staging(root, name)
    try:
        for k in keys:
            _retrieve(name, k, tmp / "files", how)
        place(tmp / "files", root / dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    done(name, keys, root / dest)
    return root / dest


def fetch_archive(name: str, key: str, root: Path, top: str, how: str, dest: str | None = None) -> Path:
    """Download ``SOURCES[key]`` (a tar/tar.gz/zip holding folder ``top``) and unpack ``top`` to ``root/dest``."""
    tmp = _staging(root, name)
    final = root / (dest or top)
    try:
        archive = _retrieve(name, key, tmp, how)
        out = tmp / "unpacked"
        try:
            unpack(archive, out)
        except Exception as e:  # a truncated or corrupt archive (tar, gzip, zlib, zip errors)
            raise failed(name, resolve(SOURCES[key]), e, how) from e
        if not (out / top).is_dir():
            err = FileNotFoundError(f"{archive.name} holds no folder '{top}/'")
            raise failed(name, resolve(SOURCES[key]), err, how)
        place(out / top, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    done(name, [key], final)
    return final
