"""Helpers for the Chromium end-to-end tests (tests/test_browser.py): an isolated JupyterLab server, a Debian
Chromium driven by Playwright, and the few student actions the tests need (open a notebook, Run All Cells,
move a slider with the keyboard, read what the page shows).

The server, the browser launch and the notebook actions live in :mod:`reprolab.bench.jupyter_lab` and
:mod:`reprolab.bench.lab_actions` (``reprolab bench`` measures the α slider with them); this module re-exports them
and adds what only the tests need: skip-or-fail when Chromium is missing, reading and moving the widgets.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from reprolab.bench.jupyter_lab import CHROMIUM, CHROMIUM_ARGS, LAB_SETTINGS, NB, JupyterLab, free_port, jupyter_lab
from reprolab.bench.jupyter_lab import chromium_context as _chromium_context
from reprolab.bench.lab_actions import (
    ERR_OUT,
    ERROR_RE,
    KERNEL_READY,
    PROMPTS,
    RUN_FINISHED,
    RUN_STARTED,
    cell_errors,
    open_notebook,
    run_all_cells,
    unrun_cells,
)

__all__ = [  # re-exported for tests/test_browser.py (the server and the actions live in reprolab.bench)
    "CHROMIUM_ARGS",
    "ERR_OUT",
    "ERROR_RE",
    "KERNEL_READY",
    "LAB_SETTINGS",
    "PROMPTS",
    "RUN_FINISHED",
    "RUN_STARTED",
    "JupyterLab",
    "cell_errors",
    "chromium_context",
    "free_port",
    "jupyter_lab",
    "open_notebook",
    "run_all_cells",
    "unrun_cells",
]

MISSING = (
    f"Chromium is not installed at {CHROMIUM}: run `apt-get install chromium` (Debian/Ubuntu) or point "
    "REPROLAB_CHROMIUM at a Chromium binary"
)


def require_chromium() -> str:
    """Path of Chromium; a failure in CI (env CI set), a skip elsewhere, when it is missing."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        (pytest.fail if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes") else pytest.skip)(MISSING)
    return CHROMIUM


@contextmanager
def chromium_context(playwright, profile: Path):
    """A headless Debian Chromium with a fresh profile in ``profile`` (skipped, or failed in CI, when missing)."""
    with _chromium_context(playwright, profile, require_chromium()) as ctx:
        yield ctx


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
