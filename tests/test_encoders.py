"""The encoder interface over open_clip (tiny random init, local checkpoint) and the offline stand-in."""

import glob
import os

import numpy as np
import pytest
import torch
from PIL import Image

from reprolab.encoders import OpenClipEncoder, load_encoder
from reprolab.errors import MissingWeightsError, ShapeError

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _cifar_test(root, per_class):
    xs, ys = [], []
    for i, c in enumerate(CIFAR):
        for f in sorted(glob.glob(str(root / "cifar10" / "test" / c / "*.jpg")))[:per_class]:
            xs.append(torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1).float() / 255)
            ys.append(i)
    return torch.stack(xs), torch.tensor(ys)


def test_tiny_features_are_normalised_and_frozen(tiny):
    x = torch.rand(2, 3, 32, 32)
    f = tiny.encode_image(x)
    t = tiny.encode_text(tiny.tokenize(["a photo of a cat", "a dog"]))
    assert f.shape == (2, 32) and t.shape == (2, 32)
    assert torch.allclose(f.norm(dim=-1), torch.ones(2)) and torch.allclose(t.norm(dim=-1), torch.ones(2))
    assert not any(p.requires_grad for p in tiny.parameters())


def test_text_forward_with_pretrained_tables_equals_open_clip(tiny):
    tokens = tiny.tokenize(["a photo of a cat"])
    ours = tiny.encode_text_embeddings(tokens, tiny.token_embedding.weight.clone(), tiny.positional_embedding.clone())
    ref = tiny.model.encode_text(tokens, normalize=True)
    assert torch.allclose(ours, ref, atol=1e-6)


def test_normalisation_happens_inside_encode_image(tiny):
    x = torch.rand(1, 3, 32, 32)
    ref = tiny.model.encode_image(tiny.normalise_pixels(x), normalize=True)
    assert torch.allclose(tiny.encode_image(x), ref, atol=1e-6)


def test_wrong_shapes_give_one_line_errors(tiny):
    with pytest.raises(ShapeError, match="resize"):
        tiny.encode_image(torch.rand(1, 3, 40, 40))
    with pytest.raises(ShapeError, match="3 channels"):
        tiny.encode_image(torch.rand(3, 32, 32))


@pytest.fixture
def tiny_arch(monkeypatch):
    """The kit's tiny config registered with open_clip as 'tiny-test' (GELU) and 'tiny-test-quickgelu'."""
    import open_clip

    from reprolab.encoders.openclip_encoder import TINY_CFG

    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "tiny-test", dict(TINY_CFG))
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "tiny-test-quickgelu", dict(TINY_CFG, quick_gelu=True))
    return "tiny-test"


def _clip_model(quick_gelu: bool, seed: int = 1):
    from open_clip.model import CLIP

    from reprolab.encoders.openclip_encoder import TINY_CFG

    torch.manual_seed(seed)
    return CLIP(**TINY_CFG, quick_gelu=quick_gelu).eval()


def _activations(model) -> set[str]:
    return {type(m).__name__ for m in model.modules() if type(m).__name__ in ("QuickGELU", "GELU")}


def _same_features(enc, ref) -> bool:
    x, tokens = torch.rand(2, 3, 32, 32), enc.tokenize(["a photo of a cat", "a dog"])
    with torch.no_grad():
        return torch.allclose(enc.model.encode_image(x), ref.encode_image(x), atol=1e-6) and torch.allclose(
            enc.model.encode_text(tokens), ref.encode_text(tokens), atol=1e-6
        )


def test_local_checkpoint_loads_offline(tiny, tmp_path, tiny_arch):
    path = tmp_path / "tiny.pt"
    torch.save(tiny.model.state_dict(), path)
    enc = OpenClipEncoder.from_pretrained("tiny-test-gelu", str(path))  # the kit's spelling for "GELU, as written"
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(enc.encode_image(x), tiny.encode_image(x), atol=1e-6)


def test_openai_torchscript_archive_gets_quickgelu(tmp_path, tiny_arch):
    """OpenAI's release format: a TorchScript zip (constants.pkl, code/). Its name says nothing; the format does."""
    import zipfile

    ref = _clip_model(quick_gelu=True)
    path = tmp_path / "ViT-tiny.pt"
    torch.jit.save(torch.jit.script(ref), str(path))
    assert any(n.endswith("constants.pkl") for n in zipfile.ZipFile(path).namelist())
    enc = OpenClipEncoder.from_pretrained(tiny_arch, str(path))
    assert _activations(enc.model) == {"QuickGELU"} and "quickgelu" in enc.display_name
    assert _same_features(enc, ref)
    assert not _same_features(enc, _clip_model(quick_gelu=False))  # the activation changes the features


@pytest.mark.parametrize(
    "name",
    [
        "models--timm--vit_base_patch32_clip_224.openai/snapshots/0a1b/open_clip_pytorch_model.bin",  # HF cache
        "vit_b_32-openai.safetensors",
    ],
)
def test_openai_state_dict_by_its_name_gets_quickgelu(tmp_path, tiny_arch, name):
    from safetensors.torch import save_file

    ref = _clip_model(quick_gelu=True)
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    else:
        torch.save(ref.state_dict(), path)
    enc = load_encoder(f"openclip:{tiny_arch}:{path}")
    assert _activations(enc.model) == {"QuickGELU"}
    assert _same_features(enc, ref)


