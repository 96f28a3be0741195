"""An isolated JupyterLab server and a headless Chromium, for measuring (``reprolab bench``) and testing
(tests/test_browser.py) the course widgets in a real browser.

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

NB = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on screen

# Lab settings for a quiet, read-only session: no news/update toasts, no autosave into the repository.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},  # all cells in DOM
}


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
def chromium_context(playwright, profile: Path, executable: str = CHROMIUM):
    """A headless Chromium (``executable``) with a fresh profile in ``profile``."""
    if profile.exists():
        shutil.rmtree(profile)
    ctx = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=executable,
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={"width": 1400, "height": 1000},
    )
    try:
        yield ctx
    finally:
        ctx.close()


def chromium_missing() -> str | None:
    """Why the in-browser measurements cannot run here (no Chromium, Playwright or JupyterLab), else None."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (
            f"Chromium is not installed at {CHROMIUM}: run `apt-get install chromium` (Debian/Ubuntu) or point "
            "REPROLAB_CHROMIUM at a Chromium binary"
        )
    import importlib.util

    for mod, pkg in (("playwright", "playwright"), ("jupyterlab", "jupyterlab")):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed: pip install {pkg} (the dev extra has it)"
    return None
