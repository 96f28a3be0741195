"""Smoke tests of ``reprolab bench``: every piece runs at tiny sizes and the JSON has the documented keys and types.
No timing is asserted (the figures depend on the machine); memory measurement is checked against a known
allocation."""

import json
import math
import sys

import pytest

from reprolab.bench import course as bench_course
from reprolab.bench import suite as bench
from reprolab.bench import timing as bench_timing
from reprolab.errors import ReprolabError

TINY_REPEATS = {"tiny": 2, "moves": 4, "extract": 1}


def _num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.fixture(scope="module")
def result():
    return bench.run_bench(
        quick=True,
        skip_course=True,
        encoders=["tiny"],
        alpha_n=300,
        extract_n=64,
        repeats=TINY_REPEATS,
        log=lambda *a: None,
        browser=False,
    )


def test_headline_keys_and_types(result):
    for key in ("alpha_move_ms", "alpha_recompute_ratio", "rp_over_ft_step", "extraction_ratio"):
        assert _num(result[key]) and result[key] > 0, key
    for key in ("quickstart_s", "quickstart_peak_rss_mb", "notebooks_s", "notebooks_peak_rss_mb"):
        assert key in result and result[key] is None  # --skip-course
    m = result["machine"]
    assert {"cpu_model", "cpu_count", "torch", "torch_threads"} <= set(m)
    assert isinstance(m["cpu_model"], str) and m["torch_threads"] >= 1
    assert set(result["targets"]) == set(bench.TARGETS)
    assert any("tiny" in n for n in result["notes"])  # the headline encoder is named when it is not the stand-in


def test_details(result):
    a = result["alpha_move"]
    assert a["moves"] == 4 and a["n_id"] == a["n_shift"] == a["n_ood"] == 300
    assert _num(a["recompute_s_per_alpha"]) and "extrapolated" in a["recompute_note"]
    sc = result["step_cost"]["tiny"]
    assert sc["encoder_params_requiring_grad_during_rp"] == 0  # frozen encoder: no weight gradients in RP
    assert sc["rp_trainable_params"] == 3 * sc["canvas"] ** 2 < sc["ft_trainable_params"]
    assert _num(sc["rp_step_ms"]) and _num(sc["ft_step_ms"]) and sc["repeats"] == 2
    e = result["extraction"]
    assert _num(e["kit_img_per_s"]) and _num(e["bare_img_per_s"]) and e["n_images"] == 64


def test_checks_table_and_json(result, tmp_path):
    rows = {r["figure"]: r for r in result["checks"]}
    assert rows["quickstart_s"]["met"] is None  # not measured
    assert isinstance(rows["alpha_move_ms"]["met"], bool)
    assert "rp_over_ft_step[tiny]" in rows
    text = bench.table(result)
    assert "alpha_move_ms" in text and "met?" in text
    out = tmp_path / "b.json"
    out.write_text(json.dumps(result, default=str))
    assert json.loads(out.read_text())["rp_over_ft_step"] == result["rp_over_ft_step"]


def test_bad_encoder_name():
    with pytest.raises(ReprolabError, match="choose from"):
        bench.run_bench(skip_course=True, encoders=["resnet"], log=lambda *a: None)


def test_run_measured_sees_child_memory():
    code = "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.0)"
    r = bench_course.run_measured([sys.executable, "-c", code], poll=0.05)
    assert r["returncode"] == 0 and r["wall_s"] > 0
    assert r["peak_rss_mb"] >= 200


def test_quickstart_missing_config(tmp_path):
    assert "not found" in bench_course.quickstart(tmp_path / "nope.yaml")["error"]


