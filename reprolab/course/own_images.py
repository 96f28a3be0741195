"""Your own image through the course's models: zero-shot top-5, the reprogrammed view, RP/RRP/FT predictions, and
its MCM score (paper §5; Ming et al., 2022) against the ID/OOD threshold.

* :func:`predict_image` — the numbers, as a dict (the logic; the widget and the figure only show it);
* :func:`own_image_widget` — upload an image (ipywidgets ``FileUpload``) or pick one from a folder (``Dropdown``);
  every choice re-runs :func:`predict_image` and rewrites the readout;
* :func:`own_image_figure` — the static fallback (plotly): the image, the reprogrammed view and the top-5 bars.

The threshold is the detector's FPR95 operating point unless given: the largest t that keeps 95 % of the ID test
images (:func:`threshold_at_tpr`). An image is called "in-distribution" when its score s ≥ t (ID is the positive
class, as everywhere in the kit). Stable DOM markers for browser tests: the box has CSS class ``rl-own-image``, the
upload ``rl-own-upload``, the folder picker ``rl-own-pick``, and the readout holds ``<span class="rl-own-result"
data-name=… data-prediction=… data-score=… data-threshold=… data-verdict=id|ood>``.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch

from reprolab.datasets.base import IMAGE_EXTS, open_image, to_array
from reprolab.evaluation.evaluate import ood_score
from reprolab.methods.base import ZeroShot

SIDE = 224  # images are shown and encoded from a 224-px centre crop (the encoder resizes to its own canvas)


def load_image(src, name: str = "image", side: int = SIDE) -> torch.Tensor:
    """A path or the bytes of an image file → FloatTensor [3, side, side] in [0, 1] (shorter side, centre crop)."""
    from reprolab.datasets.base import fit_size

    data = bytes(src) if isinstance(src, (bytes, bytearray, memoryview)) else src
    x = torch.from_numpy(np.ascontiguousarray(to_array(open_image(data, name)))).permute(2, 0, 1)
    return fit_size(x.clamp(0, 1), side)


def threshold_at_tpr(id_scores, tpr: float = 0.95) -> float:
    """The largest threshold that keeps at least ``tpr`` of the ID scores (s ≥ t kept)."""
    s = np.sort(np.asarray(id_scores, dtype=float))
    return float(s[int(np.floor((1 - tpr) * len(s)))])


def _is_clip_style(method) -> bool:
    return not hasattr(method, "head")  # FT/LP-FT/LP have a trained head: their logits are not 100·cos


@torch.no_grad()
def predict_image(image, encoder, classnames, methods=None, detector=None, threshold=None, T: float = 0.01) -> dict:
    """Everything the widget shows for one image [3, H, W] in [0, 1].

    ``methods``: {label: trained method} (e.g. RP, RRP, FT) — each one's top class and probability; ``detector``:
    the method whose MCM score is compared with ``threshold`` (default: zero-shot). Returns ``{"top5": [(class,
    p)], "prediction", "methods": {label: (class, p)}, "score", "threshold", "verdict", "reprogrammed": tensor or
    None}``.
    """
    zs = ZeroShot(encoder).setup(list(classnames))
    x = image[None].to(encoder.device)
    probs = zs.logits(x).softmax(-1)[0].cpu()
    top = probs.topk(min(5, len(classnames)))
    out = {
        "top5": [(classnames[int(i)], float(p)) for p, i in zip(top.values, top.indices)],
        "prediction": classnames[int(top.indices[0])],
        "methods": {},
        "reprogrammed": None,
    }
    for label, m in (methods or {}).items():
        m.eval()
        p = m.logits(x).softmax(-1)[0].cpu()
        out["methods"][label] = (classnames[int(p.argmax())], float(p.max()))
        if out["reprogrammed"] is None and hasattr(m, "reprogram") and getattr(m, "mode", "image") != "text":
            out["reprogrammed"] = m.reprogram(x)[0].cpu()
    det = detector or zs
    logits = det.logits(x)
    out["score"] = float(ood_score(logits, clip_style=_is_clip_style(det), logit_scale=encoder.logit_scale, T=T)[0])
    out["threshold"] = None if threshold is None else float(threshold)
    out["verdict"] = None if threshold is None else ("id" if out["score"] >= threshold else "ood")
    return out


def result_html(name: str, r: dict) -> str:
    """The readout: top-5, the trained methods' predictions and the ID/OOD verdict, with ``data-*`` markers."""
    v = r["verdict"] or "none"
    thr = "nan" if r["threshold"] is None else f"{r['threshold']:.6f}"
    attrs = (
        f'data-name="{html.escape(name)}" data-prediction="{html.escape(r["prediction"])}" '
        f'data-score="{r["score"]:.6f}" data-threshold="{thr}" data-verdict="{v}"'
    )
    rows = "".join(f"<tr><td>{html.escape(c)}</td><td>{100 * p:.1f}%</td></tr>" for c, p in r["top5"])
    meth = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(c)} ({100 * p:.1f}%)</li>" for k, (c, p) in r["methods"].items()
    )
    verdict = (
        "no threshold given"
        if r["verdict"] is None
        else f"{'≥' if v == 'id' else '<'} threshold {r['threshold']:.4f} → "
        + ("looks <b>in-distribution</b>" if v == "id" else "flagged as <b>out-of-distribution</b>")
    )
    return (
        f'<span class="rl-own-result" {attrs}><b>{html.escape(name)}</b> — zero-shot says '
        f"<b>{html.escape(r['prediction'])}</b><table>{rows}</table>"
        + (f"<ul>{meth}</ul>" if meth else "<i>train RP / RRP / FT (notebooks 03–06) to see their predictions</i>")
        + f"<br>MCM score {r['score']:.4f} {verdict}</span>"
    )


