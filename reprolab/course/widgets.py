"""The Residual Reprogrammer's α slider (paper §3.4): drag α, see ID accuracy, shift accuracy, FPR95 and AUROC move.

α here is ``alpha_zeroshot``, the weight on the *zero-shot* features (0 = reprogrammer, 1 = zero-shot). Every
update is computed from cached features by :class:`reprolab.course.alpha_explorer.AlphaExplorer` (no encoder pass), the
readout is rewritten and the four marker traces of the curve figure are moved in place with one
``FigureWidget.plotly_restyle`` carrying every marker's x and y — one message to the browser per move.

Stable DOM markers for browser tests: the slider has CSS class ``rl-alpha-slider``, the figure ``rl-alpha-figure``,
the readout ``rl-alpha-readout``, the whole box ``rl-alpha-widget``; the readout holds
``<span class="rl-alpha-metrics" data-alpha=… data-id-acc=… data-shift-acc=… data-fpr95=… data-auroc=…>``
with the numbers as plain decimals (``nan`` when a metric has no data).

Without a widget front end (static HTML, nbviewer) use :func:`alpha_static_figure`: the same curves with a plotly
slider whose steps carry precomputed marker positions, so it works with no kernel at all.
"""

from __future__ import annotations

import functools
import math
import statistics
import time

import numpy as np
import plotly.graph_objects as go

from reprolab.course.alpha_plots import METRICS, alpha_curve_figure, marker_indices

DEFAULT_ALPHAS = np.round(np.linspace(0.0, 1.0, 51), 4)


def _num(v) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.4f}"


def _pct(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * float(v):.1f}%"


def metrics_html(alpha: float, m: dict) -> str:
    """The readout: a human line plus machine-readable ``data-*`` attributes (see the module docstring)."""
    attrs = " ".join(f'data-{k.replace("_", "-")}="{_num(m.get(k))}"' for k in METRICS)
    items = " · ".join(f"<b>{label}</b> {_pct(m.get(k))}" for k, label in METRICS.items())
    return (
        f'<span class="rl-alpha-metrics" data-alpha="{alpha:.4f}" {attrs}>'
        f"α_zeroshot = <b>{alpha:.2f}</b> &nbsp;→&nbsp; {items}</span>"
    )


def alpha_static_figure(explorer, wise_curve=None, alphas=None, value: float = 0.4) -> go.Figure:
    """The α curves with a plotly (kernel-free) slider that moves the markers; the fallback without widgets."""
    alphas = DEFAULT_ALPHAS if alphas is None else np.asarray(alphas, dtype=float)
    curve = explorer.curve(alphas)
    start = int(np.argmin(np.abs(alphas - value)))
    m0 = curve.iloc[start].to_dict()
    fig = alpha_curve_figure(curve, wise_curve, float(alphas[start]), m0)
    idx = marker_indices(fig)
    keys = list(idx)
    steps = []
    for _, row in curve.iterrows():
        a = float(row["alpha"])
        steps.append(
            dict(
                method="restyle",
                label=f"{a:.2f}",
                args=[{"x": [[a] for _ in keys], "y": [[row[k]] for k in keys]}, [idx[k] for k in keys]],
            )
        )
    fig.update_layout(
        sliders=[
            dict(
                active=start,
                steps=steps,
                currentvalue=dict(prefix="α_zeroshot = "),
                y=-0.42,
                yanchor="top",
                len=0.9,
                x=0.05,
            )
        ],
        height=600,
        margin=dict(b=170),
    )
    return fig


@functools.lru_cache(maxsize=1)
def _box_class():
    import ipywidgets as w

    class AlphaSlider(w.VBox):
        """VBox with ``.slider``, ``.readout``, ``.figure``, ``.metrics`` (last values), ``.update_seconds``."""

        def update(self, alpha: float) -> dict:
            """Recompute the metrics at α from cached features; rewrite the readout; move the markers in place."""
            t0 = time.perf_counter()
            m = self.explorer.metrics_at(float(alpha))
            self.readout.value = metrics_html(float(alpha), m)
            # One restyle carrying every marker's x and y. Not ``batch_update``: it sends only the values that
            # changed, so when a marker's x moved but its y did not (accuracies move in steps of 1/N), that y goes
            # out as "undefined" and the browser dropped it — the marker vanished (caught by tests/test_browser.py).
            keys = list(self.marker_idx)
            self.figure.plotly_restyle(
                {"x": [[float(alpha)] for _ in keys], "y": [[m[k]] for k in keys]},
                trace_indexes=[self.marker_idx[k] for k in keys],
            )
            self.metrics = m
            self.update_seconds.append(time.perf_counter() - t0)
            return m

    return AlphaSlider


def alpha_slider(explorer, wise_curve=None, alphas=None, value: float = 0.4, step: float = 0.01):
    """The live α widget (an ``ipywidgets.VBox``): slider, metrics readout, plotly ``FigureWidget`` with markers.

    ``explorer``: anything with ``metrics_at(alpha) -> dict(id_acc, shift_acc, fpr95, auroc)`` and
    ``curve(alphas) -> DataFrame`` (an :class:`~reprolab.course.alpha_explorer.AlphaExplorer`). ``wise_curve``: optional
    DataFrame (alpha = α_finetuned, id_acc, shift_acc, fpr95, auroc) drawn dashed on the same axes.
    """
    import ipywidgets as w

    alphas = DEFAULT_ALPHAS if alphas is None else np.asarray(alphas, dtype=float)
    curve = explorer.curve(alphas)
    m0 = explorer.metrics_at(value)
    figure = go.FigureWidget(alpha_curve_figure(curve, wise_curve, value, m0))
    figure.add_class("rl-alpha-figure")
    slider = w.FloatSlider(
        value=value,
        min=0.0,
        max=1.0,
        step=step,
        description="α_zeroshot",
        continuous_update=True,
        readout_format=".2f",
        style={"description_width": "initial"},
        layout=w.Layout(width="600px"),
    )
    slider.add_class("rl-alpha-slider")
    readout = w.HTML(metrics_html(value, m0))
    readout.add_class("rl-alpha-readout")
    note = w.HTML(
        "<small>α_zeroshot = weight on the zero-shot features (0 = reprogrammer, 1 = zero-shot). "
        "Dashed: WiSE-FT at x = 1 − α_finetuned.</small>"
    )
    box = _box_class()([slider, readout, note, figure])
    box.add_class("rl-alpha-widget")
    box.explorer, box.slider, box.readout, box.figure, box.curve = explorer, slider, readout, figure, curve
    box.marker_idx, box.metrics, box.update_seconds = marker_indices(figure), m0, []
    slider.observe(lambda change: box.update(change["new"]), names="value")
    return box


def time_updates(box, n: int = 20, seed: int = 0) -> dict:
    """Move the slider to ``n`` random α values, as a user would, and report the callback's update times (ms)."""
    rng = np.random.default_rng(seed)
    start, times = box.slider.value, []
    for a in rng.uniform(0, 1, n).round(3):
        before = len(box.update_seconds)
        box.slider.value = float(a) if float(a) != box.slider.value else min(1.0, float(a) + 0.001)
        times += box.update_seconds[before:]
    box.slider.value = start
    ms = [1000 * s for s in times]
    return {"moves": len(ms), "median_ms": statistics.median(ms), "max_ms": max(ms)}
