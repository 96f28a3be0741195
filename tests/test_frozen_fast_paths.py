"""The frozen-weight fast paths are exact rewrites (values and input gradients) and are really taken."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reprolab.encoders.frozen_fast_paths import FrozenAffineNorm, PatchConv2d, use_frozen_fast_paths
from reprolab.encoders.openclip_encoder import TINY_CFG, tiny_openclip


def _plain_tiny(seed=0):
    from open_clip.model import CLIP

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return CLIP(**TINY_CFG).requires_grad_(False).eval()


def _value_and_input_grad(f, x):
    x = x.detach().clone().requires_grad_(True)
    y = f(x)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    return y.detach(), x.grad


def test_tiny_openclip_image_tower_same_values_and_input_grads_as_plain_open_clip():
    fast, plain = tiny_openclip(0).model, _plain_tiny(0)
    assert isinstance(fast.visual.conv1, PatchConv2d) and not isinstance(plain.visual.conv1, PatchConv2d)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y1, g1 = _value_and_input_grad(fast.encode_image, x)
    y0, g0 = _value_and_input_grad(plain.encode_image, x)
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g1, g0, rtol=1e-4, atol=1e-7)
    with torch.no_grad():  # inference: the original modules' code runs, bit for bit
        assert torch.equal(fast.encode_image(x), plain.encode_image(x))
    assert fast.state_dict().keys() == plain.state_dict().keys()


def test_text_tower_attention_relayout_keeps_values_and_gradients():
    enc, plain = tiny_openclip(0), _plain_tiny(0)
    tokens = enc.tokenize(["a photo of a cat", "a dog"])
    e0 = enc.model.token_embedding(tokens)

    def run(model):
        return lambda e: model.ln_final(model.transformer(e + model.positional_embedding, attn_mask=model.attn_mask))

    y1, g1 = _value_and_input_grad(run(enc.model), e0)
    y0, g0 = _value_and_input_grad(run(plain), e0)
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-6)
    # float32 sums in another order: a few elements differ by ~1e-4 of the gradient's scale on some CPUs
    torch.testing.assert_close(g1, g0, rtol=1e-3, atol=1e-4 * float(g0.abs().max()))


def test_reprogramming_step_avoids_the_slow_cpu_kernels():
    """The two measured slow paths: bmm against an expanded frozen weight, transposed-conv input gradient."""
    from torch.profiler import profile

    from reprolab.methods.reprogrammer import Reprogrammer

    rp = Reprogrammer(tiny_openclip(0), mode="both").setup(["cat", "dog", "ship"])
    images, labels = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    with profile() as prof:
        rp.training_loss(images, labels)[0].backward()
    ops = {e.key for e in prof.key_averages()}
    assert "aten::bmm" not in ops and "aten::convolution_backward" not in ops, sorted(ops)
    assert rp.image_rp.W.grad is not None and rp.text_rp.row_delta.grad is not None


@pytest.mark.parametrize("bias,size", [(False, 32), (True, 18)])
def test_patch_conv_matches_conv2d(bias, size):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, kernel_size=4, stride=4, bias=bias).requires_grad_(False)
    fast = copy.deepcopy(conv)
    assert use_frozen_fast_paths(fast)["patch_conv"] == 1 and isinstance(fast, PatchConv2d)
    x = torch.randn(2, 3, size, size)
    y1, g1 = _value_and_input_grad(fast, x)
    y0, g0 = _value_and_input_grad(conv, x)
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1, g0, rtol=1e-5, atol=1e-6)


def test_other_convolutions_are_left_alone():
    m = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Conv2d(4, 4, 2, stride=2, groups=4))
    assert use_frozen_fast_paths(m) == {"attention": 0, "patch_conv": 0, "batchnorm": 0}


@pytest.mark.parametrize("timm_act", [False, True])
def test_frozen_batchnorm_is_an_exact_affine_and_trainable_batchnorm_keeps_its_path(timm_act):
    torch.manual_seed(0)
    if timm_act:
        from timm.layers import BatchNormAct2d

        bn = BatchNormAct2d(6, act_layer=nn.ReLU6)
    else:
        bn = nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.running_mean.normal_(), bn.running_var.uniform_(0.5, 2), bn.weight.normal_(), bn.bias.normal_()
    bn.eval().requires_grad_(False)
    fast = copy.deepcopy(bn)
    assert use_frozen_fast_paths(fast)["batchnorm"] == 1 and isinstance(fast, FrozenAffineNorm)
    assert isinstance(fast, type(bn)) and fast.state_dict().keys() == bn.state_dict().keys()
    x = 3 * torch.randn(2, 6, 5, 5)
    y1, g1 = _value_and_input_grad(fast, x)
    y0, g0 = _value_and_input_grad(bn, x)
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1, g0, rtol=1e-5, atol=1e-6)
    fast.requires_grad_(True)  # fine-tuning: the affine weights train, so the general kernel runs and they get grads
    fast(x.requires_grad_(True)).sum().backward()
    assert fast.weight.grad is not None and fast.bias.grad is not None
    fast.train()  # training mode: batch statistics, exactly as before
    torch.testing.assert_close(
        fast(x),
        F.batch_norm(x, None, None, fast.weight, fast.bias, True)
        if not timm_act
        else fast.act(F.batch_norm(x, None, None, fast.weight, fast.bias, True)),
    )


def test_fast_paths_are_idempotent_and_survive_deepcopy():
    enc = tiny_openclip(0)
    assert use_frozen_fast_paths(enc.model) == {"attention": 0, "patch_conv": 0, "batchnorm": 0}
    twin = copy.deepcopy(enc)  # what fine-tuning does
    assert isinstance(twin.model.visual.conv1, PatchConv2d)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(
        _value_and_input_grad(twin.model.encode_image, x)[1], _value_and_input_grad(enc.model.encode_image, x)[1]
    )
