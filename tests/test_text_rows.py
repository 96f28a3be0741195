"""The text reprogrammer keeps own ΔE rows only for the training prompts' tokens (issue 16): the same training as
AdamW on the whole token table, without passing over it each step (reprolab/reprogramming/text_reprogrammer.py)."""

import pytest
import torch

from reprolab.checkpoint import load_checkpoint
from reprolab.methods.reprogrammer import Reprogrammer
from reprolab.training import TrainConfig, fit


def _train(tiny, tiny_set, whole_table: bool, decay: str, steps=6, out=None):
    rp = Reprogrammer(tiny, mode="both", lr_text=5e-2, wd_text=0.5, text_decay_target=decay).setup(tiny_set.classnames)
    if whole_table:  # what the official code optimises: every row of the table is a parameter
        rp.text_rp._set_rows(torch.arange(len(rp.text_rp.row_slot)), rp.text_rp.token_delta().detach())
    cfg = TrainConfig(steps=steps, batch_size=8, warmup=1, seed=0, ckpt_every=3, progress=False)
    fit(rp, tiny_set, cfg, out_dir=out)
    return rp


@pytest.mark.parametrize("decay", ["zero", "pretrained"])
def test_prompt_rows_train_exactly_like_the_whole_table(tiny, tiny_set, decay):
    full, rows = _train(tiny, tiny_set, True, decay), _train(tiny, tiny_set, False, decay)
    assert len(full.text_rp.token_rows) == tiny.token_embedding.weight.shape[0]
    assert len(rows.text_rp.token_rows) < 40  # the class prompts' tokens only
    E0 = tiny.token_embedding.weight
    da, db = full.text_rp.token_delta(), rows.text_rp.token_delta()
    assert da[rows.text_rp.token_rows].abs().sum() > 0  # the prompts' rows learned something
    assert torch.allclose(da, db, atol=1e-6, rtol=1e-5)  # every row, the untouched ones included
    untouched = torch.ones(len(E0), dtype=torch.bool)
    untouched[rows.text_rp.token_rows] = False
    if decay == "zero":  # official: AdamW on E shrinks every row toward zero, the untouched ones by g = Π(1 − lr·wd)
        g = float(rows.text_rp.untouched_scale)
        assert g < 1 and torch.allclose(db[untouched], (g - 1) * E0[untouched])
    else:
        assert float(rows.text_rp.untouched_scale) == 1 and db[untouched].abs().sum() == 0
    with torch.no_grad():
        x = tiny_set.images[:8]
        assert torch.allclose(full.logits(x), rows.logits(x), atol=1e-4)


def test_other_prompts_see_the_same_tables_after_loading(tiny, tiny_set):
    rp = _train(tiny, tiny_set, False, "zero", steps=3)
    other = Reprogrammer(tiny, mode="both", template="a blurry photo of a {}.").setup(tiny_set.classnames)
    other.load_trainable_state(rp.trainable_state())
    E_rp, _ = rp.text_rp.tables()
    E_other, _ = other.text_rp.tables()
    assert torch.equal(E_rp, E_other)  # 'blurry' (never trained) is g·E₀ in both
    assert set(rp.text_rp.token_rows.tolist()) < set(other.text_rp.token_rows.tolist())  # and can still learn


def test_a_checkpoint_holds_the_prompt_rows_and_their_moments_only(tiny, tiny_set, tmp_path):
    rp = _train(tiny, tiny_set, False, "zero", steps=3, out=tmp_path)  # resume: test_reprogrammer.py
    tensors, _ = load_checkpoint(tmp_path)
    n_rows, width = len(rp.text_rp.token_rows), tiny.token_embedding.weight.shape[1]
    assert tensors["model.text.token_delta_rows"].shape == (n_rows, width)
    big = [k for k, v in tensors.items() if v.numel() >= tiny.token_embedding.weight.numel()]
    assert big == []  # no tensor of the table's size: not ΔE, not AdamW's moments


def test_a_checkpoint_from_before_lists_its_changed_rows_and_loads(tiny):
    rp = Reprogrammer(tiny, mode="text").setup(["cat", "dog"])
    E0 = tiny.token_embedding.weight
    old = {  # the format before issue 16: every changed row listed, no untouched_scale
        "text.token_rows": torch.tensor([3, 7, 500]),
        "text.token_delta_rows": torch.ones(3, E0.shape[1]),
        "text.pos_delta": torch.zeros_like(tiny.positional_embedding),
    }
    rp.load_trainable_state(old)
    d = rp.text_rp.token_delta()
    assert d[[3, 7, 500]].eq(1).all() and d.abs().sum(dim=-1).nonzero().flatten().tolist() == [3, 7, 500]
