"""Widgets proven in a real browser: what a student does, end to end, in Chromium + JupyterLab.

Each test opens a notebook in an isolated JupyterLab (see ``browser_support``), runs Run → Run All Cells in FAST
mode (the notebooks ship ``FAST = True``; checked), moves a slider with the keyboard (End, Home, ArrowRight on the focused noUiSlider handle of
the ipywidgets slider) and reads back what the page shows: the readout's ``data-*`` attributes and the plotly
graph div's traces / shapes. A move passes only when the kernel callback has rewritten both, consistently:

* α explorer (notebook 03, ``reprolab.course.widgets``): ``data-alpha`` and the x of every ``marker:<metric>`` trace
  equal the slider's new α; each marker's y equals the readout's metric; at α on the curve grid it also equals
  the RRP curve there; the metrics change between α = 1 and α = 0.
* OOD threshold (notebook 06, ``reprolab.course.threshold_explorer``): ``data-threshold`` and the dashed line equal the new
  threshold; Home (lowest threshold) keeps everything: TPR = FPR = 1; TPR and FPR never rise as it increases.
* own images (notebook 00, ``reprolab.course.own_images``): a PNG given to the upload's file input (Playwright's
  ``FileChooser.set_files`` after a click on the upload button) appears in the readout — ``data-name``, a CIFAR-10 ``data-prediction``, and a ``data-verdict``
  that agrees with ``data-score`` vs ``data-threshold``.

A synthetic notebook with the real α widget runs first, once as shipped and once with the slider's observer
removed: the check must fail on the broken one (the test's own test). Screenshots: ``artifacts/browser/``.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import nbformat
import pytest
from browser_support import (
    NB,
    cell_errors,
    chromium_context,
    jupyter_lab,
    open_notebook,
    press_on_slider,
    read_state,
    require_chromium,
    run_all_cells,
    unrun_cells,
    wait_until,
)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ART = ROOT / "artifacts" / "browser"
# Run All Cells of a FAST notebook: minutes on 2 idle cores, 15-20 min on 2 cores shared with other jobs.
RUN_TIMEOUT_S = int(os.environ.get("REPROLAB_BROWSER_RUN_TIMEOUT", "1500"))
MOVE_TIMEOUT_S = 60  # kernel round trip after one slider move

METRIC_LABELS = {"id_acc": "ID accuracy", "shift_acc": "shift accuracy", "auroc": "AUROC", "fpr95": "FPR95"}


# ----- fixtures: one JupyterLab and one Chromium for the module -------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require_chromium()
    env = {"REPROLAB_FAST": "1"}  # the course runner's convention; the notebooks also ship with FAST = True
    if os.environ.get("REPROLAB_DATA"):  # tests/conftest.py sets it from ../shared/datasets
        env["REPROLAB_DATA"] = os.environ["REPROLAB_DATA"]
    with jupyter_lab(ROOT, tmp_path_factory.mktemp("jupyter"), env) as server:
        yield server


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, chromium_context(p, tmp_path_factory.mktemp("chromium") / "profile") as ctx:
        yield ctx


@pytest.fixture
def page(browser, lab):
    page = browser.new_page()
    try:
        yield page
    finally:
        page.close()
        try:
            lab.shutdown_kernels()
        except OSError:
            pass


def run_notebook(page, lab, relpath: str) -> None:
    """Open ``relpath`` and Run All Cells; fail with the traceback if a cell raised."""
    open_notebook(page, lab, relpath)
    run_all_cells(page, RUN_TIMEOUT_S * 1000)
    errors, unrun = cell_errors(page), unrun_cells(page)
    assert not errors, f"{relpath}: a cell raised in the browser run:\n" + "\n---\n".join(errors)
    assert not unrun, f"{relpath}: cells did not run: {unrun}"


def shot(page, slider: str, path: Path) -> None:
    """Screenshot of the output holding the widget (whole page if it cannot be found)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = page.locator(f"{NB} .jp-OutputArea-output", has=page.locator(slider)).last
    try:
        out.scroll_into_view_if_needed(timeout=5000)
        out.screenshot(path=str(path), timeout=20_000)
    except Exception:  # noqa: BLE001 — a screenshot is evidence, not the check
        page.screenshot(path=str(path))


