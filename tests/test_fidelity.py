"""The official code's behaviours the kit can switch to (issue 18, docs/fidelity.md), each pinned on a small exact case.

The resize test builds the official pipeline by hand with PIL on a real photograph (scikit-learn-image's astronaut,
shipped offline): uint8 → PIL bicubic to image_res → uint8 → PIL bicubic to up_res → [0,1] → zero padding.
The metric conventions are pinned in tests/test_metrics.py.
"""

import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reprolab.experiment.config import load_config
from reprolab.experiment.runner import Runner
from reprolab.methods import build_method
from reprolab.methods.base import DEFAULT_TEMPLATE, OFFICIAL_TEMPLATE, ZeroShot
from reprolab.methods.reprogrammer import Reprogrammer
from reprolab.methods.residual_reprogrammer import ResidualReprogrammer
from reprolab.reprogramming.image_reprogrammer import ImageReprogrammer
from reprolab.reprogramming.losses import contrastive_loss
from reprolab.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
PAPER = [ROOT / "configs" / "paper" / f"{n}.yaml" for n in ("cifar10", "imagenet")]


def photo(side: int, top: int = 100, left: int = 180) -> np.ndarray:
    """A side×side uint8 crop of a real photograph."""
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()[top : top + side, left : left + side]


def hand_pipeline(a: np.ndarray, image_res: int, up_res: int, canvas: int) -> torch.Tensor:
    """The official pipeline by hand with PIL (square input): loader resize, then the model's upsample, then pad."""
    small = np.asarray(Image.fromarray(a).resize((image_res, image_res), Image.BICUBIC))
    up = np.asarray(Image.fromarray(small).resize((up_res, up_res), Image.BICUBIC)).astype(np.float32) / 255
    out = np.zeros((canvas, canvas, 3), np.float32)
    lo = (canvas - up_res) // 2
    out[lo : lo + up_res, lo : lo + up_res] = up
    return torch.from_numpy(out).permute(2, 0, 1)


