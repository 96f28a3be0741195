"""What a student feels when moving α: in-page latency from the slider's key event to the redrawn figure (issue 16).

Measured *inside* Chromium, so the test driver's own delays do not count: a capture-phase ``keydown`` listener on the
α slider's handle records the event's ``timeStamp`` (the input event, ``performance.now()`` clock), and a
``plotly_afterplot`` listener on the figure records ``performance.now()`` and the markers' x. One move's latency is

    latency = t(first plotly_afterplot whose markers all sit at the new α) − t(keydown that moved the slider)

which holds the widget's whole round trip: the slider's model update over the comm, the kernel callback
(``AlphaExplorer.metrics_at`` from cached features, :func:`reprolab.course.widgets.alpha_slider`), the restyle
message back and plotly's redraw. Moves are ArrowRight presses on the focused handle, one after the previous one is
drawn (a student stepping through α), in a JupyterLab with the widget's notebook run top to bottom.

The widget is notebook 03's, :func:`~reprolab.course.widgets.alpha_slider` on an
:class:`~reprolab.course.alpha_explorer.AlphaExplorer`; by default on synthetic features of notebook 03's FAST sizes
(10 classes, 512-d, 200 ID + 2×100 shift + 3×100 OOD images: seconds to set up), or on notebook 03 itself
(``notebook=".../03_residual_alpha.ipynb"``: Run All first, minutes).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

SLIDER, FIGURE = ".rl-alpha-slider", ".rl-alpha-figure"
PKG_PARENT = str(Path(__file__).resolve().parents[2])  # the kernel imports this reprolab

SYNTHETIC = """\
import numpy as np
from reprolab.course.alpha_explorer import AlphaExplorer
from reprolab.course.widgets import alpha_slider

def unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)

rng = np.random.default_rng(0)
C, D, N, NS, NO = 10, 512, 200, 100, 100  # notebook 03's FAST sizes
text_zs, text_rp = unit(rng.normal(size=(C, D))), unit(rng.normal(size=(C, D)))
y = np.arange(N) % C
noise = lambda n, s: s * rng.normal(size=(n, D)) / D**0.5  # ‖noise‖ ≈ s: a few classes confused, as in 03
img_rp, img_zs = unit(text_rp[y] + noise(N, 25)), unit(text_zs[y] + noise(N, 30))
ys = np.arange(NS) % C
shift = {f"shift{i}": (unit(text_rp[ys] + noise(NS, 35)), unit(text_zs[ys] + noise(NS, 30)), ys) for i in range(2)}
ood = {f"ood{i}": (unit(rng.normal(size=(NO, D))), unit(rng.normal(size=(NO, D)))) for i in range(3)}
box = alpha_slider(AlphaExplorer(img_rp, img_zs, text_rp, text_zs, y, shift, ood), value=0.4)
box
"""

INSTALL = """([slider, figure]) => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)') || document;
  const handle = panel.querySelector(slider + ' .noUi-handle');
  const gd = panel.querySelector(figure + '.js-plotly-plot, ' + figure + ' .js-plotly-plot');
  if (!handle || !gd || !gd.on) return false;
  const rl = window.__rlAlpha = {keys: [], plots: []};
  handle.addEventListener('keydown', e => rl.keys.push(e.timeStamp), true);
  gd.on('plotly_afterplot', () => rl.plots.push({
    t: performance.now(),
    x: (gd.data || []).filter(t => typeof t.meta === 'string' && t.meta.startsWith('marker:'))
                      .map(t => Number(Array.from(t.x || [])[0]))}));
  return true;
}"""

VALUE = f"""() => {{
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)') || document;
  const h = panel.querySelector('{SLIDER} .noUi-handle');
  return h ? Number(h.getAttribute('aria-valuetext')) : null;
}}"""

DRAWN = """([alpha, t0]) => window.__rlAlpha.plots.some(
  p => p.t >= t0 && p.x.length > 0 && p.x.every(x => Math.abs(x - alpha) <= 1e-9))"""

LATENCY = """([alpha, k]) => {
  const rl = window.__rlAlpha, t0 = rl.keys[k];
  const p = rl.plots.find(p => p.t >= t0 && p.x.length > 0 && p.x.every(x => Math.abs(x - alpha) <= 1e-9));
  return p ? p.t - t0 : null;
}"""


def summary(ms: list[float]) -> dict:
    """median / p95 / max of the per-move latencies (ms)."""
    a = np.asarray(ms, dtype=float)
    return dict(median_ms=float(np.median(a)), p95_ms=float(np.percentile(a, 95)), max_ms=float(a.max()))


def alpha_latency(moves: int = 30, notebook=None, run_timeout_s: float = 1800, move_timeout_s: float = 60) -> dict:
    """In-page α-slider latency over ``moves`` moves (module docstring); ``{"error": reason}`` when it cannot run.

    Returns moves, latencies_ms (one per move), median_ms, p95_ms, max_ms, source (what notebook), setup_s.
    """
    from reprolab.bench.jupyter_lab import CHROMIUM, chromium_context, chromium_missing, jupyter_lab

    reason = chromium_missing()
    if reason:
        return dict(error=reason)
    from playwright.sync_api import sync_playwright

    from reprolab.bench.lab_actions import cell_errors, open_notebook, run_all_cells

    t_setup = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if notebook is None:
            import nbformat

            nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SYNTHETIC)])
            nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
            root, rel, source = tmp / "nb", "alpha_latency.ipynb", "α widget on synthetic features, notebook 03's sizes"
            root.mkdir()
            nbformat.write(nb, root / rel)
        else:
            root, rel, source = Path(notebook).resolve().parent, Path(notebook).name, f"{Path(notebook).name} (FAST)"
        path = os.pathsep.join(p for p in (PKG_PARENT, os.environ.get("PYTHONPATH")) if p)
        env = {"REPROLAB_FAST": "1", "PYTHONPATH": path}
        with (
            jupyter_lab(root, tmp / "jupyter", env) as lab,
            sync_playwright() as pw,
            chromium_context(pw, tmp / "profile", CHROMIUM) as ctx,
        ):
            page = ctx.new_page()
            open_notebook(page, lab, rel)
            run_all_cells(page, int(run_timeout_s * 1000))
            if cell_errors(page):
                return dict(error=f"{rel}: a cell raised: {cell_errors(page)[0][-400:]}", source=source)
            page.wait_for_function(INSTALL, arg=[SLIDER, FIGURE], timeout=120_000, polling=250)
            setup = time.perf_counter() - t_setup
            handle = page.locator(f".jp-NotebookPanel:not(.lm-mod-hidden) {SLIDER} .noUi-handle").last
            handle.scroll_into_view_if_needed()
            handle.focus()
            ms = []
            for k in range(moves):
                before = page.evaluate(VALUE)
                key = "ArrowRight" if before < 1.0 - 1e-9 else "ArrowLeft"
                page.keyboard.press(key)
                alpha = page.evaluate(VALUE)
                t0 = page.evaluate("k => window.__rlAlpha.keys[k]", k)
                if alpha == before or t0 is None:
                    return dict(error=f"pressing {key} on the α slider did not move it (α = {before})")
                page.wait_for_function(DRAWN, arg=[alpha, t0], timeout=move_timeout_s * 1000, polling="raf")
                ms.append(page.evaluate(LATENCY, [alpha, k]))
                page.wait_for_timeout(50)  # the next move starts after this one is on screen, as a student's would
            lab.shutdown_kernels()
    ok = [m for m in ms if m is not None and math.isfinite(m)]
    return dict(moves=moves, latencies_ms=ms, **summary(ok), source=source, setup_s=setup)