NOT_WRITTEN = "the notebook changed on disk during the browser run (autosave must be off; or was it edited meanwhile?)"


def repo_notebook(name: str) -> Path:
    """A course notebook, which must default to FAST mode (the test runs it as shipped)."""
    path = ROOT / "notebooks" / name
    if not path.exists():
        pytest.fail(f"{path} is missing; the browser test runs the course notebook of that name")
    nb = nbformat.read(path, as_version=4)
    assert any(re.search(r"^FAST = True\b", c.source, re.M) for c in nb.cells if c.cell_type == "code"), (
        f"{name} must ship with `FAST = True` (the browser test runs it as a student would, in FAST mode)"
    )
    return path


# ----- the α explorer -------------------------------------------------------------------------------------------

A_SLIDER, A_METRICS, A_FIGURE = ".rl-alpha-slider", ".rl-alpha-metrics", ".rl-alpha-figure"


def _markers(state) -> dict:
    return {t["meta"].split(":", 1)[1]: t for t in state["traces"] or [] if t["meta"].startswith("marker:")}


def _alpha_synced(state, alpha: float) -> bool:
    m, marks = state["metrics"], _markers(state)
    return bool(
        m
        and marks
        and abs(m["alpha"] - alpha) <= 5e-5
        and all(t["x"] is not None and len(t["x"]) == 1 and abs(t["x"][0] - alpha) <= 1e-9 for t in marks.values())
    )


def _check_alpha_state(state, alpha: float, where: str) -> None:
    """Markers at the readout's metrics; where α is on the curve's grid, both equal the RRP curve there."""
    curves = {t["name"]: t for t in state["traces"]}
    for key, t in _markers(state).items():
        shown = state["metrics"].get(key)
        y = t["y"][0] if t["y"] else None
        if shown is None or math.isnan(shown):
            continue
        assert y is not None and abs(y - shown) <= 1e-4, f"{where}: marker {key} y={y}, readout says {shown}"
        curve = curves.get(f"RRP {METRIC_LABELS.get(key, key)}")
        if curve and curve["x"]:
            hits = [j for j, x in enumerate(curve["x"]) if abs(x - alpha) <= 1e-9]
            if hits:
                assert abs(curve["y"][hits[0]] - shown) <= 1e-4, (
                    f"{where}: readout {key}={shown} but the RRP curve at α={alpha} is {curve['y'][hits[0]]}"
                )


def check_alpha_widget(page, shots: Path, move_timeout_s: float = MOVE_TIMEOUT_S) -> list[dict]:
    """Move the α slider End → Home → 5 × ArrowRight; after each move the page must show the new α's metrics."""
    read = lambda: read_state(page, A_SLIDER, A_METRICS, A_FIGURE)  # noqa: E731
    state = wait_until(
        page,
        read,
        lambda s: s["value"] is not None and s["metrics"] and _markers(s),
        120,
        "α widget rendered: .rl-alpha-slider, .rl-alpha-metrics and a figure with marker traces",
    )
    _check_alpha_state(state, state["metrics"]["alpha"], "initial")
    shot(page, A_SLIDER, shots / "0_initial.png")
    states = [state]
    for i, (key, presses, expect) in enumerate((("End", 1, 1.0), ("Home", 1, 0.0), ("ArrowRight", 5, None)), 1):
        for _ in range(presses):
            press_on_slider(page, A_SLIDER, key)
        alpha = read()["value"]
        assert alpha != states[-1]["value"], f"pressing {key} on the α slider did not move it"
        if expect is not None:
            assert alpha == expect, f"{key} moved the α slider to {alpha}, expected {expect}"
        state = wait_until(
            page,
            read,
            lambda s: _alpha_synced(s, alpha),
            move_timeout_s,
            f"after {key}: readout data-alpha and every α marker at the slider's α = {alpha}",
        )
        _check_alpha_state(state, alpha, f"after {key} (α={alpha})")
        if expect is not None:
            before, after = states[-1]["metrics"], state["metrics"]
            assert any(
                abs(after[k] - before[k]) > 1e-4
                for k in METRIC_LABELS
                if k in after and k in before and not math.isnan(after[k] + before[k])
            ), f"metrics did not change from α={states[-1]['value']} to α={alpha}: {after}"
        shot(page, A_SLIDER, shots / f"{i}_{key}_alpha_{alpha:.2f}.png")
        states.append(state)
    return states


