"""Visual reprogramming of a frozen ImageNet classifier: the label maps on hand-made logits, ILM's epoch hook,
the frozen network untouched, and the method through ``reprolab run``."""

from pathlib import Path

import torch
from conftest import TinySet

from reprolab.encoders import load_encoder
from reprolab.experiment.config import load_config
from reprolab.experiment.results import ResultsDB
from reprolab.experiment.runner import run
from reprolab.methods import METHODS, VisualReprogrammer, build_method
from reprolab.reprogramming import label_mapping as LM
from reprolab.training import TrainConfig, fit


def onehot_logits(preds, K=6):
    """Logits whose argmax is ``preds`` (one image per entry)."""
    z = torch.zeros(len(preds), K)
    z[torch.arange(len(preds)), torch.tensor(preds)] = 5.0
    return z


# ----- the label maps on hand-made logits ---------------------------------------------------------------------------
def test_frequency_matrix_counts_joint_predictions():
    F = LM.frequency_matrix(onehot_logits([2, 2, 4, 4, 4, 0]), torch.tensor([0, 0, 1, 1, 0, 1]), n_target=2)
    assert F.shape == (6, 2)
    assert F[2].tolist() == [2, 0] and F[4].tolist() == [1, 2] and F[0].tolist() == [0, 1]
    assert F.sum() == 6


def test_flm_picks_the_most_frequent_source_class_one_to_one():
    # target 0: predicted as source 3 four times, as 1 once; target 1: as 3 three times, as 5 twice.
    # Greedy: (3, 0) is the largest entry → target 0 ↦ 3; source 3 is then taken, so target 1 ↦ 5.
    preds = [3, 3, 3, 3, 1] + [3, 3, 3, 5, 5]
    labels = torch.tensor([0] * 5 + [1] * 5)
    m = LM.frequency_mapping(onehot_logits(preds), labels, n_target=2)
    assert m.tolist() == [3, 5]
    assert len(set(m.tolist())) == 2  # one-to-one even though source 3 is both classes' favourite


def test_greedy_is_one_to_one_and_deterministic_on_ties():
    m = LM.greedy_one_to_one(torch.ones(5, 3))
    assert m.tolist() == [0, 1, 2]  # first maximum in source-major order each time
    s = torch.rand(50, 10, generator=torch.Generator().manual_seed(0))
    m = LM.greedy_one_to_one(s)
    assert sorted(set(m.tolist())) == sorted(m.tolist()) and len(m) == 10


