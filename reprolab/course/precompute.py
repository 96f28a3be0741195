"""``reprolab precompute --encoder clip --course --to DIR``: a teacher's shortcut for a lab of CPU laptops.

On one machine (a GPU makes it minutes), every course notebook is executed once, headless, with its parameters
cell set to the chosen encoder (and FAST, unless ``--full``) and ``REPROLAB_PRECOMPUTED=DIR``. Each training
cell goes through :func:`reprolab.course.shared.course_fit`, which saves the finished run's trained tensors,
loss history and tracked accuracies under ``DIR/checkpoints/``; every cached feature lands in
``DIR/cache/<encoder id>/`` and notebook 07's run folder in ``DIR/runs/``. ``DIR/precomputed.json`` records what
was run, with which encoder, and how long each notebook took.

Students copy DIR, set ``REPROLAB_PRECOMPUTED=DIR`` and run the same notebooks with the same encoder and FAST
setting: training cells load the teacher's runs and say so ("loaded the reprogrammer precomputed (…)"),
evaluations hit the cache, and the α slider, the drift map and the OOD explorer are there in seconds. Any
training cell can still be re-run for real (``retrain=True`` trains and overwrites that run in the student's copy;
without the variable, runs go to the student's own ``runs/``). A run whose settings the student changed is not in
DIR, so it is trained (and added) — never silently replaced by another run's weights.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from reprolab.errors import ReprolabError
from reprolab.experiment.run_folder import resolve_encoder_id


def parametrise(nb, encoder: str, fast: bool):
    """Set ``ENCODER`` and ``FAST`` in the notebook's ``parameters`` cell (in memory)."""
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ReprolabError("notebook has no cell tagged 'parameters'; tag the cell that sets FAST and ENCODER")
    src = cells[0].source
    src = re.sub(r"^FAST = .*$", f"FAST = {bool(fast)}", src, count=1, flags=re.M)
    if re.search(r"^ENCODER = ", src, flags=re.M):
        src = re.sub(r"^ENCODER = .*$", f"ENCODER = {encoder!r}", src, count=1, flags=re.M)
    else:
        src += f"\nENCODER = {encoder!r}"
    cells[0].source = src
    return nb


def execute(path: Path, encoder: str, fast: bool, env: dict, timeout: int = 7200) -> dict:
    """Run one notebook in a fresh kernel with ``env`` added to its environment; returns seconds and outcome."""
    import nbformat
    from nbclient import NotebookClient

    nb = parametrise(nbformat.read(path, as_version=4), encoder, fast)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment when it starts
    t0 = time.perf_counter()
    try:
        NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        ).execute()
        err = None
    except Exception as exc:  # a failing cell: report it, keep what the other notebooks saved
        err = f"{type(exc).__name__}: {str(exc)[-500:]}"
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return dict(seconds=round(time.perf_counter() - t0, 1), error=err)


def course_notebooks(folder=None, only=None) -> list[Path]:
    """The course notebooks (``NN_*.ipynb`` in ``folder``, default the repo's notebooks/); ``only``: NN prefixes."""
    folder = Path(folder) if folder else Path(__file__).resolve().parents[2] / "notebooks"
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if p.name[:2] in set(only)]
    if not paths:
        raise ReprolabError(f"no course notebooks found in {folder}{f' for {only}' if only else ''}")
    return paths


def precompute(to, encoder: str = "clip", fast: bool = True, folder=None, only=None, log=print) -> dict:
    """Execute the course notebooks into ``to`` (see the module docstring); returns the manifest written there."""
    to = Path(to).expanduser().resolve()
    to.mkdir(parents=True, exist_ok=True)
    paths = course_notebooks(folder, only)
    encoder_id = resolve_encoder_id(encoder)  # fails now, with the fix, when the weights are missing
    log(f"[precompute] {len(paths)} notebooks with {encoder} [{encoder_id}], FAST={fast}, into {to}")
    manifest = dict(encoder=encoder, encoder_id=encoder_id, fast=fast, created=time.strftime("%Y-%m-%d %H:%M:%S"))
    manifest["notebooks"] = {}
    for p in paths:
        res = execute(p, encoder, fast, {"REPROLAB_PRECOMPUTED": str(to)})
        manifest["notebooks"][p.name] = res
        log(f"[precompute] {p.name}: {res['seconds']:.0f} s" + (f" — FAILED: {res['error']}" if res["error"] else ""))
        (to / "precomputed.json").write_text(json.dumps(manifest, indent=2))
    failed = [k for k, v in manifest["notebooks"].items() if v["error"]]
    if failed:
        raise ReprolabError(f"{', '.join(failed)} failed (details in {to / 'precomputed.json'}); fix and run again")
    log(f"[precompute] done: students set REPROLAB_PRECOMPUTED={to} and use ENCODER={encoder!r}, FAST={fast}")
    return manifest