SYNTHETIC_ALPHA = """\
import numpy as np
from reprolab.course.alpha_explorer import AlphaExplorer
from reprolab.course.widgets import alpha_slider

def unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)

rng = np.random.default_rng(0)
C, D, N = 4, 16, 80
text_zs, text_rp = unit(rng.normal(size=(C, D))), unit(rng.normal(size=(C, D)))
y = np.arange(N) % C
img_rp, img_zs = unit(text_rp[y] + 0.6 * rng.normal(size=(N, D))), unit(text_zs[y] + 1.5 * rng.normal(size=(N, D)))
shift = {"shifted": (unit(img_rp + 0.8 * rng.normal(size=(N, D))), unit(img_zs + 0.3 * rng.normal(size=(N, D))), y)}
ood = {"noise": (unit(rng.normal(size=(60, D))), unit(rng.normal(size=(60, D))))}
box = alpha_slider(AlphaExplorer(img_rp, img_zs, text_rp, text_zs, y, shift, ood), value=0.4)
"""


def synthetic_notebook(path: Path, broken: bool) -> str:
    """A two-cell notebook with the real α widget on synthetic features; ``broken``: the slider's observer removed."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(SYNTHETIC_ALPHA),
        nbformat.v4.new_code_cell(
            ("box.slider.unobserve_all('value')  # BROKEN on purpose\n" if broken else "") + "box"
        ),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("broken", [False, True], ids=["callback-ok", "callback-broken"])
def test_alpha_check_detects_a_broken_callback(page, lab, broken):
    """The check passes on the working widget and fails when the slider's callback is gone."""
    name = "alpha_broken" if broken else "alpha_ok"
    rel = synthetic_notebook(ART / "selftest" / f"{name}.ipynb", broken)
    run_notebook(page, lab, rel)
    if broken:
        with pytest.raises(AssertionError, match="readout data-alpha and every α marker"):
            check_alpha_widget(page, ART / "selftest" / name, move_timeout_s=20)
    else:
        check_alpha_widget(page, ART / "selftest" / name, move_timeout_s=20)


def test_residual_alpha_notebook(page, lab):
    """notebooks/03: Run All in FAST mode, then move α; readout and figure follow; the notebook is not written."""
    path = repo_notebook("03_residual_alpha.ipynb")
    before = path.read_bytes()
    run_notebook(page, lab, path.relative_to(ROOT).as_posix())
    check_alpha_widget(page, ART / "03_alpha")
    assert path.read_bytes() == before, NOT_WRITTEN


# ----- the OOD threshold explorer ------------------------------------------------------------------------------

T_SLIDER, T_METRICS, T_FIGURE = ".rl-threshold-slider", ".rl-threshold-metrics", ".rl-threshold-figure"


def _threshold_synced(state, t: float) -> bool:
    m, shapes = state["metrics"], state["shapes"]
    return bool(
        m
        and shapes
        and math.isclose(m["threshold"], t, rel_tol=1e-5, abs_tol=1e-9)
        and math.isclose(shapes[0]["x0"], t, rel_tol=1e-9, abs_tol=1e-12)
    )