def test_rlm_is_seeded_and_reproducible():
    a, b, c = LM.random_mapping(1000, 10, seed=3), LM.random_mapping(1000, 10, seed=3), LM.random_mapping(1000, 10, 4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(set(a.tolist())) == 10 and a.min() >= 0 and a.max() < 1000


def test_semantic_mapping_picks_the_obviously_matching_name():
    # source names: "tabby cat", "sports car", "container ship", "daisy" as 3-d embeddings
    src = torch.tensor([[1.0, 0.1, 0.0], [0.0, 1.0, 0.1], [0.1, 0.0, 1.0], [0.5, 0.5, 0.5]])
    tgt = torch.tensor([[0.0, 0.0, 2.0], [3.0, 0.0, 0.2], [0.1, 1.0, 0.0]])  # "ship", "cat", "car"
    assert LM.semantic_mapping(src, tgt).tolist() == [2, 0, 1]


def test_apply_mapping_takes_the_mapped_columns_and_refuses_an_unset_map():
    z = torch.arange(12.0).view(2, 6)
    assert LM.apply_mapping(z, torch.tensor([5, 0])).tolist() == [[5.0, 0.0], [11.0, 6.0]]
    try:
        LM.apply_mapping(z, torch.tensor([-1, 0]))
    except Exception as exc:
        assert "remap" in str(exc)
    else:
        raise AssertionError("an unset map must raise")


# ----- the method on the real classifier at a 32-px canvas (cheap) -------------------------------------------------
def small_classifier():
    return load_encoder("classifier:lite0:32")


def test_registered_and_refuses_an_encoder_without_imagenet_logits(tiny):
    assert METHODS["visual_reprogrammer"] is VisualReprogrammer
    try:
        build_method("visual_reprogrammer", tiny)
    except Exception as exc:
        assert "classifier" in str(exc)
    else:
        raise AssertionError("a text-image encoder without an ImageNet head must be refused")


def test_ilm_remaps_at_every_epoch_start_with_the_current_frame():
    enc, data = small_classifier(), TinySet(n=16)
    m = build_method("visual_reprogrammer", enc, mapping="ilm", lr=0.5, seed=0).setup(data.classnames)
    seen = {}

    def callback(step, method, rec):  # after the last step of epoch 0 the frame is the one epoch 1 starts with
        if step == 4:
            with torch.no_grad():
                method.eval()
                z = method.source_logits(data.images)
                method.train()
            seen["map"] = LM.frequency_mapping(z, data.labels, 4).tolist()

    fit(m, data, TrainConfig(steps=8, batch_size=4, warmup=1, progress=False), callback=callback)
    assert [h["epoch"] for h in m.mapping_history] == [0, 1]
    assert m.mapping_history[1]["mapping"] == seen["map"] == m.mapping.tolist()
    flm = build_method("visual_reprogrammer", enc, mapping="flm", seed=0).setup(data.classnames)
    fit(flm, data, TrainConfig(steps=8, batch_size=4, warmup=1, progress=False))
    assert [h["epoch"] for h in flm.mapping_history] == [0]  # FLM maps once


def test_frozen_classifier_is_bit_identical_after_training_and_full_mapping_trains():
    enc, data = small_classifier(), TinySet(n=16)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    m = build_method("visual_reprogrammer", enc, mapping="full", learn_scale=True, seed=0)
    m.setup(data.classnames)
    head0, W0 = m.head.weight.detach().clone(), m.frame.W.detach().clone()
    with torch.no_grad():
        loss0 = torch.nn.functional.cross_entropy(m.eval().logits(data.images), data.labels).item()
    fit(m, data, TrainConfig(steps=12, batch_size=8, warmup=1, progress=False))
    with torch.no_grad():
        loss1 = torch.nn.functional.cross_entropy(m.logits(data.images), data.labels).item()
    assert loss1 < loss0
    assert not torch.equal(m.head.weight, head0) and not torch.equal(m.frame.W, W0) and m.scale() != 1.0
    after = enc.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm statistics


def test_state_round_trip_keeps_the_label_map():
    enc, data = small_classifier(), TinySet(n=8)
    a = build_method("visual_reprogrammer", enc, mapping="rlm", seed=5).setup(data.classnames)
    b = build_method("visual_reprogrammer", enc, mapping="rlm", seed=6).setup(data.classnames)
    assert not torch.equal(a.mapping, b.mapping)
    b.load_trainable_state(a.trainable_state())
    assert torch.equal(a.mapping, b.mapping) and torch.equal(a.frame.W, b.frame.W)
    with torch.no_grad():
        assert torch.equal(a.eval().logits(data.images), b.eval().logits(data.images))


TINY = """
encoder: classifier:lite0:32
train_subset: 40
test_subset: 30
shift_subset: 20
ood_subset: 20
shift_sets: [cifar10c:gaussian_noise:3]
ood_sets: [dtd10]
eval_batch_size: 32
methods:
  - name: visual_reprogrammer
    params: {mapping: ilm, lr: 0.05}
    train: {steps: 6, batch_size: 8, warmup: 1, ckpt_every: 3, progress: false}
  - name: linear_probe
  - name: finetune
    params: {lr: 1.0e-3}
    train: {steps: 2, batch_size: 8, warmup: 1, progress: false}
"""


def test_runs_through_reprolab_run_with_the_same_rows_as_every_method(tmp_path, shared_datasets):
    cfg = tmp_path / "vr.yaml"
    cfg.write_text(TINY)
    run(load_config(cfg), tmp_path / "out")
    rows = ResultsDB(tmp_path / "out" / "results.jsonl").rows()
    vr = [r for r in rows if r["method"] == "visual_reprogrammer"]
    assert {(r["kind"], r["eval_set"]) for r in vr} == {
        ("id", "cifar10"),
        ("shift", "cifar10c:gaussian_noise:3"),
        ("ood", "dtd10"),
    }
    assert {r["method"] for r in rows} == {"visual_reprogrammer", "linear_probe", "finetune"}
    ood = next(r for r in vr if r["kind"] == "ood")["metrics"]
    assert 0.0 <= ood["auroc"] <= 1.0 and set(ood) >= {"fpr95", "auroc"}


def test_shipped_config_validates():
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "classifier_reprogramming.yaml")
    assert cfg.encoder == "classifier" and [m.name for m in cfg.methods][0] == "visual_reprogrammer"
    assert all(m.train for m in cfg.methods if m.name != "linear_probe")
