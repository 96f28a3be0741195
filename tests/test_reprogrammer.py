"""The paper's semantics pinned with small exact tests (issue 4)."""

import copy

import pytest
import torch
from conftest import TinySet

from reprolab.errors import CheckpointError, NonFiniteLossError, ReprolabError, ShapeError
from reprolab.methods.base import ZeroShot
from reprolab.methods.reprogrammer import Reprogrammer
from reprolab.methods.residual_reprogrammer import ResidualReprogrammer
from reprolab.reprogramming.image_reprogrammer import ImageReprogrammer
from reprolab.reprogramming.losses import contrastive_loss, focal_loss
from reprolab.reprogramming.residual import blend, residual_logits
from reprolab.training import TrainConfig, cosine_lr, fit


def test_zero_frame_gives_the_plain_placed_image_and_the_frozen_features(tiny):
    rp = ImageReprogrammer(canvas=32, image_res=16, up_res=24, mr_res=24)
    with torch.no_grad():
        rp.W.zero_()
    x = torch.rand(3, 3, 32, 32)
    plain = rp.place(x)
    assert torch.equal(rp(x), plain)
    assert torch.equal(plain[..., :4, :], torch.zeros_like(plain[..., :4, :]))  # padding around the 24-px image
    with torch.no_grad():
        assert torch.equal(tiny.encode_image(rp(x)), tiny.encode_image(plain))


def test_frame_is_zero_inside_bounded_and_output_clamped():
    rp = ImageReprogrammer(canvas=32, image_res=16, up_res=32, mr_res=20)
    with torch.no_grad():
        rp.W.normal_(0, 50)
    d = rp.delta()
    lo = (32 - 20) // 2
    assert torch.equal(d[:, lo : lo + 20, lo : lo + 20], torch.zeros(3, 20, 20))
    assert d.abs().max() <= 1 and d.abs().max() > 0.99
    out = rp(torch.rand(2, 3, 32, 32))
    assert out.min() >= 0 and out.max() <= 1


def test_up_res_larger_than_the_canvas_is_a_one_line_error():
    """Operator precedence once let up_res = 300 through on a 224 canvas (silently cropped)."""
    for bad in (dict(up_res=300), dict(image_res=0), dict(up_res=0)):
        with pytest.raises(ShapeError, match="up_res ≤ canvas") as e:
            ImageReprogrammer(canvas=224, **bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ShapeError, match="'official'"):
        ImageReprogrammer(canvas=32, image_res=16, up_res=32, mr_res=20, resize="nearest")


def test_odd_mr_res_cuts_an_mr_by_mr_hole():
    """The kit's choice for odd mr_res: an mr² hole (the official code cuts (mr − 1)², docs/fidelity.md)."""
    for mr in (191, 101, 192):
        m = ImageReprogrammer(canvas=224, image_res=64, up_res=224, mr_res=mr).mask[0]
        assert int((m == 0).sum()) == mr * mr
        rows = (m == 0).any(dim=1).nonzero().flatten()
        assert rows[0] == (224 - mr) // 2 and len(rows) == mr


def test_bilinear_resize_is_the_kits_earlier_path_exactly():
    """resize="bilinear" (the kit default) must keep the pixels the shipped fair comparisons were computed with."""
    import torch.nn.functional as F

    x = torch.rand(2, 3, 32, 32)
    rp = ImageReprogrammer(canvas=56, image_res=16, up_res=40, mr_res=40)
    a = F.interpolate(x, size=(16, 16), mode="bilinear", antialias=True, align_corners=False)
    a = F.pad(F.interpolate(a, size=(40, 40), mode="bilinear", align_corners=False), (8, 8, 8, 8)).clamp(0, 1)
    assert torch.equal(rp.place(x), a)


def test_focal_loss_matches_a_hand_computed_case():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    target = torch.tensor([0, 1])
    p0 = torch.exp(torch.tensor(2.0)) / (torch.exp(torch.tensor(2.0)) + 1)  # 0.880797
    by_hand = (0.8 * (1 - p0) ** 4 * -torch.log(p0) + 0.8 * 0.5**4 * -torch.log(torch.tensor(0.5))) / 2
    assert torch.allclose(focal_loss(logits, target), by_hand)
    assert torch.allclose(
        focal_loss(logits, target, alpha=1, gamma=0), torch.nn.functional.cross_entropy(logits, target)
    )


