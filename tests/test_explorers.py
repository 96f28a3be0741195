"""The notebook explorers: OOD threshold slider, perturbation explorer, shared UMAP map (small synthetic data)."""

import numpy as np
import pytest
import torch

from reprolab.course.embedding_map import (
    cka_matrix,
    class_map_explorer,
    class_map_static_figure,
    drift_table,
    map_figure,
    shared_map,
)
from reprolab.course.perturbation_explorer import (
    perturbation_explorer,
    perturbation_figure,
    perturbation_static_figure,
    perturbed_probs,
)
from reprolab.course.threshold_explorer import (
    roc_figure,
    threshold_at_tpr,
    threshold_explorer,
    threshold_figure,
    threshold_metrics,
)
from reprolab.errors import ReprolabError, ShapeError
from reprolab.evaluation.metrics import ood_metrics


def _attr(html, name):
    return html.split(f'data-{name}="')[1].split('"')[0]


# ----- OOD threshold ------------------------------------------------------------------------------------------------
def test_threshold_metrics_counts():
    m = threshold_metrics([0.9, 0.8, 0.7, 0.6], {"a": [0.5, 0.75], "b": [0.95, 0.1]}, 0.7)
    assert m["tpr"] == 0.75 and m["fpr_sets"] == {"a": 0.5, "b": 0.5} and m["fpr"] == 0.5
    assert m["rejected"] == {"ID": 1, "a": 1, "b": 1}


def test_threshold_at_tpr_is_the_fpr95_point():
    rng = np.random.default_rng(0)
    i, o = rng.normal(1, 1, 203), rng.normal(0, 1, 150)
    t = threshold_at_tpr(i)
    m = threshold_metrics(i, {"o": o}, t)
    assert m["tpr"] >= 0.95 and np.mean(i >= np.nextafter(t, np.inf)) < 0.95  # largest such threshold
    assert m["fpr"] == pytest.approx(ood_metrics(i, o)["fpr95"])


def test_threshold_explorer_updates_readout_figure_and_gallery():
    rng = np.random.default_rng(1)
    i, o1, o2 = rng.uniform(0.4, 1, 40), rng.uniform(0, 0.6, 30), rng.uniform(0.2, 0.9, 20)
    imgs = {"ID": torch.rand(40, 3, 8, 8), "o1": torch.rand(30, 3, 8, 8)}
    box = threshold_explorer(i, {"o1": o1, "o2": o2}, images=imgs, n_show=5)
    assert "rl-threshold-slider" in box.slider._dom_classes and "rl-threshold-figure" in box.figure._dom_classes
    assert float(_attr(box.readout.value, "threshold")) == pytest.approx(threshold_at_tpr(i), rel=1e-5)
    box.slider.value = 0.5
    m = threshold_metrics(i, {"o1": o1, "o2": o2}, box.slider.value)
    assert float(_attr(box.readout.value, "tpr")) == pytest.approx(m["tpr"], abs=1e-6)
    assert float(_attr(box.readout.value, "fpr")) == pytest.approx(m["fpr"], abs=1e-6)
    assert box.figure.layout.shapes[0].x0 == pytest.approx(box.slider.value)
    assert f"{m['rejected']['o1']} of 30 rejected" in box.gallery.value
    assert box.gallery.value.count("<img") == min(5, m["rejected"]["ID"]) + min(5, m["rejected"]["o1"])
    assert len(box.figure.data) == 3 and len(threshold_figure(i, {"o1": o1}).data) == 2
    assert len(roc_figure(i, {"o1": o1, "o2": o2}).data) == 3  # two ROC curves + chance line


def test_threshold_explorer_rejects_misaligned_images():
    with pytest.raises(ReprolabError, match="one image per score"):
        threshold_explorer([0.5, 0.6], {"o": [0.1]}, images={"o": torch.rand(3, 3, 8, 8)})


# ----- perturbation -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rp():
    from reprolab.encoders import load_encoder
    from reprolab.methods import build_method

    return build_method("reprogrammer", load_encoder("tiny"), mode="both").setup(["cat", "dog", "car", "ship"])


def test_perturbed_probs_matches_the_method_at_scale_one(rp):
    x = torch.rand(3, 3, 32, 32)
    p, xt = perturbed_probs(rp, x, scales=[0.0, 1.0])
    assert p.shape == (2, 3, 4) and xt.shape == (2, 3, 3, 32, 32)
    with torch.no_grad():
        ref = torch.softmax(rp.logits(x), dim=1).numpy()
        plain = rp.image_rp.place(x)
    np.testing.assert_allclose(p[1], ref, atol=1e-5)
    torch.testing.assert_close(xt[0], plain)  # λ = 0 removes the frame
    assert len(perturbation_figure(rp, x[0], rp.classnames, top=2).data) == 2


def test_perturbation_explorer_callbacks(rp):
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    box = perturbation_explorer(rp, x, rp.classnames, labels=y, top=3)
    assert "rl-perturbation-scale" in box.scale._dom_classes and "rl-perturbation-figure" in box.figure._dom_classes
    before = box.image.value
    p, _ = perturbed_probs(rp, x[0], [1.0])
    assert _attr(box.readout.value, "pred") == rp.classnames[int(p[0, 0].argmax())]
    box.scale.value = 0.0
    assert float(_attr(box.readout.value, "scale")) == 0.0 and box.image.value != before
    p0, _ = perturbed_probs(rp, x[0], [0.0])
    assert list(box.figure.data[0].x) == pytest.approx(sorted(p0[0, 0], reverse=True)[:3], abs=1e-6)
    box.scale.value = 1.0
    box.channels[0].value = False  # switch off red: the frame changes, so does the input
    assert box.image.value != before
    box.picker.value = 2
    p2, _ = perturbed_probs(rp, x[2], [1.0], (False, True, True))
    assert _attr(box.readout.value, "pred") == rp.classnames[int(p2[0, 0].argmax())]


