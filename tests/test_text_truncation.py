"""The open_clip text tower runs only the context positions that can reach the features (issue 16).

CLIP's text transformer is causal and reads the feature at the EOT token, so ``OpenClipEncoder`` cuts the sequence
(embeddings, positional table, attention mask) to L = last EOT + 1. These tests compare features and the text
reprogrammer's gradients with the full-context forward (``_text_length`` patched to return the whole context), on the
tiny random config and on the CLIP-shaped ViT-B-32 one, with prompts of different lengths in one batch.
"""

import pytest
import torch

from reprolab.encoders import openclip_encoder
from reprolab.reprogramming.text_reprogrammer import TextReprogrammer

PROMPTS = ["a cat.", "a photo of a dog.", "a blurry low resolution photo of a big red fire truck.", "ship"]


def _lengths_seen(encoder):
    """Record the sequence length the text transformer is called with."""
    seen = []
    hook = encoder.model.transformer.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    return seen, hook


def _features_and_grads(encoder, tokens, seed=0):
    rp = TextReprogrammer(encoder)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # non-zero deltas, so the tables differ from the pretrained ones
        rp.row_delta.copy_(0.02 * torch.randn(rp.row_delta.shape, generator=g))
        rp.pos_delta.copy_(0.02 * torch.randn(rp.pos_delta.shape, generator=g))
    feats = rp(tokens)
    w = torch.randn(feats.shape, generator=g)
    (feats * w).sum().backward()
    return feats.detach(), rp.row_delta.grad, rp.pos_delta.grad


def _compare(encoder, monkeypatch, atol=1e-5):
    tokens = encoder.tokenize(PROMPTS)
    context = tokens.shape[1]
    eot = int(tokens.argmax(dim=-1).max())
    assert eot + 1 < context  # the test means something only if there is a tail to cut
    seen, hook = _lengths_seen(encoder)
    try:
        cut = _features_and_grads(encoder, tokens)
        with monkeypatch.context() as m:
            m.setattr(openclip_encoder, "_text_length", lambda model, t, n: n)
            full = _features_and_grads(encoder, tokens)
    finally:
        hook.remove()
    assert seen == [eot + 1, context]
    (fa, ta, pa), (fb, tb, pb) = cut, full
    assert torch.allclose(fa, fb, atol=atol)
    rows = torch.unique(tokens)
    assert ta[rows].abs().sum() > 0 and pa[: eot + 1].abs().sum() > 0
    assert torch.allclose(ta, tb, atol=atol) and torch.allclose(pa, pb, atol=atol)
    assert pa[eot + 1 :].abs().sum() == 0 and pb[eot + 1 :].abs().sum() == 0  # the tail never mattered
    ref = encoder.model.encode_text(tokens, normalize=True)  # open_clip's own full-context forward
    assert torch.allclose(encoder.encode_text(tokens), ref, atol=atol)


def test_tiny_text_tower_runs_up_to_the_last_eot_with_the_same_features_and_gradients(tiny, monkeypatch):
    _compare(tiny, monkeypatch)


def test_clip_shaped_text_tower_truncation_is_exact(monkeypatch):
    import open_clip

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = open_clip.create_model("ViT-B-32-quickgelu")
    enc = openclip_encoder.OpenClipEncoder(
        model, id="vit-b-32-random", display_name="random", tokenizer=open_clip.get_tokenizer("ViT-B-32")
    )
    assert enc.tokenize(PROMPTS).shape[1] == 77 and tuple(enc.model.attn_mask.shape) == (77, 77)
    _compare(enc, monkeypatch, atol=1e-5)


def test_one_prompt_keeps_its_own_length(tiny):
    tokens = tiny.tokenize(["a dog"])
    assert openclip_encoder._text_length(tiny.model, tokens, tokens.shape[1]) == 4  # SOT a dog EOT
    full_row = tiny.tokenize(["a dog", "a very long prompt " * 5])  # the tokenizer cuts it, EOT at the last slot
    assert openclip_encoder._text_length(tiny.model, full_row, full_row.shape[1]) == full_row.shape[1]


def test_the_standin_text_tower_still_sees_every_token(standin):
    tokens = standin.tokenize(PROMPTS)
    seen = []
    hook = standin.bert.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["inputs_embeds"].shape[1]), with_kwargs=True
    )
    try:
        with torch.no_grad():
            alone = standin.encode_text(standin.tokenize(PROMPTS[:1]))
            batch = standin.encode_text(tokens)
    finally:
        hook.remove()
    assert seen[-1] == tokens["input_ids"].shape[1]  # bidirectional: nothing is cut
    assert torch.allclose(alone[0], batch[0], atol=1e-5)  # padding is masked, as before


@pytest.mark.parametrize("pool", ["last", "first"])
def test_other_pooling_keeps_the_full_context(tiny, monkeypatch, pool):
    monkeypatch.setattr(tiny.model, "text_pool_type", pool)
    tokens = tiny.tokenize(PROMPTS)
    assert openclip_encoder._text_length(tiny.model, tokens, tokens.shape[1]) == tokens.shape[1]
