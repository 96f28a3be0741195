"""Where do adapted image features go? One shared UMAP map, cosine-drift histograms and CKA (notebook 05).

The paper's explanation for reprogramming's robustness (Geng & Chen, arXiv 2403.10800, Sec. 1 and 4) is that it
leaves the pretrained encoder untouched, while full fine-tuning rewrites it and distorts the pretrained features
(Kumar et al., ICLR 2022). This module makes that visible on the *same images*:

* **One shared map.** UMAP (McInnes et al., 2018; ``umap-learn``) is fitted **once**, on the pretrained features
  A [N, D]; the features of every adapted model B [N, D] are placed with the fitted model's ``transform`` — each
  new point lands near its nearest pretrained neighbours. So all models share the pretrained map's coordinates
  (fitting a separate UMAP per model would give unrelated axes). Features are L2-normalised, so the default
  euclidean metric ranks neighbours exactly as cosine does.
* **Picking a class.** :func:`class_map_explorer` (ipywidgets Dropdown, live) fades the other classes;
  :func:`class_map_static_figure` does the same with a plotly dropdown, for exported HTML with no kernel.
* **Cosine drift** c_i = ⟨a_i, b_i⟩ / (‖a_i‖ ‖b_i‖) per image, and **linear CKA** between A and B — thin wrappers
  over :mod:`reprolab.evaluation.drift`, which states the equations. Neither depends on the 2-D map.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from reprolab.errors import ReprolabError, ShapeError
from reprolab.evaluation.drift import cosine_drift, drift_summary, linear_cka
from reprolab.evaluation.metrics import to_numpy

__all__ = [
    "SharedMap",
    "shared_map",
    "map_figure",
    "class_map_explorer",
    "class_map_static_figure",
    "drift_histograms",
    "drift_table",
    "cka_matrix",
]

SYMBOLS = ["circle", "diamond", "x", "square", "triangle-up", "star"]
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


class SharedMap:
    """A UMAP fitted once on reference features; :meth:`transform` places other features in the same map."""

    def __init__(
        self,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        seed: int = 0,
        n_epochs: int | None = None,
        metric: str = "euclidean",
    ):
        self.params = dict(
            n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, n_epochs=n_epochs, metric=metric
        )
        self.model = None
        self.dim: int | None = None

    def fit(self, reference) -> SharedMap:
        import umap  # imported here: numba compiles it on first use (tens of seconds, once per process)

        x = _matrix(reference, "reference")
        if len(x) <= self.params["n_neighbors"]:
            raise ShapeError(
                f"UMAP needs more than n_neighbors={self.params['n_neighbors']} points, got {len(x)}; "
                "pass more images or lower n_neighbors"
            )
        with warnings.catch_warnings():  # "n_jobs overridden by random_state": single-threaded on purpose
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            self.model = umap.UMAP(n_components=2, n_jobs=1, **self.params).fit(x)
        self.dim = x.shape[1]
        return self

    @property
    def reference_coords(self) -> np.ndarray:
        self._need_fit()
        return np.asarray(self.model.embedding_)

    def transform(self, feats) -> np.ndarray:
        """[N, 2] coordinates of ``feats`` [N, D] in the fitted map (no refit)."""
        self._need_fit()
        x = _matrix(feats, "feats")
        if x.shape[1] != self.dim:
            raise ShapeError(
                f"features have dimension {x.shape[1]}, the map was fitted on {self.dim}; "
                "use image features from the same encoder family (same D)"
            )
        return np.asarray(self.model.transform(x))

    def _need_fit(self):
        if self.model is None:
            raise ReprolabError("the shared map is not fitted; call fit(pretrained_features) first")


def _matrix(x, name: str) -> np.ndarray:
    a = to_numpy(x, name, dtype=np.float32)
    if a.ndim != 2 or len(a) == 0:
        raise ShapeError(f"{name} must be a non-empty [N, D] feature matrix, got shape {a.shape}")
    return a


def shared_map(features: dict, reference: str = "pretrained", **umap_kw) -> tuple[dict, SharedMap]:
    """``({name: [N, 2]}, fitted map)``: fit on ``features[reference]`` once, transform every other entry."""
    if reference not in features:
        raise ReprolabError(
            f"features has no {reference!r} entry (got {list(features)}); add the pretrained features under that name"
        )
    m = SharedMap(**umap_kw).fit(features[reference])
    coords = {name: (m.reference_coords if name == reference else m.transform(f)) for name, f in features.items()}
    return coords, m


def _labels(labels, n: int) -> np.ndarray:
    y = to_numpy(labels, "labels", dtype=np.int64).reshape(-1)
    if len(y) != n:
        raise ShapeError(f"{len(y)} labels for {n} points; pass the labels of the mapped images")
    return y


def map_figure(coords: dict, labels, classnames, show_class: int | None = None, widget: bool = False):
    """All models in one map: colour = class, marker symbol = model. ``show_class`` highlights one class."""
    fig = (go.FigureWidget if widget else go.Figure)()
    for k, (model, xy) in enumerate(coords.items()):
        y, first = _labels(labels, len(xy)), True
        for c, cname in enumerate(classnames):
            sel = y == c
            if not sel.any():
                continue
            fig.add_scattergl(
                x=xy[sel, 0],
                y=xy[sel, 1],
                mode="markers",
                name=f"{model}: {cname}",
                legendgroup=model,
                legendgrouptitle_text=model if first else None,
                marker=dict(
                    symbol=SYMBOLS[k % len(SYMBOLS)],
                    color=PALETTE[c % len(PALETTE)],
                    size=6,
                    opacity=_opacity(c, show_class),
                ),
                meta=[c],
                hovertemplate=f"{model} · {cname}<extra></extra>",
            )
            first = False
    fig.update_layout(
        title="UMAP fitted on the pretrained features; the other models placed with .transform",
        height=560,
        xaxis_title="UMAP 1",
        yaxis_title="UMAP 2",
        legend=dict(font=dict(size=10)),
    )
    return fig


def _opacity(c: int, show_class: int | None) -> float:
    return 0.8 if show_class is None or c == show_class else 0.06


def class_map_explorer(coords: dict, labels, classnames):
    """The shared map with a Dropdown picking the class shown (others fade), updated with ``batch_update``."""
    import ipywidgets as W

    fig = map_figure(coords, labels, classnames, widget=True)
    pick = W.Dropdown(
        options=[("all classes", -1)] + [(c, j) for j, c in enumerate(classnames)], value=-1, description="class"
    )
    pick.add_class("rl-class-dropdown")

    def update(change=None):
        show = None if pick.value < 0 else pick.value
        with fig.batch_update():
            for tr in fig.data:
                tr.marker.opacity = _opacity(tr.meta[0], show)

    pick.observe(update, names="value")
    box = W.VBox([pick, fig])
    box.dropdown, box.figure = pick, fig
    return box


def class_map_static_figure(coords, labels, classnames) -> go.Figure:
    """The explorer's static fallback (exported HTML, nbviewer, no kernel): the same map with a plotly dropdown
    whose entries carry every trace's opacity for that class, so picking a class works with no widget front end."""
    fig = map_figure(coords, labels, classnames)
    choices = [("all classes", None)] + [(c, j) for j, c in enumerate(classnames)]
    buttons = [
        dict(
            label=label,
            method="restyle",
            args=[{"marker.opacity": [_opacity(tr.meta[0], show) for tr in fig.data]}, list(range(len(fig.data)))],
        )
        for label, show in choices
    ]
    fig.update_layout(
        updatemenus=[dict(buttons=buttons, direction="down", x=0.0, xanchor="left", y=1.12, yanchor="top")]
    )
    return fig