def test_ood_threshold_notebook(page, lab):
    """notebooks/06: Run All in FAST mode, move the threshold; TPR/FPR and the threshold line follow, monotonically."""
    path = repo_notebook("06_ood_detection.ipynb")
    before = path.read_bytes()
    run_notebook(page, lab, path.relative_to(ROOT).as_posix())
    read = lambda: read_state(page, T_SLIDER, T_METRICS, T_FIGURE)  # noqa: E731
    state = wait_until(
        page,
        read,
        lambda s: s["value"] is not None and s["metrics"] and s["shapes"],
        120,
        "threshold widget rendered: .rl-threshold-slider, .rl-threshold-metrics, figure with a line",
    )
    shots = ART / "06_threshold"
    shot(page, T_SLIDER, shots / "0_initial.png")
    seen = {}
    for i, (key, presses) in enumerate((("End", 1), ("Home", 1), ("ArrowRight", 5)), 1):
        prev = state
        for _ in range(presses):
            press_on_slider(page, T_SLIDER, key)
        t = read()["value"]
        assert t != prev["value"], f"pressing {key} on the threshold slider did not move it"
        state = wait_until(
            page,
            read,
            lambda s: _threshold_synced(s, t),
            MOVE_TIMEOUT_S,
            f"after {key}: readout data-threshold and the threshold line at the slider's {t}",
        )
        m = state["metrics"]
        assert 0.0 <= m["tpr"] <= 1.0 and 0.0 <= m["fpr"] <= 1.0, m
        title_tpr = re.search(r"TPR ([0-9.]+)%", state["title"])
        assert title_tpr and abs(float(title_tpr.group(1)) - 100 * m["tpr"]) <= 0.051, (
            f"figure title {state['title']!r} does not show the readout's TPR {m['tpr']}"
        )
        seen[key] = m
        shot(page, T_SLIDER, shots / f"{i}_{key}_threshold_{t:.4g}.png")
    lo, hi, mid = seen["Home"], seen["End"], seen["ArrowRight"]
    assert lo["tpr"] == 1.0 and lo["fpr"] == 1.0, f"at the lowest threshold every image is kept: {lo}"
    assert hi["threshold"] > mid["threshold"] > lo["threshold"], (lo, mid, hi)
    assert hi["tpr"] <= mid["tpr"] <= lo["tpr"] and hi["fpr"] <= mid["fpr"] <= lo["fpr"], (
        f"TPR/FPR must not rise with the threshold: {lo} → {mid} → {hi}"
    )
    assert hi["tpr"] < 1.0 or hi["fpr"] < 1.0, f"the highest threshold rejects nothing: {hi}"
    assert path.read_bytes() == before, NOT_WRITTEN


# ----- own images (notebook 00, reprolab.course.own_images) ----------------------------------------------------

OWN_UPLOAD, OWN_RESULT = ".rl-own-upload", ".rl-own-result"
READ_OWN = """(sel) => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)') || document;
  const r = panel.querySelector(sel);
  return r ? Object.fromEntries([...r.attributes].filter(a => a.name.startsWith('data-'))
                                .map(a => [a.name.slice(5), a.value])) : null;
}"""


def test_own_image_upload_notebook(page, lab, tmp_path):
    """notebooks/00: Run All, upload a photo through the FileUpload widget, read the prediction from the DOM."""
    from PIL import Image

    path = repo_notebook("00_zero_shot_clip.ipynb")
    before = path.read_bytes()
    run_notebook(page, lab, path.relative_to(ROOT).as_posix())
    photo = tmp_path / "my_red_square.png"
    Image.new("RGB", (64, 48), (220, 30, 30)).save(photo)
    button = page.locator(f"{NB} {OWN_UPLOAD}").last
    button.scroll_into_view_if_needed(timeout=30_000)
    with page.expect_file_chooser(timeout=30_000) as chooser:  # the widget's hidden <input type=file> opens it
        button.click()
    chooser.value.set_files(str(photo))
    state = wait_until(
        page,
        lambda: page.evaluate(READ_OWN, OWN_RESULT) or {},
        lambda s: s.get("name") == photo.name,
        MOVE_TIMEOUT_S,
        "the readout names the uploaded file",
    )
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert state["prediction"] in classes, state
    assert state["verdict"] in ("id", "ood") and 0.099 <= float(state["score"]) <= 1.0, state
    assert (state["verdict"] == "id") == (float(state["score"]) >= float(state["threshold"])), state
    shot(page, ".rl-own-readout", ART / "00_own_image" / "upload.png")
    assert path.read_bytes() == before, NOT_WRITTEN