def test_contrastive_loss_is_symmetric_in_its_two_directions():
    fi = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    ft = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    a, s = contrastive_loss(fi, ft)
    b, _ = contrastive_loss(ft, fi)
    assert torch.allclose(a, b) and s.shape == (6, 6)


def test_alpha_one_is_zero_shot_and_alpha_zero_is_the_reprogrammer(tiny, tiny_set):
    names = tiny_set.classnames
    rp = Reprogrammer(tiny, mode="both").setup(names)
    with torch.no_grad():
        rp.text_rp.row_delta.normal_(0, 0.1)  # make RP differ from zero-shot
    x = tiny_set.images[:8]
    zs = ZeroShot(tiny).setup(names).logits(x)
    with torch.no_grad():
        assert torch.equal(ResidualReprogrammer(rp, alpha_zeroshot=1.0).setup(names).logits(x), zs)
        assert torch.equal(ResidualReprogrammer(rp, alpha_zeroshot=0.0).setup(names).logits(x), rp.logits(x))
        assert not torch.allclose(rp.logits(x), zs)


def test_residual_blend_rules():
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.allclose(blend(a, b, 0.25), 0.75 * a + 0.25 * b)  # no renormalisation by default
    assert torch.allclose(blend(a, b, 0.25, renormalise=True).norm(dim=-1), torch.ones(4))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ReprolabError, match="alpha_zeroshot"):
            residual_logits(a, a, b, b, bad)


@pytest.mark.parametrize("mode", ["image", "text", "both"])
def test_training_changes_only_reprogrammer_tensors(tiny, tiny_set, mode):
    before = copy.deepcopy(tiny.state_dict())
    rp = Reprogrammer(tiny, mode=mode).setup(tiny_set.classnames)
    W0, T0 = rp.image_rp.W.detach().clone(), rp.text_rp.token_delta().detach().clone()
    fit(rp, tiny_set, TrainConfig(steps=3, batch_size=8, warmup=1, progress=False))
    after = tiny.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # frozen encoder bit-identical
    assert (not torch.equal(rp.image_rp.W, W0)) == (mode in ("image", "both"))
    assert (not torch.equal(rp.text_rp.token_delta(), T0)) == (mode in ("text", "both"))


def test_standin_encoder_with_batchnorm_stays_bit_identical(standin):
    data = TinySet(n=8, size=32)
    before = copy.deepcopy(standin.state_dict())
    rp = Reprogrammer(standin, mode="both").setup(data.classnames)
    fit(rp, data, TrainConfig(steps=2, batch_size=4, warmup=1, progress=False))
    after = standin.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # incl. BatchNorm running statistics


def test_interrupted_training_resumes_to_the_same_final_tensors(tiny, tmp_path):
    data = TinySet(n=24)
    cfg = TrainConfig(steps=9, batch_size=8, warmup=2, ckpt_every=2, progress=False, seed=3)

    def make():
        return Reprogrammer(tiny, mode="both", dropout=0.3, seed=1).setup(data.classnames)

    straight = make()
    fit(straight, data, cfg)

    class Kill(Exception):
        pass

    def killer(step, method, rec):
        if step == 5:
            raise Kill()

    first = make()
    with pytest.raises(Kill):
        fit(first, data, cfg, out_dir=tmp_path, callback=killer)  # dies after step 5; last checkpoint at step 4
    resumed = make()
    fit(resumed, data, cfg, out_dir=tmp_path, resume=True)
    for k, v in straight.trainable_state().items():
        assert torch.equal(v, resumed.trainable_state()[k]), k


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tiny, tmp_path):
    data = TinySet(n=16)
    rp = Reprogrammer(tiny, mode="image").setup(data.classnames)
    fit(rp, data, TrainConfig(steps=2, batch_size=8, warmup=1, progress=False), out_dir=tmp_path)
    good = (tmp_path / "checkpoint.safetensors").read_bytes()
    rp2 = Reprogrammer(tiny, mode="image").setup(data.classnames)
    real_loss = rp2.training_loss
    rp2.training_loss = lambda x, y: (real_loss(x, y)[0] * float("nan"), None)  # a diverged step
    with pytest.raises(NonFiniteLossError, match="last good checkpoint"):
        fit(rp2, data, TrainConfig(steps=4, batch_size=8, warmup=1, progress=False), out_dir=tmp_path, resume=True)
    assert (tmp_path / "checkpoint.safetensors").read_bytes() == good


