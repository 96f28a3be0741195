"""The timed pieces of ``reprolab bench`` (see :mod:`reprolab.bench.suite`): α moves, training-step cost, extraction.

1. **α move** — the Residual Reprogrammer (paper §3.4) blends RP and zero-shot features with α; the official code
   re-encodes every image for each α, :class:`reprolab.course.alpha_explorer.AlphaExplorer` recomputes the metrics from
   cached features. Timed: ``metrics_at(α)`` on synthetic features (ID + shift + OOD sets), against one encoder pass
   over the same number of images, extrapolated linearly from a few timed batches.
2. **Step cost** — one training step (batch assembly, forward, loss, backward, optimiser step, post-step hook: the
   body of :func:`reprolab.training.fit`) of the image reprogrammer vs full fine-tuning, same encoder, batch and
   input size. RP and FT steps alternate, so load changes on a shared machine hit both alike.
3. **Extraction** — images/s of the kit's cached path (:meth:`reprolab.evaluation.features.FeatureCache.get_or_compute`,
   cold cache, so it includes writing the file) vs a bare ``torch.inference_mode`` loop over the same batches.

Medians over repeats are reported; ratios measured side by side in one run are the figures to trust.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class RandomImages(torch.utils.data.Dataset):
    """Preloaded random images in [0,1] with the ImageSet attributes the kit reads (no files)."""

    def __init__(self, n: int, size: int, seed: int = 0, classnames=CIFAR10):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, size, size, generator=g)
        self.labels = torch.arange(n) % len(classnames)
        self.classnames, self.name, self.kind = list(classnames), f"bench-random-{size}px", "id"
        self.key = f"bench-random-n{n}-s{seed}-{size}px"

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])


def _ms(xs) -> float:
    return 1000.0 * statistics.median(xs)


# ----- 1. α move ------------------------------------------------------------------------------------------------------
def alpha_move(
    n: int = 10_000,
    dim: int = 512,
    classes: int = 10,
    moves: int = 50,
    encoder=None,
    probe_batches: int = 3,
    batch_size: int = 128,
    seed: int = 0,
) -> dict:
    """Median ms of ``AlphaExplorer.metrics_at`` over ``moves`` α values (n ID + n shift + n OOD synthetic features),
    and the recompute cost of one RP encoder pass over the same 3n images (``encoder`` given)."""
    from reprolab.course.alpha_explorer import AlphaExplorer

    rng = np.random.default_rng(seed)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    noise = lambda m: rng.standard_normal((m, dim)) / np.sqrt(dim)  # noqa: E731  (norm ≈ 1)
    mu, y, y_shift = unit(rng.standard_normal((classes, dim))), rng.integers(0, classes, n), rng.integers(0, classes, n)
    feats = lambda yy, k: unit(k * mu[yy] + noise(len(yy)))  # noqa: E731  (class signal k against unit noise)
    ex = AlphaExplorer(
        feats(y, 1.5),
        feats(y, 1.0),
        unit(mu + 0.3 * noise(classes)),
        mu,
        y,
        shift={"shift": (feats(y_shift, 0.8), feats(y_shift, 0.6), y_shift)},
        ood={"ood": (unit(noise(n)), unit(noise(n)))},
    )
    alphas = rng.permutation(np.linspace(0.0, 1.0, moves))
    for a in alphas[:3]:  # warm-up
        ex.metrics_at(float(a))
    times = []
    for a in alphas:
        t = time.perf_counter()
        ex.metrics_at(float(a))
        times.append(time.perf_counter() - t)
    out = dict(
        alpha_move_ms=_ms(times),
        alpha_move_ms_max=1000 * max(times),
        moves=len(times),
        n_id=n,
        n_shift=n,
        n_ood=n,
        dim=dim,
        classes=classes,
        alpha_recompute_ratio=None,
        recompute_s_per_alpha=None,
    )
    if encoder is not None:
        from reprolab.methods.reprogrammer import Reprogrammer

        rp = Reprogrammer(encoder, mode="image").setup(CIFAR10).eval()
        x = torch.rand(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
        bt = []
        with torch.no_grad():
            for _ in range(probe_batches + 1):
                t = time.perf_counter()
                rp.image_features(x)
                bt.append(time.perf_counter() - t)
        per_image = statistics.median(bt[1:]) / batch_size
        total = 3 * n
        out.update(
            recompute_s_per_alpha=per_image * total,
            recompute_img_per_s=1.0 / per_image,
            alpha_recompute_ratio=per_image * total / (out["alpha_move_ms"] / 1000),
            recompute_encoder=encoder.display_name,
            recompute_note=(
                f"one reprogrammed encoder pass over {total} images (32 px → {encoder.image_size} "
                f"px canvas), extrapolated linearly from {probe_batches} timed batches of "
                f"{batch_size}; RRP needs a zero-shot pass too, so the real cost is ~2× this"
            ),
        )
    return out


# ----- 2. step cost ---------------------------------------------------------------------------------------------------
def _stepper(method, dataset, batch_size: int):
    """The body of one :func:`reprolab.training.fit` step as a closure (same calls, same order)."""
    from reprolab.training import _batch, build_optimizers, training_step

    groups = method.trainable_parameters()
    opts = build_optimizers(groups)
    lr_wd = {id(p): (g["lr"], g["weight_decay"]) for o in opts for g in o.param_groups for p in g["params"]}
    idx = torch.arange(batch_size) % len(dataset)
    method.train()

    def step():  # the training loop's own step, so the benchmark times exactly what fit() runs
        images, labels = _batch(dataset, idx)
        training_step(method, opts, images, labels, lr_wd, where="in the benchmark step")

    return step


def step_cost(encoder, batch_size: int = 32, repeats: int = 10, warmup: int = 2, input_size: int = 32) -> dict:
    """Median wall time of one RP (mode="image") step and one FT step on ``encoder``; RP and FT alternate."""
    from reprolab.methods.finetune import FineTune
    from reprolab.methods.reprogrammer import Reprogrammer

    data = RandomImages(max(batch_size, 2 * len(CIFAR10)), input_size)
    rp = Reprogrammer(encoder, mode="image").setup(data.classnames)
    ft = FineTune(encoder).setup(data.classnames)  # deep-copies the encoder
    frozen_leak = sum(p.numel() for p in rp.encoder.parameters() if p.requires_grad)
    steps = {"rp": _stepper(rp, data, batch_size), "ft": _stepper(ft, data, batch_size)}
    times = {"rp": [], "ft": []}
    for i in range(warmup + repeats):
        for name in ("rp", "ft") if i % 2 == 0 else ("ft", "rp"):
            t = time.perf_counter()
            steps[name]()
            if i >= warmup:
                times[name].append(time.perf_counter() - t)
    paired = [a / b for a, b in zip(times["rp"], times["ft"])]
    out = dict(
        encoder=encoder.display_name,
        encoder_id=encoder.id,
        canvas=encoder.image_size,
        input_size=input_size,
        batch_size=batch_size,
        repeats=repeats,
        warmup=warmup,
        rp_step_ms=_ms(times["rp"]),
        ft_step_ms=_ms(times["ft"]),
        rp_over_ft_step=statistics.median(times["rp"]) / statistics.median(times["ft"]),
        rp_over_ft_paired_median=statistics.median(paired),
        rp_trainable_params=sum(p.numel() for g in rp.trainable_parameters() for p in g["params"]),
        ft_trainable_params=sum(p.numel() for g in ft.trainable_parameters() for p in g["params"]),
        encoder_params_requiring_grad_during_rp=frozen_leak,
    )
    del rp, ft, steps
    gc.collect()
    return out


def vit_b32_random():
    """open_clip ViT-B-32 with random weights behind the Encoder interface (timing only: nothing to download)."""
    import open_clip

    from reprolab.encoders import OpenClipEncoder

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = open_clip.create_model("ViT-B-32")
    return OpenClipEncoder(
        model,
        id="openclip-ViT-B-32-random",
        tokenizer=open_clip.get_tokenizer("ViT-B-32"),
        display_name="CLIP ViT-B-32 architecture, random weights (timing only)",
    )


# ----- 3. extraction --------------------------------------------------------------------------------------------------
def extraction(encoder, n: int = 512, batch_size: int = 128, repeats: int = 3) -> dict:
    """img/s of FeatureCache.get_or_compute (cold cache, zero-shot outputs) vs a bare inference_mode loop."""
    from reprolab.evaluation.features import FeatureCache, method_key, method_outputs
    from reprolab.methods.base import ZeroShot

    data = RandomImages(n, encoder.image_size)  # already at the canvas: resize is a no-op on both paths
    zs = ZeroShot(encoder).setup(data.classnames)
    fn, outputs = method_outputs(zs)
    key = method_key(zs, data, outputs)

    def kit():
        with tempfile.TemporaryDirectory() as d:
            FeatureCache(d).get_or_compute(key, fn, data, batch_size=batch_size, progress=False)

    def bare():
        with torch.inference_mode():
            for i in range(0, n, batch_size):
                F.normalize(encoder.encode_image(data.images[i : i + batch_size]), dim=-1)

    with torch.inference_mode():
        encoder.encode_image(data.images[:batch_size])  # warm-up
    times = {"kit": [], "bare": []}
    for i in range(repeats):
        pair = (("kit", kit), ("bare", bare))
        for name, f in pair if i % 2 == 0 else pair[::-1]:
            t = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t)
    kit_ips, bare_ips = n / statistics.median(times["kit"]), n / statistics.median(times["bare"])
    return dict(
        encoder=encoder.display_name,
        n_images=n,
        batch_size=batch_size,
        repeats=repeats,
        kit_img_per_s=kit_ips,
        bare_img_per_s=bare_ips,
        extraction_ratio=kit_ips / bare_ips,
        kit_path="FeatureCache.get_or_compute, cold cache (extract + safetensors write)",
    )


# ----- 4. text-only reprogramming: cached frozen features vs images ---------------------------------------------------
def text_rp_cached(encoder, batch_size: int = 32, repeats: int = 10, warmup: int = 2, input_size: int = 32) -> dict:
    """Steps per second of text-only RP trained from the images vs from cached frozen image features.

    Both are ``fit``'s own step (:func:`_stepper`) on the same batch; the cached side's one-off image pass
    (``FeatureSet.frozen``) is reported separately (``cache_build_s``) — it is paid once per course, not per step.
    """
    from reprolab.evaluation.frozen import FeatureSet
    from reprolab.methods.reprogrammer import Reprogrammer

    data = RandomImages(max(batch_size, 2 * len(CIFAR10)), input_size)
    t = time.perf_counter()
    feats = FeatureSet.frozen(encoder, data, batch_size=batch_size, progress=False)
    build = time.perf_counter() - t
    steps = {
        "images": _stepper(Reprogrammer(encoder, mode="text").setup(data.classnames), data, batch_size),
        "cached": _stepper(Reprogrammer(encoder, mode="text").setup(data.classnames), feats, batch_size),
    }
    times = {"images": [], "cached": []}
    for i in range(warmup + repeats):
        for name in ("images", "cached") if i % 2 == 0 else ("cached", "images"):
            t = time.perf_counter()
            steps[name]()
            if i >= warmup:
                times[name].append(time.perf_counter() - t)
    img, cached = statistics.median(times["images"]), statistics.median(times["cached"])
    out = dict(
        encoder=encoder.display_name,
        encoder_id=encoder.id,
        batch_size=batch_size,
        repeats=repeats,
        images_step_ms=1000 * img,
        cached_step_ms=1000 * cached,
        images_steps_per_s=1 / img,
        cached_steps_per_s=1 / cached,
        speedup=img / cached,
        cache_build_s=build,
        cache_images=len(data),
    )
    del steps
    gc.collect()
    return out