def drift_histograms(reference, adapted: dict, bins: int = 40) -> go.Figure:
    """Histogram of per-image cosine drift cos(pretrained, adapted) for each adapted model (1 = unchanged)."""
    fig = go.Figure()
    for k, (name, f) in enumerate(adapted.items()):
        c = cosine_drift(reference, f)
        fig.add_histogram(
            x=c, name=f"{name} (mean {c.mean():.3f})", opacity=0.6, nbinsx=bins, marker_color=PALETTE[k % len(PALETTE)]
        )
    fig.update_layout(
        barmode="overlay",
        height=380,
        title="Cosine between each image's pretrained and adapted feature",
        xaxis_title="cosine (1 = feature unchanged)",
        yaxis_title="images",
    )
    return fig


def drift_table(reference, adapted: dict) -> pd.DataFrame:
    """Per adapted model: mean/std cosine drift and linear CKA to the pretrained features."""
    rows = {name: drift_summary(reference, f) for name, f in adapted.items()}
    return pd.DataFrame(rows).T.rename(
        columns={"cosine_mean": "cosine mean", "cosine_std": "cosine std", "cka": "CKA to pretrained"}
    )


def cka_matrix(features: dict) -> pd.DataFrame:
    """Pairwise linear CKA between all feature sets (same images), a symmetric table with ones on the diagonal."""
    names = list(features)
    m = np.ones((len(names), len(names)))
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            m[a, b] = m[b, a] = linear_cka(features[names[a]], features[names[b]])
    return pd.DataFrame(m, index=names, columns=names)