def test_checkpoint_round_trip_and_corruption(tiny, tmp_path):
    data = TinySet(n=16)
    rp = Reprogrammer(tiny, mode="both").setup(data.classnames)
    fit(rp, data, TrainConfig(steps=2, batch_size=8, warmup=1, progress=False), out_dir=tmp_path)
    from reprolab.checkpoint import load_checkpoint

    tensors, meta = load_checkpoint(tmp_path)
    fresh = Reprogrammer(tiny, mode="both", seed=7).setup(data.classnames)
    fresh.load_trainable_state({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    with torch.no_grad():
        assert torch.equal(fresh.logits(data.images), rp.logits(data.images))
    assert meta["step"] == 2 and meta["method"]["mode"] == "both"
    blob = (tmp_path / "checkpoint.safetensors").read_bytes()
    (tmp_path / "checkpoint.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="retrain"):
        load_checkpoint(tmp_path)


def test_text_changes_are_stored_as_sparse_differences(tiny):
    rp = Reprogrammer(tiny, mode="text", text_decay_target="pretrained").setup(["cat", "dog"])
    prompt_rows = torch.unique(tiny.token_ids(rp.class_tokens())).tolist()
    with torch.no_grad():
        rp.text_rp.row_delta[[0, 2]] = 1.0
    st = rp.text_rp.sparse_state()
    assert st["token_rows"].tolist() == prompt_rows and st["token_delta_rows"].shape == (len(prompt_rows), 32)
    moved = rp.text_rp.token_delta().abs().sum(dim=-1).nonzero().flatten().tolist()
    assert moved == [prompt_rows[0], prompt_rows[2]]  # every other row of the table is E₀
    near = rp.text_rp.nearest_tokens(tiny.token_embedding.weight[[320]], k=1)
    assert near[0][0][0] == tiny.vocab()[320]


def test_cosine_schedule_warms_up_then_decays():
    lrs = [cosine_lr(1.0, t, 10, 100) for t in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] < 0.01 and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


@pytest.mark.slow
def test_short_cpu_run_on_real_cifar10_lifts_accuracy_above_zero_shot(standin, shared_datasets):
    """Issue 4's real-behaviour check: text reprogramming, 100 steps of 32 on 1,000 real CIFAR-10 training images.

    Measured here (CPU, seed 0): zero-shot 0.425 → 0.482 on 400 class-balanced test images. The image frame with
    the official N(0,1) initialisation needs far more steps on the stand-in (0.27 after 100 steps), see the note.
    """
    from reprolab.datasets import load_dataset

    train = load_dataset("cifar10", split="train", subset=1000, seed=0, root=str(shared_datasets))
    test = load_dataset("cifar10", split="test", subset=400, seed=0, root=str(shared_datasets))
    x, y = test.tensors(progress=False)

    def acc(method):
        method.eval()
        with torch.no_grad():
            return (
                torch.cat([method.logits(x[i : i + 100]) for i in range(0, len(x), 100)])
                .argmax(1)
                .eq(y)
                .float()
                .mean()
                .item()
            )

    zs = acc(ZeroShot(standin).setup(test.classnames))
    rp = Reprogrammer(standin, mode="text", loss="ce", lr_text=2e-3).setup(test.classnames)
    fit(rp, train, TrainConfig(steps=100, batch_size=32, warmup=10, progress=False))
    assert acc(rp) > zs + 0.03, (zs, acc(rp))
