"""Helpers for the Chromium end-to-end tests (tests/test_browser.py): an isolated JupyterLab server, a Debian
Chromium driven by Playwright, and the few student actions the tests need (open a notebook, Run All Cells,
move a slider with the keyboard, read what the page shows).

Nothing here touches the user's Jupyter setup: config, runtime, settings, workspaces, IPython profile and
checkpoints live in a temporary folder; the kernelspec and the ipywidgets / plotly lab extensions are still
found because ``sys.prefix/share/jupyter`` stays on the Jupyter data path. Autosave is off, so running a
notebook never writes to the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("REPROLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
MISSING = (
    f"Chromium is not installed at {CHROMIUM}: run `apt-get install chromium` (Debian/Ubuntu) or point "
    "REPROLAB_CHROMIUM at a Chromium binary"
)

NB = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on screen

# Lab settings for a quiet, read-only session: no news/update toasts, no autosave into the repository.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},  # all cells in DOM
}


def require_chromium() -> str:
    """Path of Chromium; a failure in CI (env CI set), a skip elsewhere, when it is missing."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        (pytest.fail if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes") else pytest.skip)(MISSING)
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (localhost only)
        return r.read()


class JupyterLab:
    """A JupyterLab server on 127.0.0.1 in its own process group, with isolated config in ``home``."""

    def __init__(self, root: Path, home: Path, env: dict | None = None, token: str = "reprolab-browser-test"):
        self.root, self.home, self.token = Path(root), Path(home), token
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = self.home / "jupyterlab.log"
        dirs = {
            k: self.home / k.lower()
            for k in (
                "JUPYTER_CONFIG_DIR",
                "JUPYTER_DATA_DIR",
                "JUPYTER_RUNTIME_DIR",
                "IPYTHONDIR",
                "JUPYTERLAB_SETTINGS_DIR",
                "JUPYTERLAB_WORKSPACES_DIR",
            )
        }
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        for rel, value in LAB_SETTINGS.items():
            p = dirs["JUPYTERLAB_SETTINGS_DIR"] / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(value))
        self.env = {**os.environ, **{k: str(v) for k, v in dirs.items()}, **(env or {})}
        self.env.pop("JUPYTER_PATH", None)
        self.env.pop("JUPYTER_CONFIG_PATH", None)
        self.env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + self.env.get("PATH", "")
        self.env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
        self.proc: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}?token={self.token}"

    def start(self, timeout: float = 120.0) -> JupyterLab:
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--port={self.port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.open_browser=False",
            f"--FileCheckpoints.checkpoint_dir={self.home / 'checkpoints'}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            "--ServerApp.terminals_enabled=False",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                _get(self.url("api/status"))
                return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def api(self, path: str, method: str = "GET") -> bytes:
        req = urllib.request.Request(self.url(path), method=method)
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 (localhost only)
            return r.read()

    def shutdown_kernels(self) -> None:
        """Stop every kernel of this server (frees memory between notebooks)."""
        for k in json.loads(self.api("api/kernels")):
            self.api(f"api/kernels/{k['id']}", method="DELETE")

    def stop(self) -> None:
        """Shut kernels and server down; escalate to SIGTERM / SIGKILL of the process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:  # kernels run in their own sessions: ask the server to stop them first
                self.shutdown_kernels()
                self.api("api/shutdown", method="POST")
                self.proc.wait(timeout=30)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=wait)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self._log.close()

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


@contextmanager
def jupyter_lab(root: Path, home: Path, env: dict | None = None):
    lab = JupyterLab(root, home, env)
    try:
        yield lab.start()
    finally:
        lab.stop()


@contextmanager
def chromium_context(playwright, profile: Path):
    """A headless Debian Chromium with a fresh profile in ``profile``."""
    if profile.exists():
        shutil.rmtree(profile)
    ctx = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=require_chromium(),
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={"width": 1400, "height": 1000},
    )
    try:
        yield ctx
    finally:
        ctx.close()


# ----- student actions --------------------------------------------------------------------------------------

KERNEL_READY = """() => {
  if (document.querySelector('.jp-Dialog')) return 'dialog';
  const name = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName');
  const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  return !!(name && name.textContent.trim() && !/No Kernel/i.test(name.textContent)
            && ind && ind.getAttribute('data-status') === 'idle') && 'ready';
}"""


def open_notebook(page, lab: JupyterLab, relpath: str, timeout_ms: int = 180_000) -> None:
    """Open ``relpath`` (relative to the server root) in JupyterLab and wait until its kernel is up and idle.

    A "Select Kernel" dialog (JupyterLab shows it when the kernelspecs load after the notebook, on a busy
    machine) is answered with its default, the notebook's own kernel; any other dialog fails the test.
    """
    page.goto(lab.url(f"lab/tree/{relpath}") + "&reset", timeout=timeout_ms)  # reset: no tabs from before
    page.locator(f"{NB} .jp-Cell").first.wait_for(timeout=timeout_ms)
    for _ in range(3):
        if page.wait_for_function(KERNEL_READY, timeout=timeout_ms, polling=250).json_value() == "ready":
            return
        dialog = page.locator(".jp-Dialog").first
        text = dialog.inner_text()
        if "kernel" not in text.lower() or not dialog.locator(".jp-mod-accept").count():
            raise AssertionError(f"unexpected JupyterLab dialog while opening {relpath}: {text!r}")
        dialog.locator(".jp-mod-accept").first.click()
        dialog.wait_for(state="detached", timeout=30_000)
    raise AssertionError(f"{relpath}: no kernel after answering three kernel dialogs")


# tracebacks are rendered as stderr outputs (so is tqdm, hence the pattern)
ERR_OUT = '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
ERROR_RE = r"Traceback \(most recent call last\)|^\w*(Error|Exception)\b"

PROMPTS = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]
                   .map(p => p.textContent.trim())"""

RUN_FINISHED = """() => {
  const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  if (!ind || ind.getAttribute('data-status') !== 'idle') return false;
  const prompts = (%s)();
  if (!prompts.length || prompts.some(t => t.includes('*'))) return false;
  const failed = [...document.querySelectorAll(%s)].some(e => new RegExp(%s, 'm').test(e.innerText));
  return failed || prompts.every(t => /\\[\\d+\\]/.test(t));
}""" % (PROMPTS, json.dumps(ERR_OUT), json.dumps(ERROR_RE))  # noqa: UP031 (JS braces)

RUN_STARTED = """() => (%s)().some(t => /\\[(\\*|\\d+)\\]/.test(t))""" % PROMPTS  # noqa: UP031


def run_all_cells(page, timeout_ms: int) -> None:
    """Run → Run All Cells (menu), then wait until the kernel is idle and no cell is queued or running."""
    from playwright.sync_api import TimeoutError as PWTimeout

    for _ in range(3):  # a click while the page is still settling can be lost: check that cells started
        dialog = page.locator(".jp-Dialog")
        if dialog.count():
            raise AssertionError(f"unexpected JupyterLab dialog before Run All Cells: {dialog.first.inner_text()!r}")
        page.locator(f"{NB} .jp-Notebook").first.click(position={"x": 5, "y": 5})
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(RUN_STARTED, timeout=20_000, polling=250)
            break
        except PWTimeout:
            page.keyboard.press("Escape")
    try:
        page.wait_for_function(RUN_FINISHED, timeout=timeout_ms, polling=1000)
    except PWTimeout:
        prompts = page.evaluate(PROMPTS)
        raise AssertionError(
            f"Run All Cells did not finish within {timeout_ms / 1000:.0f} s; execution prompts "
            f"{prompts}; errors so far: {cell_errors(page)}"
        ) from None


def cell_errors(page) -> list[str]:
    """Text of error outputs (tracebacks) in the open notebook, last 1500 characters each."""
    return page.evaluate(
        """([sel, re]) => [...document.querySelectorAll(sel)].map(e => e.innerText)
                            .filter(t => new RegExp(re, 'm').test(t)).map(t => t.slice(-1500))""",
        [ERR_OUT, ERROR_RE],
    )


def unrun_cells(page) -> list[str]:
    """First lines of code cells without an execution count."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')]
                 .filter(c => !/\\[\\d+\\]/.test(c.querySelector('.jp-InputPrompt').textContent))
                 .map(c => c.querySelector('.jp-InputArea-editor').innerText.slice(0, 200))"""
    )