def test_a_state_dict_of_unknown_origin_is_refused_with_the_fix(tmp_path, tiny_arch):
    from reprolab.errors import ConfigError

    ref = _clip_model(quick_gelu=True)
    path = tmp_path / "weights.bin"
    torch.save(ref.state_dict(), path)
    with pytest.raises(ConfigError) as err:
        load_encoder(f"openclip:{tiny_arch}:{path}")
    assert "\n" not in str(err.value) and f"openclip:{tiny_arch}-quickgelu:{path}" in str(err.value)
    enc = load_encoder(f"openclip:{tiny_arch}-quickgelu:{path}")
    assert _activations(enc.model) == {"QuickGELU"} and _same_features(enc, ref)
    laion = tmp_path / "CLIP-ViT-B-32-laion2B-s34B-b79K.bin"  # a GELU tag's Hugging Face repo name
    gelu_ref = _clip_model(quick_gelu=False)
    torch.save(gelu_ref.state_dict(), laion)
    enc = load_encoder(f"openclip:{tiny_arch}:{laion}")
    assert _activations(enc.model) == {"GELU"} and _same_features(enc, gelu_ref)


def test_clip_reads_reprolab_clip_weights_and_fetch_folders_as_openai(tmp_path, tiny_arch, monkeypatch, capsys):
    """REPROLAB_CLIP_WEIGHTS and a fetch folder hold OpenAI's ViT-B/32 by definition: QuickGELU, whatever the name."""
    from safetensors.torch import save_file

    import reprolab.encoders as E
    from reprolab.encoders.clip_weights import FETCHED_FILE

    monkeypatch.setattr(E, "CLIP_ARCH", tiny_arch)  # the tiny config stands in for ViT-B-32
    ref = _clip_model(quick_gelu=True)
    anyname = tmp_path / "weights.bin"
    torch.save(ref.state_dict(), anyname)
    monkeypatch.setenv("REPROLAB_CLIP_WEIGHTS", str(anyname))
    enc = load_encoder("clip")
    assert _activations(enc.model) == {"QuickGELU"} and _same_features(enc, ref)
    monkeypatch.delenv("REPROLAB_CLIP_WEIGHTS")
    fetched = tmp_path / "kit" / FETCHED_FILE
    fetched.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(fetched))
    monkeypatch.setenv("REPROLAB_DATA", f"{tmp_path / 'elsewhere'}{os.pathsep}{tmp_path / 'kit'}")
    enc = load_encoder("auto")
    assert "using CLIP tiny-test-quickgelu" in capsys.readouterr().out and _same_features(enc, ref)


def test_missing_weights_offline_is_the_documented_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(MissingWeightsError) as err:
        OpenClipEncoder.from_pretrained("ViT-B-32", "openai")
    msg = str(err.value)
    assert "\n" not in msg and "local checkpoint" in msg and "standin" in msg
    with pytest.raises(MissingWeightsError, match="does not exist"):
        load_encoder(f"openclip:ViT-B-32:{tmp_path}/nope.bin")


def test_auto_falls_back_to_the_standin_and_says_so(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("REPROLAB_CLIP_WEIGHTS", raising=False)
    monkeypatch.setenv("REPROLAB_DATA", str(tmp_path))
    enc = load_encoder("auto")
    out = capsys.readouterr().out
    assert enc.id.startswith("standin") and "stand-in" in out and "reprolab fetch --clip" in out
    assert "CLIP" not in enc.display_name.replace("not CLIP", "")


def test_standin_zero_shot_on_real_cifar10_is_well_above_chance(standin, shared_datasets):
    x, y = _cifar_test(shared_datasets, per_class=25)  # 250 real test images
    with torch.no_grad():
        t = standin.encode_text_prompts([f"a photo of a {c}." for c in CIFAR])
        f = torch.cat([standin.encode_image(standin.resize(x[i : i + 125])) for i in range(0, len(x), 125)])
    acc = (f @ t.T).argmax(1).eq(y).float().mean().item()
    assert acc > 0.25, acc  # chance is 0.10; measured ≈0.40


def test_standin_recognises_a_real_photo(standin):
    import open_clip
    from skimage import data

    cat = torch.from_numpy(data.chelsea().copy()).permute(2, 0, 1).float()[None] / 255
    with torch.no_grad():
        top = standin.imagenet_logits(standin.resize(cat)).topk(5).indices[0].tolist()
    names = [open_clip.IMAGENET_CLASSNAMES[i] for i in top]
    assert any("cat" in n for n in names), names  # weights were renamed into timm's layout correctly


def test_clip_downloads_when_nothing_is_on_disk_and_says_so(monkeypatch, capsys, tmp_path):
    """Online, 'clip' with no local file and an empty cache asks open_clip for the 'openai' tag (Hugging Face hub
    download, its progress bar) after one line saying so; 'auto' never does (it runs with the hub offline)."""
    import reprolab.encoders as E

    calls = []
    monkeypatch.delenv("REPROLAB_CLIP_WEIGHTS", raising=False)
    monkeypatch.setenv("REPROLAB_DATA", str(tmp_path))
    monkeypatch.setattr(E, "hf_cached_openai", lambda: None)
    monkeypatch.setattr(
        E.OpenClipEncoder,
        "from_pretrained",
        lambda arch, tag, **kw: calls.append((arch, tag, os.environ.get("HF_HUB_OFFLINE"))) or "enc",
    )
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert load_encoder("clip") == "enc" and calls == [("ViT-B-32", "openai", None)]
    assert "downloading CLIP ViT-B/32" in capsys.readouterr().out
    auto = load_encoder("auto")  # nothing cached: the stand-in, without asking open_clip
    assert auto.id.startswith("standin") and len(calls) == 1
    assert "none in REPROLAB_CLIP_WEIGHTS, a reprolab fetch folder or the Hugging Face cache" in capsys.readouterr().out
    monkeypatch.setattr(E, "hf_cached_openai", lambda: "/cache/open_clip_model.safetensors")
    assert load_encoder("auto", verbose=False) == "enc" and calls[-1] == ("ViT-B-32", "openai", "1")  # hub offline