def as_input(a: np.ndarray) -> torch.Tensor:
    """What a kit dataset yields for a uint8 image: float32 k/255 (reprolab.datasets.base.to_array)."""
    return torch.from_numpy(a.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


@pytest.mark.parametrize(
    "side, image_res, up_res",
    [(32, 64, 224), (224, 128, 224), (32, 64, 200)],  # CIFAR; ImageNet (from the 224-px dataset image); padded
)
def test_official_resize_is_the_pil_bicubic_pipeline_exactly(side, image_res, up_res):
    a = photo(side)
    rp = ImageReprogrammer(canvas=224, image_res=image_res, up_res=up_res, mr_res=192, resize="official")
    placed = rp.place(as_input(a))[0]
    assert torch.equal(placed, hand_pipeline(a, image_res, up_res, 224))
    # and it is not the kit's bilinear path: every reprogrammed input differs (docs/fidelity.md measures by how much)
    bil = ImageReprogrammer(canvas=224, image_res=image_res, up_res=up_res, mr_res=192).place(as_input(a))[0]
    assert (placed - bil).abs().max() > 0.01


def test_official_zero_shot_view_is_the_reduced_image_upsampled_to_the_canvas():
    a = photo(32)
    rp = ImageReprogrammer(canvas=224, image_res=64, up_res=200, mr_res=192, resize="official")
    assert torch.equal(rp.zero_shot_view(as_input(a))[0], hand_pipeline(a, 64, 224, 224))


def test_paper_configs_choose_the_official_behaviours():
    for path in PAPER:
        cfg = load_config(path)
        for m in cfg.methods:
            if m.name in ("coop", "residual_reprogrammer"):  # CoOp learns its context; RRP takes its base's prompt
                continue
            assert m.params.get("template") == OFFICIAL_TEMPLATE == "a photo of a {}", (path.name, m.name)
            assert not m.train.get("amp", TrainConfig.amp), (path.name, m.name)
        assert cfg.method("reprogrammer").params["resize"] == "official"
        assert cfg.method("residual_reprogrammer").params == {"zs_input": "reduced", "zs_dtype": "fp16"}
        assert cfg.metric_convention == "official"
    # ImageNet: the reprogrammer reads each file resized once to 128 px (CIFAR-10 arrives at 32 px: nothing to do)
    assert load_config(PAPER[1]).method("reprogrammer").params["reduce_from"] == "raw"


def test_template_makes_the_official_prompt_and_the_kit_default_is_unchanged(tiny):
    assert DEFAULT_TEMPLATE == "a photo of a {}."  # the shipped fair comparisons used it
    zs = ZeroShot(tiny, template=OFFICIAL_TEMPLATE).setup(["cat", "dog"])
    want = tiny.tokenize(["a photo of a cat", "a photo of a dog"])
    assert torch.equal(zs.class_tokens(), tiny.to_device(want))
    rp = Reprogrammer(tiny, template=OFFICIAL_TEMPLATE)
    assert rp.row_settings() == {"template": "a photo of a {}", "resize": "bilinear", "reduce_from": "dataset"}


def test_training_is_fp32_by_default_and_amp_keeps_logits_and_loss_fp32():
    assert TrainConfig().amp is False
    g = torch.Generator().manual_seed(0)
    fi = torch.nn.functional.normalize(torch.randn(6, 16, generator=g), dim=-1)
    ft = torch.nn.functional.normalize(torch.randn(6, 16, generator=g), dim=-1)
    ref_loss, ref_s = contrastive_loss(fi, ft)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss, s = contrastive_loss(fi, ft)
        bf16 = 100.0 * fi @ ft.t()  # what the logits would be inside autocast
    assert s.dtype == loss.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    assert torch.equal(s, ref_s) and torch.equal(loss, ref_loss)
    assert (bf16.float() - ref_s).abs().max() > 1e-3  # the difference the fp32 region avoids


def test_rrp_zero_shot_half_sees_the_reduced_view_when_asked(tiny, tiny_set):
    rp = Reprogrammer(tiny, mode="both", resize="official").setup(tiny_set.classnames)
    x = tiny_set.images[:4]
    red = ResidualReprogrammer(rp, alpha_zeroshot=1.0, zs_input="reduced").setup(tiny_set.classnames)
    full = ResidualReprogrammer(rp, alpha_zeroshot=1.0).setup(tiny_set.classnames)
    with torch.no_grad():
        want = tiny.encode_image(rp.image_rp.zero_shot_view(x))
        assert torch.equal(red.image_features(x), want)  # α = 1: only the zero-shot half
        assert torch.equal(full.image_features(x), tiny.encode_image(tiny.resize(x)))
        assert not torch.equal(want, full.image_features(x))
        assert torch.equal(red.zero_shot_branch().image_features(x), want)
    assert red.row_settings() == {
        "template": DEFAULT_TEMPLATE,
        "resize": "official",
        "reduce_from": "dataset",
        "zs_input": "reduced",
        "zs_dtype": "fp32",
    }
    assert red.config()["zs_input"] == "reduced" and "zs_input" not in full.config()
    with pytest.raises(Exception, match="'reduced'"):
        ResidualReprogrammer(rp, zs_input="half")


def test_build_method_routes_zs_input_to_the_residual_wrapper(tiny):
    m = build_method("residual_reprogrammer", tiny, zs_input="reduced", resize="official", alpha_zeroshot=0.4)
    assert m.zs_input == "reduced" and m.rp.image_rp.resize == "official"


def test_result_rows_record_template_resize_zs_input_zs_dtype_amp_and_metric_convention(tiny):
    cfg = load_config(PAPER[1])
    fake = types.SimpleNamespace(specs={m.name: m for m in cfg.methods}, cfg=cfg)
    rrp_spec = cfg.method("residual_reprogrammer")
    keys = ("resize", "reduce_from", "template")  # tiny canvas: no geometry
    rp_params = {k: cfg.method("reprogrammer").params[k] for k in keys}
    rrp = build_method("residual_reprogrammer", tiny, **rp_params, **rrp_spec.params)
    got = Runner.row_settings(fake, rrp_spec, rrp)
    assert got == {
        "template": "a photo of a {}",
        "resize": "official",
        "reduce_from": "raw",
        "zs_input": "reduced",
        "zs_dtype": "fp32",  # fp16 asked, but the tiny encoder is on the CPU: the row says what was used
        "amp": False,
        "metric_convention": "official",
    }
    zs = build_method("zeroshot", tiny, **cfg.method("zeroshot").params)
    want = {"template": "a photo of a {}", "amp": False, "metric_convention": "official"}
    assert Runner.row_settings(fake, cfg.method("zeroshot"), zs) == want
    kit = types.SimpleNamespace(specs=fake.specs, cfg=load_config(ROOT / "configs" / "quickstart.yaml"))
    assert Runner.row_settings(kit, cfg.method("zeroshot"), zs)["metric_convention"] == "kit"


def test_rrp_sweep_features_use_the_reduced_view_and_never_share_a_cache_entry(tiny, tmp_path):
    from conftest import TinySet

    from reprolab.evaluation.alpha_sweeps import rrp_features
    from reprolab.evaluation.features import FeatureCache
    from reprolab.reprogramming.residual import residual_logits

    ds = TinySet(n=8)
    rp = Reprogrammer(tiny, mode="both", resize="official").setup(ds.classnames)
    red = ResidualReprogrammer(rp, 0.4, zs_input="reduced").setup(ds.classnames)
    full = ResidualReprogrammer(rp, 0.4).setup(ds.classnames)
    cache = FeatureCache(tmp_path)
    f_full = rrp_features(full, [ds], cache, batch_size=4, progress=False)["sets"][ds.name]
    feats = rrp_features(red, [ds], cache, batch_size=4, progress=False)
    f = feats["sets"][ds.name]
    assert not torch.equal(f["image_zs"], f_full["image_zs"])  # a separate cache entry, not the plain zero-shot one
    with torch.no_grad():
        want = red.logits(ds.images)
    got = residual_logits(f["image_rp"], f["image_zs"], feats["text_rp"], feats["text_zs"], 0.4)
    assert torch.allclose(got, want, atol=1e-5)


RUN = """
encoder: tiny
train_subset: 16
test_subset: 12
shift_subset: 8
ood_subset: 8
shift_sets: [cifar10c:contrast:3]
ood_sets: [sklearn_digits]
eval_batch_size: 16
rrp_alphas: [0.5]
metric_convention: official
methods:
  - name: zeroshot
    params: {template: "a photo of a {}"}
  - name: reprogrammer
    params: {resize: official, reduce_from: raw, template: "a photo of a {}"}
    train: {steps: 2, batch_size: 8, warmup: 1, progress: false}
  - name: residual_reprogrammer
    params: {zs_input: reduced, zs_dtype: fp16}
"""


def test_a_run_records_the_choices_in_every_test_row(tmp_path, shared_datasets):
    from reprolab.evaluation.metrics import official_ood_metrics, ood_metrics
    from reprolab.experiment.results import ResultsDB
    from reprolab.experiment.runner import run

    (tmp_path / "c.yaml").write_text(RUN)
    with pytest.warns(UserWarning, match="zs_dtype='fp16' applies on CUDA only"):
        run(load_config(tmp_path / "c.yaml"), tmp_path / "out")
    rows = ResultsDB(tmp_path / "out" / "results.jsonl").rows()
    common = {"template": "a photo of a {}", "amp": False, "metric_convention": "official"}
    rp = dict(common, resize="official", reduce_from="raw")
    want = {
        "zeroshot": common,
        "reprogrammer": rp,
        "residual_reprogrammer": dict(rp, zs_input="reduced", zs_dtype="fp32"),
    }
    assert {r["method"] for r in rows} == set(want)
    for r in rows:
        assert {k: r.get(k) for k in want[r["method"]]} == want[r["method"]], r["method"]
    # the OOD rows are official_ood_metrics of the very scores the run saved (ID set vs the OOD set)
    for name in ("zeroshot", "reprogrammer"):
        saved = np.load(tmp_path / "out" / "scores" / f"{name}-s0.npz")
        kinds = dict(line.split("\t")[::-1] for line in saved["__kinds__"])
        s_id, s_ood = saved[f"set:{kinds['id']}"], saved[f"set:{kinds['ood']}"]
        (row,) = [r for r in rows if r["method"] == name and r["kind"] == "ood"]
        assert row["metrics"] == official_ood_metrics(s_id, s_ood)
        assert row["metrics"] == ood_metrics(s_id, s_ood, convention="official")
    assert "OOD metric convention</b>: official" in (tmp_path / "out" / "report.html").read_text()


def test_metric_convention_is_validated_and_hashed_only_when_official():
    from reprolab.errors import ConfigError
    from reprolab.experiment.config import from_dict
    from reprolab.experiment.identity import data_settings

    with pytest.raises(ConfigError, match="metric_convention must be kit .* or official"):
        from_dict({"metric_convention": "sklearn"})
    kit, official = from_dict({}), from_dict({"metric_convention": "official"})
    assert kit.metric_convention == "kit"
    assert "metric_convention" not in data_settings(kit, "e")  # the shipped rows keep their config hashes
    assert data_settings(official, "e")["metric_convention"] == "official"
