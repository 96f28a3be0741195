"""Own images (reprolab/course/own_images.py): load a file, predict, compare the MCM score with the threshold;
the widget reacts to a pick and to an upload. Tiny random-init encoder (numbers mean nothing, behaviour is real)."""

import datetime
import io

import numpy as np
import pytest
import torch
from PIL import Image

from reprolab.course.own_images import (
    load_image,
    own_image_figure,
    own_image_widget,
    predict_image,
    result_html,
    threshold_at_tpr,
)
from reprolab.methods import FineTune, Reprogrammer, ResidualReprogrammer

NAMES = ["cat", "dog", "car", "ship", "frog", "bird"]


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for k in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(d / f"p{k}.png")
    return d


def test_load_image_from_a_path_or_bytes_is_a_centre_crop_in_unit_range(photo_dir):
    a = load_image(photo_dir / "p0.png")
    b = load_image((photo_dir / "p0.png").read_bytes(), "p0.png")
    assert a.shape == (3, 224, 224) and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1


def test_threshold_keeps_95_percent_of_id():
    s = np.arange(100) / 100
    t = threshold_at_tpr(s)
    assert (s >= t).mean() == pytest.approx(0.95) and (s >= np.nextafter(t, 1)).mean() < 0.95


def test_prediction_top5_methods_score_and_verdict(tiny, photo_dir):
    x = load_image(photo_dir / "p1.png")
    rp = Reprogrammer(tiny, mode="both", init_std=0.5).setup(NAMES)
    ft = FineTune(tiny).setup(NAMES)
    r = predict_image(x, tiny, NAMES, methods={"RP": rp, "FT": ft}, threshold=0.0)
    assert len(r["top5"]) == 5 and r["prediction"] == r["top5"][0][0]
    assert sum(p for _, p in r["top5"]) <= 1 + 1e-6 and r["top5"][0][1] >= r["top5"][-1][1]
    assert set(r["methods"]) == {"RP", "FT"} and r["reprogrammed"].shape == (3, tiny.image_size, tiny.image_size)
    assert 1 / len(NAMES) <= r["score"] <= 1 and r["verdict"] == "id"  # any MCM score ≥ 1/C ≥ 0
    assert predict_image(x, tiny, NAMES, threshold=1.01)["verdict"] == "ood"
    rrp = ResidualReprogrammer(rp, 0.4).setup(NAMES)  # as notebook 06 passes it: a method and the detector
    r2 = predict_image(x, tiny, NAMES, methods={"RRP": rrp}, detector=rrp, threshold=0.0)
    assert r2["methods"]["RRP"][0] in NAMES and 1 / len(NAMES) <= r2["score"] <= 1
    page = result_html("p1.png", r)
    assert f'data-prediction="{r["prediction"]}"' in page and 'data-verdict="id"' in page
    assert own_image_figure(x, r).data[0].type == "image"


def test_widget_updates_on_pick_and_on_upload(tiny, photo_dir):
    box = own_image_widget(tiny, NAMES, threshold=0.5, folder=photo_dir)
    (upload, pick), readout = box.children[0].children, box.children[1]
    assert "rl-own-image" in box._dom_classes and len(pick.options) == 3
    pick.value = pick.options[2][1]
    assert 'data-name="p1.png"' in readout.value
    buf = io.BytesIO()
    Image.new("RGB", (30, 30), (250, 10, 10)).save(buf, format="PNG")
    upload.value = (
        {
            "name": "red.png",
            "type": "image/png",
            "size": buf.tell(),
            "content": memoryview(buf.getvalue()),
            "last_modified": datetime.datetime(2026, 1, 1),
        },
    )
    assert 'data-name="red.png"' in readout.value and "data-prediction=" in readout.value
