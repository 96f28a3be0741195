"""The offline stand-in's presets (reprolab/encoders/standin_encoder.py): names, WordNet class prompts, weights.

The strong preset's figures (zero-shot CIFAR-10 0.557 on the full test set vs 0.435 for the weak one) are in
docs/standin.md; here we pin what must hold for it to be the encoder it claims to be."""

import importlib.util
from importlib import metadata
from pathlib import Path

import pytest
import torch
from conftest import require

from reprolab.encoders import _standin_spec, load_encoder
from reprolab.encoders.standin_encoder import PRESETS, imagenet_prompts
from reprolab.errors import MissingWeightsError, ReprolabError

ROOT = Path(__file__).resolve().parents[1]
WORDNET = Path("/usr/share/wordnet/data.noun")
CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_standin_names_parse_to_presets():
    assert _standin_spec("standin") == ("weak", None)
    assert _standin_spec("standin:strong") == ("strong", None)
    assert _standin_spec("standin:160") == ("weak", 160)
    assert _standin_spec("standin:strong:192") == ("strong", 192)
    with pytest.raises(ReprolabError, match="standin:strong") as e:
        _standin_spec("standin:huge")
    assert "\n" not in str(e.value)
    assert set(PRESETS) == {"weak", "strong"}


def test_hypernym_prompts_name_the_class_and_its_wordnet_ancestors():
    import open_clip

    prompts = imagenet_prompts("hypernyms")
    assert len(prompts) == 1000
    assert all(p.startswith(f"a photo of a {c}") for p, c in zip(prompts, open_clip.IMAGENET_CLASSNAMES))
    assert "bird" in prompts[11]  # goldfinch
    assert "airplane" in prompts[404]  # airliner
    assert "automobile" in prompts[817]  # sports car
    assert "dog" in prompts[207]  # golden retriever
    assert imagenet_prompts("plain")[11] == "a photo of a goldfinch."
    with pytest.raises(ReprolabError):
        imagenet_prompts("fancy")


def test_shipped_prompts_are_what_the_generator_makes_from_wordnet():
    if not WORDNET.is_file():
        require(False, "WordNet not installed: apt-get install wordnet-base (.ci/run does)")
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "make_hypernym_prompts.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.build_prompts(str(WORDNET)) == imagenet_prompts("hypernyms")


def test_missing_mpnet_part_is_one_line_naming_the_install(monkeypatch, tmp_path):
    from reprolab.encoders import standin_weights

    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path))
    real = metadata.distribution

    def fake(name):
        if name.endswith("part-003"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(standin_weights.metadata, "distribution", fake)
    with pytest.raises(MissingWeightsError) as e:
        standin_weights.sentence_encoder("mpnet")
    msg = str(e.value)
    assert "\n" not in msg and "--no-deps" in msg and "part-003" in msg


def test_damaged_class_table_cache_is_rebuilt(monkeypatch, tmp_path, standin):
    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path))
    fresh = load_encoder("standin", fresh=True, verbose=False)  # writes the table into tmp_path
    (table,) = tmp_path.glob("standin-classes-minilm-*.safetensors")
    table.write_bytes(b"not a safetensors file")
    again = load_encoder("standin", fresh=True, verbose=False)
    assert torch.equal(again.class_embeddings, fresh.class_embeddings)
    assert torch.allclose(fresh.class_embeddings, standin.class_embeddings, atol=1e-6)


@pytest.mark.slow
def test_strong_preset_text_path_is_mpnet_and_its_prior_beats_the_weak_one(standin, shared_datasets):
    from sentence_transformers import SentenceTransformer

    from reprolab.datasets import load_dataset
    from reprolab.encoders.standin_weights import cache_dir

    strong = load_encoder("standin:strong")
    assert strong.id == "standin-effnetlite2-mpnet-hypernyms-160px-t3-k50-c1" and "not CLIP" in strong.display_name
    texts = ["a photo of a cat.", "a blurry photo of a red truck."]
    ref = torch.tensor(
        SentenceTransformer(str(cache_dir() / "all-mpnet-base-v2"), device="cpu").encode(
            texts, normalize_embeddings=True
        )
    )
    tok = strong.tokenize(texts)
    with torch.no_grad():  # the functional path the text reprogrammer trains through = sentence-transformers
        got = strong._text_forward(strong.token_embedding(tok["input_ids"]), tok, strong.positional_embedding)
    assert torch.allclose(got + strong.centre_vec, ref, atol=1e-5)

    x, y = load_dataset("cifar10", "test", root=shared_datasets, subset=500, seed=3).tensors(progress=False)
    accs = {}
    for name, enc in (("weak", standin), ("strong", strong)):
        with torch.no_grad():
            t = enc.encode_text_prompts([f"a photo of a {c}." for c in CIFAR])
            f = torch.cat([enc.encode_image(enc.resize(x[i : i + 125])) for i in range(0, len(x), 125)])
        accs[name] = (f @ t.T).argmax(1).eq(y).float().mean().item()
    # measured on the full 10,000-image test set: weak 0.435, strong 0.557
    assert accs["strong"] > accs["weak"] + 0.05 and accs["strong"] > 0.45, accs
