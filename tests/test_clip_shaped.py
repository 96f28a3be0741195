"""The real-CLIP path without CLIP's weights (issue 16): the CLIP-shaped random encoder is labelled as random,
switching the encoder in one checkout never mixes two encoders' rows, and text-only reprogramming trains on cached
frozen image features exactly as it trains on the images."""

import os
from pathlib import Path

import pytest
import torch

from reprolab.encoders import load_encoder
from reprolab.evaluation.features import FeatureCache
from reprolab.evaluation.frozen import FeatureSet, frozen_image_features
from reprolab.experiment.config import load_config
from reprolab.experiment.paper_table import paper_table
from reprolab.experiment.results import ResultsDB
from reprolab.experiment.run_folder import current_rows, run_folder
from reprolab.experiment.runner import run
from reprolab.methods import Reprogrammer
from reprolab.training import TrainConfig, fit

SMALL = """
encoder: tiny
train_subset: 40
test_subset: 20
shift_subset: 10
ood_subset: 10
shift_sets: [cifar10c:contrast:3]
ood_sets: [sklearn_digits]
eval_batch_size: 32
rrp_alphas: [0.0, 1.0]
methods:
  - name: zeroshot
  - name: reprogrammer
    params: {mode: text}
    train: {steps: 2, batch_size: 8, warmup: 1, progress: false}
  - name: residual_reprogrammer
"""


# ----- text-only reprogramming from cached features ------------------------------------------------------------------
def test_text_rp_from_features_gives_the_images_loss_and_gradients(tiny, tiny_set):
    by_images = Reprogrammer(tiny, mode="text", lr_text=1e-2).setup(tiny_set.classnames)
    by_feats = Reprogrammer(tiny, mode="text", lr_text=1e-2).setup(tiny_set.classnames)
    feats = FeatureSet.frozen(tiny, tiny_set, progress=False)
    x, y = tiny_set.images[:8], tiny_set.labels[:8]
    la, pa = by_images.training_loss(x, y)
    lb, pb = by_feats.training_loss(feats.features[:8], y)
    la.backward()
    lb.backward()
    assert torch.allclose(la, lb, atol=1e-6) and torch.equal(pa, pb)
    for a, b in [
        (by_images.text_rp.row_delta, by_feats.text_rp.row_delta),
        (by_images.text_rp.pos_delta, by_feats.text_rp.pos_delta),
    ]:
        assert a.grad.abs().sum() > 0 and torch.allclose(a.grad, b.grad, atol=1e-6)


def test_fit_on_a_feature_set_ends_where_fit_on_images_ends(tiny, tiny_set):
    cfg = TrainConfig(steps=3, batch_size=8, warmup=1, seed=0, device="cpu", progress=False)
    a = Reprogrammer(tiny, mode="text", lr_text=1e-2).setup(tiny_set.classnames)
    b = Reprogrammer(tiny, mode="text", lr_text=1e-2).setup(tiny_set.classnames)
    ha = fit(a, tiny_set, cfg)
    hb = fit(b, FeatureSet.frozen(tiny, tiny_set, progress=False), cfg)
    assert [r["loss"] for r in ha.steps] == pytest.approx([r["loss"] for r in hb.steps], abs=1e-5)
    sa, sb = a.trainable_state(), b.trainable_state()
    assert sa.keys() == sb.keys() and all(torch.allclose(sa[k], sb[k], atol=1e-5) for k in sa)
    assert sa["text.token_delta_rows"].abs().sum() > 0


def test_features_cannot_train_a_frame(tiny, tiny_set):
    rp = Reprogrammer(tiny, mode="both").setup(tiny_set.classnames)
    with pytest.raises(Exception, match="mode='text'"):
        rp.training_loss(torch.zeros(4, 32), torch.arange(4))


def test_frozen_features_are_cached_once_per_encoder(tiny, tiny_set, tmp_path):
    cache = FeatureCache(tmp_path)
    a = frozen_image_features(tiny, tiny_set, cache, progress=False)
    b = frozen_image_features(tiny, tiny_set, cache, progress=False)
    assert (cache.misses, cache.hits) == (1, 1) and torch.equal(a["image_features"], b["image_features"])
    other = load_encoder("tiny:1")
    c = frozen_image_features(other, tiny_set, cache, progress=False)
    assert cache.misses == 2 and not torch.allclose(a["image_features"], c["image_features"])
    assert len(list(tmp_path.glob("*.safetensors"))) == 2