READ_STATE = """([slider, metrics, figure]) => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)') || document;
  const handle = panel.querySelector(slider + ' .noUi-handle');
  const span = panel.querySelector(metrics);
  let gd = figure ? panel.querySelector(figure + ' .js-plotly-plot') : null;
  if (!gd && handle) {  // no figure marker: the plot in the same widget box as the slider
    const box = panel.querySelector(slider).parentElement.closest('.widget-box');
    gd = box ? box.querySelector('.js-plotly-plot') : null;
  }
  const arr = v => (v == null ? null
                    : (typeof v === 'object' && 'length' in v) ? Array.from(v, Number) : [Number(v)]);
  const traces = gd ? (gd._fullData || gd.data || []).map(t => ({
      name: t.name || '', meta: typeof t.meta === 'string' ? t.meta : '', mode: t.mode || '',
      x: arr(t.x), y: arr(t.y)}))
    : null;
  const layout = gd ? (gd._fullLayout || gd.layout || {}) : {};
  return {
    value: handle ? Number(handle.getAttribute('aria-valuetext')) : null,  // exact; aria-valuenow is rounded
    metrics: span ? Object.fromEntries([...span.attributes].filter(a => a.name.startsWith('data-'))
                                         .map(a => [a.name.slice(5).replace(/-/g, '_'), a.value])) : null,
    traces: traces,
    shapes: (layout.shapes || []).map(s => ({x0: Number(s.x0), x1: Number(s.x1)})),
    title: layout.title ? String(layout.title.text || '') : '',
  };
}"""


def read_state(page, slider: str, metrics: str, figure: str | None = None) -> dict:
    """What the student sees: the slider value, the readout's ``data-*`` (floats), the figure's traces/shapes."""
    state = page.evaluate(READ_STATE, [slider, metrics, figure])
    if state["metrics"] is not None:
        state["metrics"] = {k: float(v) for k, v in state["metrics"].items()}
    return state


def wait_until(page, read, predicate, timeout_s: float, what: str) -> dict:
    """Poll ``read()`` until ``predicate(state)``; on timeout fail with ``what`` and the last state seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = read()
        if predicate(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} — not seen within {timeout_s:.0f} s; last state: {_short(state)}")
        page.wait_for_timeout(250)


def _short(state: dict) -> str:
    s = dict(state)
    s["traces"] = [{**t, "x": (t["x"] or [])[:3], "y": (t["y"] or [])[:3]} for t in (state.get("traces") or [])]
    return json.dumps(s, default=str)[:3000]


def press_on_slider(page, slider: str, key: str) -> None:
    """Focus the slider handle (as a click/tab would) and press ``key`` (Home, End, ArrowRight, ...)."""
    handle = page.locator(f"{NB} {slider} .noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    page.keyboard.press(key)