def test_perturbation_explorer_takes_an_imageset(rp, tiny_set):
    box = perturbation_explorer(rp, tiny_set, rp.classnames, max_images=5)
    labels = [name.split("true: ")[1].rstrip(")") for name, _ in box.picker.options]
    assert len(labels) == 5 and len(set(labels)) > 1  # spread over the set, not the first five images


def test_perturbation_static_figure_carries_every_scale(rp):
    """The fallback without widgets: slider step λ holds the images and top classes the explorer shows at λ."""
    import base64

    from reprolab.course.threshold_explorer import png_bytes

    x, y = torch.rand(3, 3, 32, 32), [0, 1, 2]
    fig = perturbation_static_figure(rp, x, rp.classnames, labels=y, scales=[0.0, 1.0, 2.0], top=2, n_images=2)
    assert [type(t).__name__ for t in fig.data] == ["Image", "Bar", "Image", "Bar"]
    (slider,) = fig.layout.sliders
    assert [s.label for s in slider.steps] == ["0.00", "1.00", "2.00"] and slider.active == 1
    p, xt = perturbed_probs(rp, x[1], [0.0])
    upd, idx = slider.steps[0].args
    assert list(idx) == [0, 2, 1, 3]  # the images first, then the bars
    assert upd["source"][1] == "data:image/png;base64," + base64.b64encode(png_bytes(xt[0, 0])).decode()
    assert upd["x"][3] == pytest.approx(sorted(p[0, 0], reverse=True)[:2], abs=1e-6)
    assert upd["y"][3][0] == rp.classnames[int(p[0, 0].argmax())]
    assert "true: dog" in fig.layout.annotations[2].text


def test_perturbation_explorer_needs_an_image_side(rp):
    from reprolab.methods import build_method

    text_only = build_method("reprogrammer", rp.encoder, mode="text").setup(rp.classnames)
    with pytest.raises(ReprolabError, match="image side"):
        perturbation_explorer(text_only, torch.rand(2, 3, 32, 32), rp.classnames)


# ----- shared UMAP map, drift -----------------------------------------------------------------------------------------
def _clusters(n=90, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, d)) * 4
    y = np.arange(n) % 3
    x = centres[y] + rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def test_shared_map_fits_once_and_transforms_the_others(monkeypatch):
    import umap

    fits = []
    orig = umap.UMAP.fit
    monkeypatch.setattr(umap.UMAP, "fit", lambda self, X, *a, **k: fits.append(len(X)) or orig(self, X, *a, **k))
    a, y = _clusters()
    near = a + 1e-3 * np.random.default_rng(1).normal(size=a.shape).astype(np.float32)
    far, _ = _clusters(60, seed=2)
    coords, m = shared_map({"pretrained": a, "reprogrammed": near, "fine-tuned": far}, n_neighbors=10, n_epochs=60)
    assert fits == [90]  # one fit, on the pretrained features only
    assert coords["pretrained"].shape == (90, 2) and coords["reprogrammed"].shape == (90, 2)
    assert coords["fine-tuned"].shape == (60, 2)
    np.testing.assert_array_equal(coords["pretrained"], m.reference_coords)
    # a barely-moved copy lands next to its original (much closer than a random pair of points)
    d_same = np.linalg.norm(coords["reprogrammed"] - coords["pretrained"], axis=1).mean()
    d_rand = np.linalg.norm(coords["pretrained"] - coords["pretrained"][::-1], axis=1).mean()
    assert d_same < 0.3 * d_rand
    with pytest.raises(ShapeError, match="dimension"):
        m.transform(np.ones((4, 8)))


def test_map_figure_and_class_dropdown():
    rng = np.random.default_rng(0)
    coords = {"pretrained": rng.normal(size=(30, 2)), "fine-tuned": rng.normal(size=(30, 2))}
    y = np.arange(30) % 3
    assert len(map_figure(coords, y, ["a", "b", "c"]).data) == 6  # models × classes
    box = class_map_explorer(coords, y, ["a", "b", "c"])
    box.dropdown.value = 1
    ops = {(tr.legendgroup, tr.meta[0]): tr.marker.opacity for tr in box.figure.data}
    assert ops[("fine-tuned", 1)] > 0.5 and ops[("fine-tuned", 0)] < 0.1 and ops[("pretrained", 2)] < 0.1
    box.dropdown.value = -1
    assert all(tr.marker.opacity > 0.5 for tr in box.figure.data)
    # the static fallback: each dropdown entry carries the opacities the widget sets for that class
    fig = class_map_static_figure(coords, y, ["a", "b", "c"])
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["all classes", "a", "b", "c"]
    box.dropdown.value = 1
    assert list(buttons[2].args[0]["marker.opacity"]) == [tr.marker.opacity for tr in box.figure.data]


def test_drift_table_and_cka_matrix():
    a, _ = _clusters()
    rot = np.linalg.qr(np.random.default_rng(3).normal(size=(16, 16)))[0]
    t = drift_table(a, {"same": a, "rotated": a @ rot})
    assert t.loc["same", "cosine mean"] == pytest.approx(1.0) and t.loc["same", "CKA to pretrained"] == pytest.approx(1)
    assert t.loc["rotated", "CKA to pretrained"] == pytest.approx(1.0)  # CKA ignores rotations, cosine does not
    assert t.loc["rotated", "cosine mean"] < 0.9
    m = cka_matrix({"a": a, "b": a @ rot, "c": np.random.default_rng(4).normal(size=a.shape)})
    assert m.shape == (3, 3) and np.allclose(np.diag(m), 1) and m.loc["a", "c"] < 0.5