# ----- switching the encoder in one checkout ---------------------------------------------------------------------------
@pytest.fixture
def small_config(tmp_path, shared_datasets):
    p = tmp_path / "small.yaml"
    p.write_text(SMALL)
    return p


def test_reprolab_run_default_folder_is_keyed_by_the_encoder(small_config, tmp_path, monkeypatch):
    from reprolab.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", str(small_config)]) == 0
    assert main(["run", str(small_config), "--set", "encoder=tiny:1"]) == 0
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert folders == ["small-openclip-tiny-random-s0", "small-openclip-tiny-random-s1"]
    for name, enc in zip(folders, ["openclip-tiny-random-s0", "openclip-tiny-random-s1"]):
        df = ResultsDB(tmp_path / "runs" / name / "results.jsonl").to_frame()
        assert set(df.encoder) == {enc}
        assert len(paper_table(df)) == 4  # zeroshot, reprogrammer, RRP at two α's
        assert (tmp_path / "runs" / name / "report.html").exists()


def test_one_folder_two_encoders_tables_take_the_current_rows(small_config, tmp_path):
    out = tmp_path / "same"  # an explicit --out reused after switching the encoder (notebook 07 before the fix)
    cfgs = {e: load_config(small_config, [f"encoder={e}"]) for e in ("tiny", "tiny:1")}
    for cfg in cfgs.values():
        run(cfg, out)
    df = ResultsDB(out / "results.jsonl").to_frame()
    with pytest.raises(Exception, match="results mix 2 encoders"):
        paper_table(df)
    for e, eid in [("tiny", "openclip-tiny-random-s0"), ("tiny:1", "openclip-tiny-random-s1")]:
        mine = current_rows(df, cfgs[e], eid)
        assert set(mine.encoder) == {eid} and len(mine) == len(df) // 2
        assert len(paper_table(mine)) == 4
    changed = load_config(small_config, ["methods.reprogrammer.train.steps=3"])  # a new config, same encoder
    assert current_rows(df, changed, "openclip-tiny-random-s0").method.tolist().count("reprogrammer") == 0


def test_run_folder_names_are_file_safe():
    p = run_folder("runs", "nb07-fast", "openclip-ViT-B-32-vit b/32:openai.bin")
    assert p == Path("runs") / "nb07-fast-openclip-ViT-B-32-vit_b_32_openai.bin"


# ----- the CLIP-shaped encoder -------------------------------------------------------------------------------------
def test_random_clip_file_loads_with_clips_shapes_and_says_random(tmp_path):
    from reprolab.encoders.testing import random_info, save_random_clip
    from reprolab.experiment.report import encoder_name

    path = save_random_clip(tmp_path / "vit.safetensors")
    assert random_info(path)["arch"] == "ViT-B-32-quickgelu" and path.stat().st_size > 500e6
    enc = load_encoder(f"openclip:ViT-B-32-quickgelu:{path}")
    assert enc.image_size == 224 and tuple(enc.token_embedding.weight.shape) == (49408, 512)
    assert tuple(enc.positional_embedding.shape) == (77, 512)
    assert "random weights — accuracies mean nothing" in enc.display_name
    assert enc.id == "openclip-ViT-B-32-quickgelu-random-init-s0"
    assert "random weights" in encoder_name(enc.id) and "random weights" in enc.describe()
    mtime = os.path.getmtime(path)
    assert save_random_clip(path) == path and os.path.getmtime(path) == mtime  # reused, not rewritten
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        assert enc.encode_image(x).shape == (2, 512)


def test_batch_text_features_run_each_class_prompt_once_with_the_same_values_and_gradients(tiny, tiny_set):
    rp = Reprogrammer(tiny, mode="text").setup(tiny_set.classnames)
    with torch.no_grad():
        rp.text_rp.row_delta.normal_(0, 0.1)
    y = torch.tensor([3, 1, 3, 0, 1, 3])
    once = rp.batch_text_features(y)
    per_image = rp.text_features(rows=y)
    assert torch.allclose(once, per_image, atol=1e-6)
    g1 = torch.autograd.grad(once.sum(), rp.text_rp.row_delta)[0]
    g2 = torch.autograd.grad(per_image.sum(), rp.text_rp.row_delta)[0]
    assert g1.abs().sum() > 0 and torch.allclose(g1, g2, atol=1e-5)
