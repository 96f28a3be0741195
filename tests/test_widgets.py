"""The α slider: moving it recomputes the metrics from cached features and updates readout and figure in place."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from reprolab.course.alpha_explorer import AlphaExplorer
from reprolab.course.alpha_plots import alpha_curve_figure, marker_indices
from reprolab.course.widgets import alpha_slider, alpha_static_figure, metrics_html, time_updates


def _unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def explorer():
    """Synthetic features: RP separates the 4 classes well, zero-shot poorly; OOD features are unrelated."""
    rng = np.random.default_rng(0)
    C, D, N = 4, 16, 80
    text_zs, text_rp = _unit(rng.normal(size=(C, D))), _unit(rng.normal(size=(C, D)))
    y = np.arange(N) % C
    img_rp = _unit(text_rp[y] + 0.6 * rng.normal(size=(N, D)))
    img_zs = _unit(text_zs[y] + 1.5 * rng.normal(size=(N, D)))
    shift = {
        "shifted": (_unit(img_rp + 0.8 * rng.normal(size=(N, D))), _unit(img_zs + 0.3 * rng.normal(size=(N, D))), y)
    }
    ood = {"noise": (_unit(rng.normal(size=(60, D))), _unit(rng.normal(size=(60, D))))}
    return AlphaExplorer(img_rp, img_zs, text_rp, text_zs, y, shift, ood)


def _readout(html):
    m = re.search(r'<span class="rl-alpha-metrics"([^>]*)>', html)
    assert m, html
    return {k: float(v) for k, v in re.findall(r'data-([a-z0-9-]+)="([^"]+)"', m.group(1))}


def test_metrics_html_has_stable_markers():
    html = metrics_html(0.25, {"id_acc": 0.5, "shift_acc": math.nan, "fpr95": 0.125, "auroc": 0.75})
    vals = _readout(html)
    assert vals["alpha"] == 0.25 and vals["id-acc"] == 0.5 and vals["fpr95"] == 0.125 and vals["auroc"] == 0.75
    assert math.isnan(vals["shift-acc"]) and "n/a" in html


def test_slider_move_updates_readout_and_figure(explorer):
    box = alpha_slider(explorer, value=0.4)
    assert "rl-alpha-slider" in box.slider._dom_classes and "rl-alpha-figure" in box.figure._dom_classes
    assert "rl-alpha-readout" in box.readout._dom_classes
    assert set(box.marker_idx) == {"id_acc", "shift_acc", "fpr95", "auroc"}
    before = box.readout.value
    for a in (0.0, 0.73, 1.0):
        box.slider.value = a
        want = explorer.metrics_at(a)
        got = _readout(box.readout.value)
        assert got["alpha"] == pytest.approx(a)
        for key, attr in (("id_acc", "id-acc"), ("shift_acc", "shift-acc"), ("fpr95", "fpr95"), ("auroc", "auroc")):
            assert got[attr] == pytest.approx(want[key], abs=1e-4)
            trace = box.figure.data[box.marker_idx[key]]
            assert list(trace.x) == [a] and trace.y[0] == pytest.approx(want[key])
    assert box.readout.value != before
    assert len(box.update_seconds) == 3
    # the two ends really differ on these features: RP (α=0) is more accurate than zero-shot (α=1)
    assert explorer.metrics_at(0.0)["id_acc"] > explorer.metrics_at(1.0)["id_acc"]


def test_time_updates_counts_each_move(explorer):
    box = alpha_slider(explorer, value=0.5)
    t = time_updates(box, n=7)
    assert t["moves"] == 7 and t["median_ms"] > 0 and box.slider.value == 0.5


def test_works_with_a_stub_explorer_and_wise_curve():
    class Stub:
        def metrics_at(self, a):
            return {"id_acc": 1 - a / 2, "shift_acc": 0.5, "fpr95": a, "auroc": 1 - a / 4}

        def curve(self, alphas):
            return pd.DataFrame([dict(alpha=a, **self.metrics_at(a)) for a in alphas])

    wise = pd.DataFrame(
        {
            "alpha": [0.0, 0.5, 1.0],
            "id_acc": [0.4, 0.6, 0.7],
            "shift_acc": [0.3, 0.4, 0.35],
            "fpr95": [0.6, 0.7, 0.8],
            "auroc": [0.8, 0.7, 0.6],
        }
    )
    box = alpha_slider(Stub(), wise_curve=wise, alphas=[0, 0.5, 1], value=0.2)
    names = [tr.name for tr in box.figure.data]
    assert "WiSE-FT ID accuracy" in names
    wise_trace = box.figure.data[names.index("WiSE-FT ID accuracy")]
    assert list(wise_trace.x) == [1.0, 0.5, 0.0]  # plotted at x = 1 − α_finetuned
    box.slider.value = 0.6
    assert box.figure.data[box.marker_idx["fpr95"]].y[0] == pytest.approx(0.6)
    assert _readout(box.readout.value)["id-acc"] == pytest.approx(0.7)


def test_static_fallback_slider_carries_marker_positions(explorer):
    alphas = [0.0, 0.5, 1.0]
    fig = alpha_static_figure(explorer, alphas=alphas, value=0.5)
    idx = marker_indices(fig)
    steps = fig.layout.sliders[0].steps
    assert len(steps) == 3 and fig.layout.sliders[0].active == 1
    for step, a in zip(steps, alphas):
        upd, traces = step.args
        m = explorer.metrics_at(a)
        for k, i in idx.items():
            j = traces.index(i)
            assert upd["x"][j] == [a] and upd["y"][j][0] == pytest.approx(m[k])


def test_curve_figure_without_marker_has_none(explorer):
    fig = alpha_curve_figure(explorer.curve([0, 1]))
    assert marker_indices(fig) == {}


def _record_frontend_messages(fig) -> list:
    """What the FigureWidget sends to plotly.js (restyle and update messages), recorded."""
    sent = []
    for name in ("_send_restyle_msg", "_send_update_msg"):
        original = getattr(fig, name)

        def record(*args, _original=original, **kwargs):
            sent.append((args, kwargs))
            return _original(*args, **kwargs)

        setattr(fig, name, record)
    return sent


def _has_undefined(obj) -> bool:
    from plotly.basedatatypes import Undefined

    if obj is Undefined:
        return True
    if isinstance(obj, dict):
        return any(_has_undefined(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_has_undefined(v) for v in obj)
    return False


def test_a_move_where_some_metric_is_unchanged_still_sends_every_marker(explorer):
    """Accuracies move in steps of 1/N, so two α often share one; batch_update then sent that marker's y as
    "undefined" and the browser dropped the marker (seen in notebook 03's browser test)."""
    grid = explorer.curve(np.round(np.linspace(0, 1, 101), 2))
    pair = next(
        (a, b)
        for a, b in zip(grid.itertuples(), grid.iloc[1:].itertuples())
        if a.id_acc == b.id_acc and a.auroc != b.auroc
    )
    box = alpha_slider(explorer, value=pair[0].alpha)
    sent = _record_frontend_messages(box.figure)
    box.slider.value = pair[1].alpha
    assert sent and not _has_undefined(sent), sent
    (restyle,), kwargs = sent[-1]
    indexes = kwargs["trace_indexes"]
    assert sorted(indexes) == sorted(box.marker_idx.values())
    assert [v[0] for v in restyle["y"]] == [pytest.approx(box.metrics[k]) for k in box.marker_idx]
