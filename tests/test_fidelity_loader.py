"""Issue 18, the official order of ImageNet's resizes and the precision of RRP's zero-shot half (docs/fidelity.md).

The official loader resizes each image file once, straight to the reprogrammer's ``image_res`` (raw → 128 → 224 on
ImageNet). ``Reprogrammer(reduce_from="raw")`` reads such a view of the run's sets, and the other methods keep the
224-px images. This is pinned on real photographs (scikit-image's astronaut and chelsea, offline) against the
official torchvision/PIL transforms written out by hand.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from reprolab.datasets.base import Files, ImageSet, Raw
from reprolab.datasets.loader_view import LoaderView, loader_view
from reprolab.errors import ReprolabError
from reprolab.evaluation.evaluate import collect
from reprolab.methods.base import ZeroShot
from reprolab.methods.reprogrammer import Reprogrammer
from reprolab.methods.residual_reprogrammer import ResidualReprogrammer
from reprolab.reprogramming.image_reprogrammer import ImageReprogrammer
from reprolab.training import TrainConfig, fit

BICUBIC = T.InterpolationMode.BICUBIC


def photo_set(folder: Path, names=("astronaut", "chelsea"), size: int = 224) -> ImageSet:
    """Real photos written as PNG files, loaded like an ImageNet set: ``Resize(size)`` + ``CenterCrop`` (bilinear)."""
    skimage_data = pytest.importorskip("skimage.data")
    paths = []
    for n in names:
        paths.append(folder / f"{n}.png")
        Image.fromarray(getattr(skimage_data, n)()).convert("RGB").save(paths[-1])
    labels = np.arange(len(paths), dtype=np.int64) % 2
    raw = Raw(Files(paths), labels, [p.name for p in paths], ["person", "cat"], size=size)
    idx = range(len(paths))
    return ImageSet(
        raw, name="photos", split="test", kind="id", id_task="x", indices=idx, size=size, subset=None, seed=0
    )


def official(path: Path, image_res: int, up_res: int) -> torch.Tensor:
    """The official pipeline: the loader (PIL bicubic to r, centre crop, ToTensor), then the model's ToPILImage →
    Resize(u, bicubic) → CenterCrop → ToTensor (u = the canvas here, so no padding)."""
    loader = T.Compose([T.Resize(image_res, BICUBIC), T.CenterCrop(image_res), T.ToTensor()])
    model = T.Compose([T.ToPILImage(), T.Resize(up_res, BICUBIC), T.CenterCrop(up_res), T.ToTensor()])
    return model(loader(Image.open(path).convert("RGB")))


def test_raw_view_gives_the_official_raw_128_224_pixels_exactly_and_the_dataset_path_does_not(tmp_path):
    ds = photo_set(tmp_path)
    view = loader_view(ds, 128)
    rp = ImageReprogrammer(canvas=224, image_res=128, up_res=224, mr_res=192, resize="official")
    for j, path in enumerate(ds.raw.read.paths):
        want = official(path, 128, 224)
        x, y = view[j]
        assert x.shape == (3, 128, 128) and y == ds[j][1]
        assert torch.equal(rp.place(x[None])[0], want)  # raw → 128 → 224, bit for bit
        assert torch.equal(rp.zero_shot_view(x[None])[0], want)  # RRP's reduced zero-shot input too
        old = (rp.place(ds[j][0][None])[0] - want).abs()  # raw → 224 (dataset, bilinear) → 128 → 224
        assert 1e-3 < old.mean() < 0.01 and old.max() > 0.03  # measured: mean 0.0044 / 0.0032, max 0.075 / 0.035
    assert view.key == f"{ds.key}|loader=pil-bicubic-128" and view.ids == ds.ids
    assert loader_view(view, 128) is view and loader_view(view, 64).key == f"{ds.key}|loader=pil-bicubic-64"


def test_only_the_raw_reading_reprogrammer_reads_the_view_in_collect_and_fit(tiny, tmp_path):
    ds = photo_set(tmp_path, size=32)
    rp = Reprogrammer(tiny, resize="official", reduce_from="raw").setup(ds.classnames)
    zs = ZeroShot(tiny).setup(ds.classnames)
    r = rp.geometry["image_res"]
    assert isinstance(rp.input_view(ds), LoaderView) and rp.input_view(ds).size == r
    assert zs.input_view(ds) is ds
    view_x = torch.stack([rp.input_view(ds)[j][0] for j in range(len(ds))])
    out = collect(rp, [ds], cache=tmp_path / "cache", batch_size=2, progress=False)
    out_zs = collect(zs, [ds], cache=tmp_path / "cache", batch_size=2, progress=False)
    with torch.no_grad():
        assert torch.allclose(out["photos"]["logits"], rp.logits(view_x), atol=1e-5)
        assert torch.allclose(out_zs["photos"]["logits"], zs.logits(torch.stack([x for x, _ in ds])), atol=1e-5)
    # training reads the view too: the same frame as training a dataset-reading reprogrammer on the view itself
    tc = TrainConfig(steps=1, batch_size=2, warmup=1, progress=False)
    kw = dict(resize="official", seed=0)
    trained = {}
    for name, reduce_from, data in (
        ("raw", "raw", ds),
        ("manual", "dataset", loader_view(ds, r)),
        ("old", "dataset", ds),
    ):
        m = Reprogrammer(tiny, reduce_from=reduce_from, **kw).setup(ds.classnames)
        fit(m, data, tc)
        trained[name] = m.image_rp.W.detach().clone()
    assert torch.equal(trained["raw"], trained["manual"]) and not torch.equal(trained["raw"], trained["old"])


def test_reduce_from_errors_are_one_line_and_name_the_fix(tiny, tiny_set):
    with pytest.raises(ReprolabError, match="use 'dataset' .* or 'raw'"):
        Reprogrammer(tiny, reduce_from="file")
    with pytest.raises(ReprolabError, match="use it with resize='official'"):
        Reprogrammer(tiny, reduce_from="raw")
    with pytest.raises(ReprolabError, match="mode='text' has none"):
        Reprogrammer(tiny, mode="text", resize="official", reduce_from="raw")
    rp = Reprogrammer(tiny, resize="official", reduce_from="raw")
    with pytest.raises(ReprolabError, match="use zs_input='reduced'"):
        ResidualReprogrammer(rp, zs_input="full")
    with pytest.raises(ReprolabError, match="use reduce_from='dataset'"):
        rp.input_view(tiny_set)  # an in-memory set has no files to re-read
    assert rp.config()["reduce_from"] == "raw" and "reduce_from" not in Reprogrammer(tiny).config()  # old keys kept


def test_zs_dtype_is_validated_recorded_and_fp32_on_the_cpu(tiny, tiny_set):
    rp = Reprogrammer(tiny, resize="official").setup(tiny_set.classnames)
    with pytest.raises(ReprolabError, match="use 'fp32' .* or 'fp16'"):
        ResidualReprogrammer(rp, zs_dtype="bf16")
    half = ResidualReprogrammer(rp, 1.0, zs_input="reduced", zs_dtype="fp16").setup(tiny_set.classnames)
    full = ResidualReprogrammer(rp, 1.0, zs_input="reduced").setup(tiny_set.classnames)
    assert half.row_settings()["zs_dtype"] == "fp32"  # what was used: the tiny encoder is on the CPU
    assert half.config() == full.config()  # so it shares fp32's cache entries
    x = tiny_set.images[:4]
    with pytest.warns(UserWarning, match="applies on CUDA only; on cpu the zero-shot half runs in fp32"):
        half.zero_shot_branch()
    with torch.no_grad():
        assert torch.equal(half.image_features(x), full.image_features(x))


@pytest.mark.filterwarnings("ignore:zs_dtype='fp16' applies on CUDA only")  # forced on here, on purpose
def test_fp16_zero_shot_half_stays_within_fp16_tolerance_of_fp32(tiny, tiny_set, monkeypatch):
    import reprolab.methods.residual_reprogrammer as rr

    monkeypatch.setattr(rr, "zs_dtype_used", lambda asked, device: asked)  # force fp16 autocast on the CPU
    rp = Reprogrammer(tiny, resize="official").setup(tiny_set.classnames)
    half = ResidualReprogrammer(rp, 1.0, zs_input="reduced", zs_dtype="fp16").setup(tiny_set.classnames)
    full = ResidualReprogrammer(rp, 1.0, zs_input="reduced").setup(tiny_set.classnames)
    x = tiny_set.images[:8]
    with torch.no_grad():
        fi_h, fi_f = half.zero_shot_image_features(x), full.zero_shot_image_features(x)
        ft_h, ft_f = half.zero_shot_branch().text_features(), full.zero_shot_branch().text_features()
    assert fi_h.dtype == ft_h.dtype == torch.float32  # cast back after the fp16 pass
    for h, f in ((fi_h, fi_f), (ft_h, ft_f)):
        err = (h - f).abs().max()
        assert 0 < err < 2e-3  # fp16 rounding (unit roundoff ≈ 5e-4) on unit-norm features: changed, but slightly
    assert half.config()["zs_dtype"] == "fp16" and half.zero_shot_branch().config()["zs_dtype"] == "fp16"
    assert half.row_settings()["zs_dtype"] == "fp16"
