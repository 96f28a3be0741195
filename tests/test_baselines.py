"""The paper's baselines run through the same encoder, Method protocol, training loop and checkpoints."""

import json

import pytest
import torch

from reprolab.checkpoint import load_checkpoint, save_checkpoint
from reprolab.encoders import load_encoder
from reprolab.errors import ConfigError, ReprolabError
from reprolab.methods import LPFT, METHODS, CoOp, FineTune, LinearProbe, VisualPrompt, WiSEFT, ZeroShot, build_method
from reprolab.training import TrainConfig, fit

CLASSES = ["cat", "dog", "car", "ship"]
CFG = TrainConfig(steps=3, batch_size=8, warmup=1, device="cpu", progress=False, ckpt_every=100)


class Tiny(torch.utils.data.Dataset):
    classnames = CLASSES

    def __init__(self, n=48, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, 32, 32, generator=g)
        self.y = torch.arange(n) % 4
        self.x[:, self.y % 3, :8] *= 0.3  # a little class signal
        self.labels = self.y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


@pytest.fixture(scope="module")
def enc():
    return load_encoder("tiny")


@pytest.fixture(scope="module")
def data():
    return Tiny(48, 0), Tiny(16, 1).x


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def roundtrip(method_fn, train, images, tmp_path):
    """Train 3 steps with fit(), reload its checkpoint into a fresh instance, compare logits bit for bit."""
    m = method_fn().setup(CLASSES)
    hist = fit(m, train, CFG, out_dir=tmp_path)
    assert len(hist.steps) == 3 and all(torch.isfinite(torch.tensor(r["loss"])) for r in hist.steps)
    tensors, meta = load_checkpoint(tmp_path)
    assert meta["method"]["method"] == m.name
    fresh = method_fn().setup(CLASSES)
    fresh.load_trainable_state({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    m.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(m.logits(images), fresh.logits(images))
    return m


def test_registry_covers_every_method(enc):
    assert set(METHODS) == {
        "zeroshot",
        "linear_probe",
        "finetune",
        "lp_ft",
        "wise_ft",
        "coop",
        "visual_prompt",
        "reprogrammer",
        "residual_reprogrammer",
        "visual_reprogrammer",
    }
    assert all(cls.name == n for n, cls in METHODS.items())
    for name, kw in [
        ("zeroshot", {}),
        ("coop", {"n_ctx": 4}),
        ("visual_prompt", {}),
        ("linear_probe", {}),
        ("residual_reprogrammer", {"alpha_zeroshot": 0.3, "mode": "image"}),
        ("wise_ft", {}),
    ]:
        m = build_method(name, enc, **kw).setup(CLASSES)
        assert m.name == name and m.logits(torch.rand(2, 3, 32, 32)).shape == (2, 4)
    with pytest.raises(ConfigError, match="options are"):
        build_method("coop", enc, n_context=4)
    with pytest.raises(ConfigError, match="unknown method"):
        build_method("prompt_tuning", enc)


@pytest.mark.parametrize("name", ["finetune", "coop", "visual_prompt", "linear_probe"])
def test_fit_checkpoint_reload(name, enc, data, tmp_path):
    make = {
        "finetune": lambda: FineTune(enc, lr=1e-3),
        "coop": lambda: CoOp(enc, n_ctx=4),
        "visual_prompt": lambda: VisualPrompt(enc),
        "linear_probe": lambda: LinearProbe(enc, backend="torch"),
    }
    before = snapshot(enc)
    m = roundtrip(make[name], data[0], data[1], tmp_path)
    assert same(before, snapshot(enc)), "the shared encoder must not change (fine-tuning works on a copy)"
    json.dumps(m.config())


def test_frozen_encoder_is_bit_identical_and_something_trained(enc, data, tmp_path):
    for make in (lambda: CoOp(enc, n_ctx=4), lambda: VisualPrompt(enc)):
        m = make().setup(CLASSES)
        start = m.trainable_state()
        before = snapshot(m.encoder)
        fit(m, data[0], CFG)
        assert same(before, snapshot(m.encoder))
        assert not same(start, m.trainable_state())


def test_finetune_starts_at_zero_shot_and_copies_encoder(enc, data):
    x = data[1]
    zs = ZeroShot(enc).setup(CLASSES).eval()
    ft = FineTune(enc).setup(CLASSES).eval()
    assert ft.encoder is not enc
    with torch.no_grad():
        a, b = zs.logits(x), ft.logits(x)
    # s·(f_I f_Tᵀ) vs f_I (s·f_T)ᵀ: the same numbers up to float rounding of the ×100
    assert torch.allclose(a, b, rtol=0, atol=1e-4) and torch.equal(a.argmax(1), b.argmax(1))
    assert torch.equal(ft.head.bias, torch.zeros(4))
    assert torch.equal(ft.head.weight, enc.logit_scale * zs.text_features())


def test_finetune_keeps_batchnorm_in_eval():
    torch.manual_seed(0)
    enc = load_encoder("tiny")
    ft = FineTune(enc)
    bn = torch.nn.BatchNorm2d(3)
    ft.encoder.model.visual.add_module("extra_bn", bn)
    ft.train()
    assert ft.encoder.model.visual.training and not bn.training
    assert FineTune(enc, freeze_bn=False).train().encoder.model.visual.training


def test_linear_probe_sklearn_matches_decision_function(enc, data, tmp_path):
    train, x = data
    lp = LinearProbe(enc, backend="sklearn", C_grid=(0.1, 10.0), val_fraction=0.25)
    lp.setup(CLASSES).fit_features(train, batch_size=16, progress=False)
    assert lp.chosen_C in (0.1, 10.0) and set(lp.val_accuracy) == {"0.1", "10.0"}
    assert lp.trainable_parameters() == [] and fit(lp, train, CFG).steps == []  # fit() leaves the probe alone
    from sklearn.linear_model import LogisticRegression

    from reprolab.methods.linear_probe import extract_features

    X, y = extract_features(lp, train, 16, progress=False)
    clf = LogisticRegression(C=lp.chosen_C, max_iter=1000, random_state=0).fit(X.numpy(), y.numpy())
    with torch.no_grad():
        logits = lp.head(X)
    assert torch.allclose(logits, torch.as_tensor(clf.decision_function(X.numpy()), dtype=torch.float32), atol=1e-4)
    save_checkpoint(tmp_path, lp.trainable_state(), lp.config())
    fresh = LinearProbe(enc).setup(CLASSES)
    fresh.load_trainable_state(load_checkpoint(tmp_path)[0])
    with torch.no_grad():
        assert torch.equal(lp.logits(x), fresh.logits(x))
    assert torch.equal(lp.image_features(x), ZeroShot(enc).setup(CLASSES).image_features(x))


def test_lp_ft_starts_from_probe_head(enc, data, tmp_path):
    probe = LinearProbe(enc, backend="torch", epochs=3).setup(CLASSES).fit_features(data[0], progress=False)
    m = LPFT.from_probe(probe, lr=1e-3)
    assert m.name == "lp_ft" and m.probe_config["backend"] == "torch"
    assert torch.equal(m.head.weight, probe.head.weight) and torch.equal(m.head.bias, probe.head.bias)
    with torch.no_grad():
        assert torch.equal(m.eval().logits(data[1]), probe.logits(data[1]))
    staged = LPFT(enc, probe_backend="torch", probe_kwargs={"epochs": 3}).prepare(data[0], progress=False)
    assert torch.equal(staged.head.weight, probe.head.weight)
    fit(m, data[0], CFG, out_dir=tmp_path)
    assert not torch.equal(m.head.weight, probe.head.weight)


def test_wise_ft_endpoints_are_exact_and_sweep_does_not_retrain(enc, data):
    x = data[1]
    ft = FineTune(enc, lr=1e-3).setup(CLASSES)
    fit(ft, data[0], CFG)
    ft.eval()
    zs_ft = FineTune(enc).setup(CLASSES).eval()  # θ_ZS as a model
    w = WiSEFT(enc, ft, alpha_finetuned=0.0).eval()
    with torch.no_grad():
        zs_logits, ft_logits = zs_ft.logits(x), ft.logits(x)
        assert torch.equal(w.logits(x), zs_logits)
        assert torch.allclose(w.logits(x), ZeroShot(enc).setup(CLASSES).logits(x), rtol=0, atol=1e-4)
        assert torch.equal(w.set_alpha(1.0).logits(x), ft_logits)
        mid = w.set_alpha(0.5).logits(x)
        assert not torch.equal(mid, zs_logits) and not torch.equal(mid, ft_logits)
        assert torch.equal(w.set_alpha(0.0).logits(x), zs_logits)
    assert w.trainable_parameters() == [] and w.alpha_finetuned == 0.0
    # a fine-tuning checkpoint loads into a WiSE-FT built without the method
    w2 = build_method("wise_ft", enc, alpha_finetuned=1.0).setup(CLASSES)
    w2.load_trainable_state(ft.trainable_state())
    with torch.no_grad():
        assert torch.equal(w2.eval().logits(x), ft_logits)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ReprolabError, match="alpha_finetuned"):
            w.set_alpha(bad)


def test_visual_prompt_geometry_and_zero_init(enc, data):
    vp = VisualPrompt(enc).setup(CLASSES)
    assert vp.hp["pad"] == round(30 * 32 / 224) == 4
    p = vp.prompter.prompt()
    assert p.shape == (1, 3, 32, 32)
    x = data[1]
    with torch.no_grad():
        assert torch.equal(vp.logits(x), ZeroShot(enc).setup(CLASSES).logits(x))
        vp.prompter.pad_up.fill_(5.0)
        shown = vp.prompted(x)
    assert shown.min() >= 0 and shown.max() <= 1 and torch.equal(shown[:, :, 4:-4, 4:-4], x[:, :, 4:-4, 4:-4])
    assert torch.all(shown[:, :, :4] == 1)


def test_coop_splices_context_at_placeholder_positions(enc):
    m = CoOp(enc, n_ctx=4).setup(CLASSES)
    ids = enc.token_ids(m._class_tokens)
    assert (ids[:, 1:5] == ids[0, 1]).all()
    assert m.ctx.shape == (4, enc.token_embedding.weight.shape[1]) and 0.01 < float(m.ctx.detach().std()) < 0.04
    with torch.no_grad():  # with the placeholder's own embedding as context, CoOp is plain text encoding
        m.ctx.copy_(enc.token_embedding.weight[ids[0, 1]].expand(4, -1))
        assert torch.allclose(m.text_features(), enc.encode_text(m._class_tokens), atol=1e-6)
    with pytest.raises(ConfigError, match="n_ctx"):
        CoOp(enc, n_ctx=16).setup(CLASSES)  # tiny's context is 16 tokens


@pytest.mark.parametrize("n", [5, 12, 30])
def test_linear_probe_on_tiny_training_sets_fits_or_says_why(enc, n):
    """Fewer held-out images than classes used to raise scikit-learn's own ValueError; now it just fits."""
    X = torch.randn(n, 8)
    y = torch.arange(n) % 4
    lp = LinearProbe(enc, backend="sklearn", C_grid=(0.1, 10.0), val_fraction=0.2).setup(CLASSES)
    lp.head = torch.nn.Linear(8, len(CLASSES))
    lp.fit_arrays(X, y)
    assert lp.fitted and lp.chosen_C in (0.1, 10.0)
    with pytest.raises(ReprolabError, match="at least 2 classes") as e:
        LinearProbe(enc, backend="sklearn").setup(CLASSES).fit_arrays(X[:3], torch.zeros(3, dtype=torch.long))
    assert "\n" not in str(e.value) and "train_subset" in str(e.value)
