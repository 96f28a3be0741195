"""Where CLIP's weights are on disk, and which activation a local weights file needs.

**Which file.** ``clip``/``auto`` look, in order, at ``$REPROLAB_CLIP_WEIGHTS`` (a file), at
``<root>/clip/ViT-B-32-quickgelu-openai.safetensors`` in each data root (``$REPROLAB_DATA``) (what ``reprolab fetch
--clip --to DIR`` writes, so ``REPROLAB_DATA=DIR`` is the one setting an offline machine needs), then at open_clip's
Hugging Face cache; ``clip`` downloads into that cache when none is found and the machine is online.

**Which activation (the rule).** OpenAI trained its CLIPs with QuickGELU (x·σ(1.702x)); most later open_clip
weights use GELU. A state dict does not record its activation, so for a local file the kit decides, in order:

1. the architecture says it: ``openclip:ViT-B-32-quickgelu:/path`` → QuickGELU; ``openclip:ViT-B-32-gelu:/path``
   (a kit spelling) → GELU, as written;
2. a TorchScript archive (a zip holding ``constants.pkl`` / ``code/``) is OpenAI's own release format → QuickGELU;
3. the file's name or its folders' names (the last four path parts, so a Hugging Face cache path counts) contain
   ``openai`` → QuickGELU; or contain an open_clip pretrained tag of that architecture, or its Hugging Face repo
   name (``laion2b_s34b_b79k``, ``CLIP-ViT-B-32-laion2B-s34B-b79K``, ``vit_base_patch32_clip_224.metaclip_400m``) →
   that tag's own ``quick_gelu`` setting from open_clip's table;
4. otherwise the file is refused with a one-line error naming the two spellings of step 1 — except the file in
   ``$REPROLAB_CLIP_WEIGHTS`` or a fetch folder, which by definition holds OpenAI's ViT-B/32 (what ``clip``
   means) and so gets QuickGELU.

A checksum rule (known SHA-256 of OpenAI's files) was not added: the hashes could not be verified from this
offline machine, and the name rule already covers open_clip's and OpenAI's own file names.

May import :mod:`reprolab.errors` and ``reprolab.datasets.data_roots`` (the same layer; where a fetch folder is),
and open_clip, huggingface_hub.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

CLIP_ARCH = "ViT-B-32"
FETCHED_FILE = Path("clip") / "ViT-B-32-quickgelu-openai.safetensors"  # relative to a `reprolab fetch` folder
HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def is_torchscript(path) -> bool:
    """True for a TorchScript archive (OpenAI's ``.pt`` release format), False for a state dict."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower())


def _tag_table(arch: str) -> dict[str, bool]:
    """{normalised tag or HF repo name: quick_gelu} for the pretrained tags open_clip lists for ``arch``."""
    import open_clip

    base = arch.removesuffix("-quickgelu")
    models = [m for m in (base, base + "-quickgelu") if open_clip.list_pretrained_tags_by_model(m)]
    pairs = [(m, t) for m in models for t in open_clip.list_pretrained_tags_by_model(m)]
    if not pairs:  # an architecture without tags of its own: any open_clip tag may name the file
        pairs = list(open_clip.list_pretrained())
    table: dict[str, bool] = {}
    for m, t in pairs:
        cfg = open_clip.get_pretrained_cfg(m, t) or {}
        quick = bool(cfg.get("quick_gelu", False)) or m.endswith("-quickgelu")
        repo = cfg.get("hf_hub", "").rstrip("/").rpartition("/")[2]
        for key in (_norm(t), _norm(repo)):
            if len(key) >= 5:  # short tags ("v1", "meta") would match ordinary words
                table[key] = table.get(key, False) or quick
    return table


def quickgelu_for(path, arch: str) -> bool | None:
    """The rule above, steps 1–3: True (QuickGELU), False (GELU) or None (cannot tell)."""
    if arch.endswith("-quickgelu"):
        return True
    if arch.endswith("-gelu"):
        return False
    if is_torchscript(path):
        return True
    tail = _norm("/".join(Path(path).resolve().parts[-4:]))
    if "openai" in tail:
        return True
    found = {quick for key, quick in _tag_table(arch).items() if key in tail}
    return found.pop() if len(found) == 1 else None


def data_roots() -> list[Path]:
    """The data roots the datasets search (``$REPROLAB_DATA``, else the default): a fetch folder is one of them."""
    from reprolab.datasets import data_roots as roots  # same layer; the one definition of where data live

    return roots()


def local_clip_weights() -> tuple[Path | None, str]:
    """(file, where it was named) for OpenAI's ViT-B/32 on this machine, without the network; (None, "") if none."""
    env = os.environ.get("REPROLAB_CLIP_WEIGHTS")
    if env and env != "openai":
        return Path(env).expanduser(), "REPROLAB_CLIP_WEIGHTS"
    for root in data_roots():
        if (found := fetched_file(root)) is not None:
            return found, f"fetched folder {root}"
    return None, ""


def fetched_file(root: Path) -> Path | None:
    """The weights ``reprolab fetch --clip`` wrote under ``root``, if any."""
    for suffix in (".safetensors", ".bin", ".pt"):  # .bin/.pt: what the hub or OpenAI's URL had
        if (Path(root) / FETCHED_FILE).with_suffix(suffix).is_file():
            return (Path(root) / FETCHED_FILE).with_suffix(suffix)
    return None


def hf_cached_openai() -> str | None:
    """Path of OpenAI's ViT-B/32 weights in open_clip's Hugging Face cache, or None (never downloads)."""
    try:
        import open_clip
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    hub = (open_clip.get_pretrained_cfg(CLIP_ARCH + "-quickgelu", "openai") or {}).get("hf_hub", "").rstrip("/")
    for fname in HF_FILES if hub else ():
        hit = try_to_load_from_cache(hub, fname)
        if isinstance(hit, str) and os.path.isfile(hit):
            return hit
    return None


def download_openai(dest: Path) -> Path:
    """Download OpenAI's ViT-B/32 weights with open_clip's own downloader (Hugging Face hub, progress bar) and
    move the file to ``dest`` (a plain file, so the folder can be copied or zipped to machines without internet)."""
    import shutil
    import tempfile

    import open_clip

    cfg = open_clip.get_pretrained_cfg(CLIP_ARCH + "-quickgelu", "openai")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmp:
        got = Path(open_clip.pretrained.download_pretrained(cfg, cache_dir=tmp))
        if got.suffix != dest.suffix:  # the hub had only the .bin: keep open_clip's format, name it by its origin
            dest = dest.with_suffix(got.suffix)
        shutil.move(str(got.resolve()), dest)  # the hub's cache links snapshots/…/file to blobs/<hash>: move the blob
    return dest
