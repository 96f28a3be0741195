"""The course part of ``reprolab bench``: wall time and peak memory of the quickstart run and of every notebook.

Each is run in its own subprocess (``python -m reprolab run configs/quickstart.yaml``; notebooks through nbclient),
pinned to at most 2 CPU cores where the OS allows it (the course's target machine). Peak memory is the largest
*sum* of resident set sizes over the subprocess and all its descendants (the notebook kernel is one), polled every
0.1 s with psutil — an upper bound, since pages shared between processes are counted once per process.
Notebooks run in FAST mode: their first cell defaults to ``FAST = True`` (CPU sizes) and ``REPROLAB_FAST=1`` is set
in their environment as well, for notebooks or tests that read it. They execute from an in-memory copy, so the files
on disk are never rewritten, and ``REPROLAB_RUNS`` points at an empty temporary folder, so notebook 07's resumable
run is timed from scratch (not resumed from an earlier ``runs/nb07-fast-*``), and the course's shared feature cache
(``REPROLAB_RUNS/cache/``) and trained runs (``REPROLAB_RUNS/checkpoints/``) start empty, as on a student's first
pass through the course: the first notebook that trains a run pays for it, later ones with the same settings load it.

``encoder="vit-b-32"`` times the same course with a CLIP-shaped encoder: a random-init ``ViT-B-32-quickgelu``
written once by :func:`reprolab.encoders.testing.save_random_clip` (to ``~/.cache/reprolab``), which the notebooks'
``ENCODER = "auto"`` loads through ``REPROLAB_CLIP_WEIGHTS`` and the quickstart through ``--set encoder=...``.
Its accuracies mean nothing; its time and memory are CLIP ViT-B/32's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: reprolab/bench/course.py → ../../
FAST_ENV = {"REPROLAB_FAST": "1"}

NB_SCRIPT = """
import sys, nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=3600, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[2]}}).execute()
"""


def shared_data() -> str | None:
    """REPROLAB_DATA, else REPROLAB_SHARED, else ../shared/datasets beside the repository (as tests/conftest.py)."""
    for var in ("REPROLAB_DATA", "REPROLAB_SHARED"):
        if os.environ.get(var):
            return os.environ[var]
    guess = ROOT.parent / "shared" / "datasets"
    return str(guess) if guess.exists() else None


def _pin(cores: int):
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))[:cores]
    return lambda: os.sched_setaffinity(0, cpus)


def run_measured(
    cmd: list[str], env: dict | None = None, cwd=None, cores: int = 2, poll: float = 0.1, timeout: float | None = None
) -> dict:
    """Run ``cmd``; return wall_s, peak_rss_mb (summed over the process tree), returncode, output tail."""
    import psutil

    full_env = dict(os.environ, **(env or {}))
    with tempfile.TemporaryFile(mode="w+") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            env=full_env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_pin(cores) if os.name == "posix" else None,
        )
        peak, ps = 0, psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [ps, *ps.children(recursive=True)]
                rss = 0
                for p in tree:
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak = max(peak, rss)
            except psutil.Error:
                pass
            if timeout is not None and time.perf_counter() - t0 > timeout:
                proc.kill()
                break
            time.sleep(poll)
        proc.wait()
        wall = time.perf_counter() - t0
        log.seek(0)
        tail = log.read()[-2000:]
    return dict(wall_s=wall, peak_rss_mb=peak / 2**20, returncode=proc.returncode, tail=tail)


def quickstart(config: Path | None = None, cores: int = 2, encoder: str | None = None) -> dict:
    config = Path(config or ROOT / "configs" / "quickstart.yaml")
    if not config.exists():
        return dict(error=f"{config} not found")
    env = {"REPROLAB_DATA": shared_data()} if shared_data() else {}
    extra = ["--set", f"encoder={encoder}"] if encoder else []
    with tempfile.TemporaryDirectory() as out:
        res = run_measured(
            [sys.executable, "-m", "reprolab", "run", str(config), "--out", out, *extra],
            env=env,
            cwd=str(ROOT),
            cores=cores,
        )
    return res


def clip_shaped_weights() -> Path:
    """The CLIP-shaped random-init ViT-B-32 file (written once, ~600 MB)."""
    from reprolab.encoders.standin_weights import cache_dir
    from reprolab.encoders.testing import save_random_clip

    return save_random_clip(cache_dir() / "vit-b-32-quickgelu-random-init-s0.safetensors")


def notebooks(folder: Path | None = None, cores: int = 2, env_extra: dict | None = None) -> dict:
    """{name: run_measured result} for every notebooks/*.ipynb, executed in a copy (the originals stay as they are)."""
    folder = Path(folder or ROOT / "notebooks")
    paths = sorted(folder.glob("*.ipynb"))
    if not paths:  # a silent 0 s course is worse than no figure
        raise FileNotFoundError(f"no notebooks in {folder}: run `reprolab bench` from a source checkout")
    env = dict(FAST_ENV, **({"REPROLAB_DATA": shared_data()} if shared_data() else {}), **(env_extra or {}))
    results = {}
    with tempfile.TemporaryDirectory() as runs:  # notebook 07's run starts fresh, as a student's first one does
        env["REPROLAB_RUNS"] = runs
        for p in paths:
            results[p.name] = run_measured(
                [sys.executable, "-c", NB_SCRIPT, str(p), str(folder)], env=env, cwd=str(folder), cores=cores
            )
    return results


def course(cores: int = 2, encoder: str = "standin") -> dict:
    """The course keys of the bench JSON (see :mod:`reprolab.bench.suite`); ``encoder="vit-b-32"``: the
    CLIP-shaped keys (``clip_shaped_*``) instead of the stand-in's."""
    if encoder == "vit-b-32":
        w = clip_shaped_weights()
        q = quickstart(cores=cores, encoder=f"openclip:ViT-B-32-quickgelu:{w}")
        nbs = notebooks(cores=cores, env_extra={"REPROLAB_CLIP_WEIGHTS": str(w)})
        return {f"clip_shaped_{k}": v for k, v in _summary(q, nbs).items()}
    return _summary(quickstart(cores=cores), notebooks(cores=cores))


def _summary(q: dict, nbs: dict) -> dict:
    out = dict(
        quickstart_s=q.get("wall_s"),
        quickstart_peak_rss_mb=q.get("peak_rss_mb"),
        quickstart_ok=q.get("returncode") == 0,
        notebooks_s={k: v["wall_s"] for k, v in nbs.items()},
        notebooks_peak_rss_mb=max((v["peak_rss_mb"] for v in nbs.values()), default=None),
        notebooks_ok={k: v["returncode"] == 0 for k, v in nbs.items()},
    )
    out["notebooks_s"]["total"] = sum(v["wall_s"] for v in nbs.values())
    failed = {"quickstart": q} if q.get("returncode") not in (0, None) or "error" in q else {}
    failed.update({k: v for k, v in nbs.items() if v["returncode"] != 0})
    out["course_failures"] = {k: v.get("tail", v.get("error", ""))[-600:] for k, v in failed.items()}
    return out