def own_image_figure(image, result: dict, title: str = "your image"):
    """Static plotly figure: the image, the reprogrammed view (when a reprogrammer was given) and the top-5 bars."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    views = [("image", image)] + (
        [("reprogrammed view", result["reprogrammed"])] if result["reprogrammed"] is not None else []
    )
    fig = make_subplots(rows=1, cols=len(views) + 1, subplot_titles=[v[0] for v in views] + ["zero-shot top-5"])
    for k, (_, img) in enumerate(views, start=1):
        fig.add_trace(go.Image(z=(img.permute(1, 2, 0).numpy() * 255).astype(np.uint8)), row=1, col=k)
    names, ps = zip(*result["top5"])
    fig.add_trace(go.Bar(x=list(ps)[::-1], y=list(names)[::-1], orientation="h"), row=1, col=len(views) + 1)
    fig.update_layout(
        title=f"{title}: {result['prediction']} (MCM {result['score']:.3f})", height=320, showlegend=False
    )
    return fig


def folder_images(folder) -> list[Path]:
    folder = Path(folder) if folder else None
    if folder is None or not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS)[:200]


def own_image_widget(encoder, classnames, methods=None, detector=None, threshold=None, folder=None):
    """Upload or pick an image; the readout and the views update on every choice (module docstring)."""
    import ipywidgets as W

    upload = W.FileUpload(accept="image/*", multiple=False, description="upload an image")
    upload.add_class("rl-own-upload")
    files = folder_images(folder)
    pick = W.Dropdown(options=[("— pick one —", None)] + [(str(p.relative_to(folder)), p) for p in files])
    pick.add_class("rl-own-pick")
    readout = W.HTML("<i>upload an image or pick one</i>")
    readout.add_class("rl-own-readout")
    views = W.Output()

    def show(name, image):
        r = predict_image(image, encoder, classnames, methods, detector, threshold)
        readout.value = result_html(name, r)
        views.clear_output(wait=True)
        with views:
            own_image_figure(image, r, title=name).show()

    def on_upload(change):
        for f in change["new"] or ():
            show(f["name"], load_image(f["content"], f["name"]))

    def on_pick(change):
        if change["new"] is not None:
            show(change["new"].name, load_image(change["new"]))

    upload.observe(on_upload, names="value")
    pick.observe(on_pick, names="value")
    box = W.VBox([W.HBox([upload, pick]), readout, views])
    box.add_class("rl-own-image")
    return box