def test_notebook_runner(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    code = (
        "import os; assert os.environ['REPROLAB_FAST'] == '1'; assert os.listdir(os.environ['REPROLAB_RUNS']) == []\n"
        "open(os.path.join(os.environ['REPROLAB_RUNS'], 'x'), 'w').close()"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbformat.write(nb, tmp_path / "a.ipynb")
    res = bench_course.notebooks(tmp_path)
    assert list(res) == ["a.ipynb"] and res["a.ipynb"]["returncode"] == 0, res["a.ipynb"]["tail"]
    assert res["a.ipynb"]["peak_rss_mb"] > 0


def test_random_images_are_an_imageset():
    d = bench_timing.RandomImages(12, 16)
    x, y = d[3]
    assert x.shape == (3, 16, 16) and y == 3 and len(d.classnames) == 10 and d.key


def test_text_rp_cached_vs_images(result):
    tr = result["text_rp"]["tiny"]
    assert tr["batch_size"] == 32 and tr["repeats"] == 2 and tr["cache_images"] >= 32
    assert all(_num(tr[k]) and tr[k] > 0 for k in ("images_steps_per_s", "cached_steps_per_s", "cache_build_s"))
    assert tr["speedup"] == pytest.approx(tr["cached_steps_per_s"] / tr["images_steps_per_s"])
    assert result["text_rp_cached_speedup"] == tr["speedup"]
    rows = {r["figure"]: r for r in result["checks"]}
    assert isinstance(rows["text_rp_cached_speedup"]["met"], bool)
    assert "text-only RP tiny" in bench.table(result)


def test_clip_shaped_course_figures_are_read_from_their_keys(result):
    rows = {r["figure"]: r for r in result["checks"]}
    assert rows["clip_shaped_notebooks_total_s"]["value"] is None  # --skip-course: not measured
    fake = dict(result, clip_shaped_notebooks_s={"00.ipynb": 100.0, "03.ipynb": 400.0, "total": 500.0})
    assert bench._value(fake, "clip_shaped_notebooks_total_s") == 500.0
    assert bench._value(fake, "clip_shaped_notebook_max_s") == 400.0
    assert {r["figure"]: r["met"] for r in bench.checks(fake)}["clip_shaped_notebook_max_s"] is False


def test_course_timings_find_the_checkouts_quickstart_and_every_notebook(tmp_path):
    """The course bench reads the checkout's files (a wrong root once timed 0 notebooks in 0 s and said nothing)."""
    assert (bench_course.ROOT / "configs" / "quickstart.yaml").is_file()
    assert len(sorted((bench_course.ROOT / "notebooks").glob("*.ipynb"))) >= 9
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        bench_course.notebooks(tmp_path)


def test_alpha_slider_figure_is_not_measured_when_skipped(result):
    assert result["alpha_slider_p95_ms"] is None and result["alpha_slider"]["error"] == "--skip-browser"
    rows = {r["figure"]: r for r in result["checks"]}
    assert rows["alpha_slider_p95_ms"]["met"] is None and rows["alpha_slider_p95_ms"]["target"] == "<= 50 ms"
    assert "α slider in Chromium: not measured" in bench.table(result)


def test_alpha_slider_latency_without_chromium_says_why(monkeypatch):
    from reprolab.bench import alpha_latency, jupyter_lab

    monkeypatch.setattr(jupyter_lab, "CHROMIUM", "/nonexistent/chromium")
    assert "Chromium is not installed at /nonexistent/chromium" in alpha_latency.alpha_latency()["error"]


@pytest.mark.browser
def test_alpha_slider_latency_in_chromium_gives_30_finite_moves():
    """The in-page measurement on notebook 03's widget (synthetic features): 30 key events, 30 redraws timed."""
    from conftest import require

    from reprolab.bench import alpha_latency, jupyter_lab

    require(jupyter_lab.chromium_missing() is None, str(jupyter_lab.chromium_missing()))
    r = alpha_latency.alpha_latency(moves=30)
    assert "error" not in r, r.get("error")
    assert r["moves"] == 30 and len(r["latencies_ms"]) == 30
    assert all(_num(m) and 0 < m < 60_000 for m in r["latencies_ms"])
    assert r["median_ms"] <= r["p95_ms"] <= r["max_ms"] == max(r["latencies_ms"])
