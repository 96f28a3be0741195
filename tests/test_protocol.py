"""The fair comparison protocol (reprolab.experiment.protocol): validation split, sweeps and α chosen on it, resuming,
the comparison table. Tiny random-init encoder on small real CIFAR-10 subsets; one real end-to-end run is shared."""

import collections
from pathlib import Path

import numpy as np
import pytest

import reprolab.experiment.naming as naming
import reprolab.experiment.protocol as protocol
import reprolab.experiment.run_data as run_data
import reprolab.training as training
from reprolab.datasets import load_dataset
from reprolab.errors import ConfigError
from reprolab.experiment.comparison import comparison_table, read_selection
from reprolab.experiment.config import from_dict, load_config
from reprolab.experiment.paper_table import paper_table
from reprolab.experiment.report import build_report
from reprolab.experiment.results import ResultsDB
from reprolab.experiment.runner import run

ROOT = Path(__file__).resolve().parents[1]
DATA = """
encoder: tiny
train_subset: 40
val_subset: 20
test_subset: 20
shift_subset: 10
ood_subset: 10
shift_sets: [cifar10c:contrast:3]
ood_sets: [sklearn_digits]
seeds: [0, 1]
eval_batch_size: 32
"""
TRAIN = "{steps: 2, batch_size: 8, warmup: 1, ckpt_every: 1, progress: false}"
REAL = (
    DATA
    + f"""
rrp_alphas: [0.0, 0.5, 1.0]
wise_alphas: [0.0, 0.5, 1.0]
methods:
  - name: zeroshot
  - name: finetune
    sweep: {{lr: [1.0e-4, 3.0e-2]}}
    train: {TRAIN}
  - name: reprogrammer
    sweep: {{lr_text: [5.0e-4, 5.0e-2]}}
    train: {TRAIN}
  - name: residual_reprogrammer
  - name: wise_ft
    base: finetune
"""
)


def write(tmp, text):
    p = Path(tmp) / "cfg.yaml"
    p.write_text(text)
    return load_config(p)


def fits(mp) -> list:
    """Patch training.fit to record (method, seed, checkpoint dir) of every training run."""
    calls, real = [], training.fit

    def fit(method, train_set, cfg, out_dir=None, **kw):
        calls.append((method.name, cfg.seed, Path(out_dir).name))
        return real(method, train_set, cfg, out_dir=out_dir, **kw)

    mp.setattr(training, "fit", fit)
    return calls


def identities(out) -> list:
    return [
        (r["method"], r["config_hash"], r["seed"], r["eval_set"], r["alpha"])
        for r in ResultsDB(Path(out) / "results.jsonl").rows()
    ]


def val_accs(rows, method, key):
    """{candidate: val acc} of a method's validation rows, in file order."""
    return {key(r): r["metrics"]["acc"] for r in rows if r["method"] == method and r["kind"] == "val"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, shared_datasets):
    d = tmp_path_factory.mktemp("fair")
    with pytest.MonkeyPatch.context() as mp:
        calls = fits(mp)
        run(write(d, REAL), d / "out")
    return d / "out", calls


def test_val_split_is_disjoint_class_balanced_and_cached_apart(shared_datasets):
    cfg = from_dict({"encoder": "tiny", "train_subset": 40, "val_subset": 20})
    common = dict(root=cfg.data_root, seed=0, download=False)
    train, val = run_data.load_train(cfg, **common)
    assert (len(train), len(val), val.name, val.split, val.kind) == (40, 20, "cifar10_val", "train", "id")
    assert not set(train.indices.tolist()) & set(val.indices.tolist())
    assert np.bincount(val.labels.numpy(), minlength=10).tolist() == [2] * 10
    assert np.bincount(train.labels.numpy(), minlength=10).tolist() == [4] * 10
    train2, val2 = run_data.load_train(cfg, **common)  # deterministic
    assert (train2.indices == train.indices).all() and (val2.indices == val.indices).all()
    plain, none = run_data.load_train(from_dict({"encoder": "tiny", "train_subset": 40}), **common)
    ref = load_dataset("cifar10", "train", subset=40, **common)
    assert none is None and plain.key == ref.key and (plain.indices == ref.indices).all()  # as before
    assert len({train.key, val.key, plain.key}) == 3  # the feature cache never mixes them


def test_choose_takes_the_first_of_the_best():
    assert protocol.choose([0.3, 0.5, 0.5, 0.1]) == 1 and protocol.choose([0.2]) == 0
    assert protocol.candidates(
        from_dict(
            {"val_subset": 5, "methods": [{"name": "reprogrammer", "sweep": {"lr_text": [1, 2], "lr_image": [3]}}]}
        ).methods[0]
    ) == [{"lr_text": 1, "lr_image": 3}, {"lr_text": 2, "lr_image": 3}]
    assert naming.label("finetune", {"lr": 1e-4}) == "finetune (lr=1e-4)"
    assert naming.label("residual_reprogrammer", {}, 0.6) == "residual_reprogrammer (α_zs=0.6)"


def test_choices_follow_known_validation_scores(tmp_path, monkeypatch, shared_datasets):
    """Validation scorer patched to known accuracies: the sweep and both α's pick the argmax, ties the first."""
    templates = {"a photo of a {}.": 0.3, "a blurry photo of a {}.": 0.6, "art of a {}.": 0.6}
    alpha_acc = {"residual_reprogrammer": {0.0: 0.2, 0.5: 0.7, 1.0: 0.4}, "wise_ft": {0.0: 0.5, 0.5: 0.5, 1.0: 0.1}}

    def fake(runner, spec, method, alphas=None):
        row = lambda acc: {"eval_set": runner.val_set.name, "kind": "val", "n": 20, "metrics": {"acc": acc}}
        if alphas is None:
            return [row(templates[spec.params["template"]])]
        return [dict(row(alpha_acc[spec.name][a]), alpha=a, alpha_meaning="x") for a in alphas]

    monkeypatch.setattr(protocol, "validation_rows", fake)
    one = "{steps: 1, batch_size: 8, warmup: 1, progress: false}"
    cfg = write(
        tmp_path,
        DATA
        + f"""
rrp_alphas: [0.0, 0.5, 1.0]
wise_alphas: [0.0, 0.5, 1.0]
methods:
  - name: zeroshot
    sweep: {{template: ["a photo of a {{}}.", "a blurry photo of a {{}}.", "art of a {{}}."]}}
  - name: finetune
    train: {one}
  - name: reprogrammer
    train: {one}
  - name: residual_reprogrammer
  - name: wise_ft
    base: finetune
""",
    )
    run(cfg, tmp_path / "out")
    sel = read_selection(tmp_path / "out")["methods"]
    assert sel["zeroshot"]["chosen"] == {"template": "a blurry photo of a {}."}
    assert (sel["residual_reprogrammer"]["alpha"], sel["wise_ft"]["alpha"]) == (0.5, 0.0)
    rows = ResultsDB(tmp_path / "out" / "results.jsonl").rows()
    test = [r for r in rows if r["kind"] != "val"]
    assert {r["seed"] for r in test} == {0, 1}
    for m, a in (("residual_reprogrammer", 0.5), ("wise_ft", 0.0)):  # every seed marks seed 0's choice
        assert {(r["alpha"], r["selected"]) for r in test if r["method"] == m} == {(x, x == a) for x in (0, 0.5, 1)}
    assert all(r["chosen"] == {"template": "a blurry photo of a {}."} for r in test if r["method"] == "zeroshot")
    assert len([r for r in rows if r["kind"] == "val" and r["method"] == "zeroshot"]) == 3
    df = ResultsDB(tmp_path / "out" / "results.jsonl").to_frame()
    labels = set(comparison_table(df, read_selection(tmp_path / "out")).index)
    assert {
        "zeroshot (template=a blurry photo of a {}.)",
        "residual_reprogrammer (α_zs=0.5)",
        "wise_ft (α_ft=0)",
        "finetune",
        "reprogrammer",
    } == labels


def test_real_sweep_chooses_the_argmax_and_bases_use_the_choice(finished):
    out, calls = finished
    rows = ResultsDB(out / "results.jsonl").rows()
    sel = read_selection(out)["methods"]
    for m, key in (("finetune", "lr"), ("reprogrammer", "lr_text")):
        accs = val_accs(rows, m, lambda r: r["params"][key])
        assert len(accs) == 2 and sel[m]["chosen"] == {key: max(accs, key=accs.get)}  # dicts keep the order
        chosen_hash = next(
            r["config_hash"]
            for r in rows
            if r["kind"] == "val" and r["method"] == m and r["params"] == sel[m]["chosen"]
        )
        test = [r for r in rows if r["method"] == m and r["kind"] != "val"]
        assert {r["config_hash"] for r in test} == {chosen_hash} == {sel[m]["config_hash"]}
        assert all(r["chosen"] == sel[m]["chosen"] for r in test) and {r["seed"] for r in test} == {0, 1}
    for m in ("residual_reprogrammer", "wise_ft"):  # α chosen = argmax of the real validation accuracies
        accs = val_accs(rows, m, lambda r: r["alpha"])
        assert list(accs) == [0.0, 0.5, 1.0] and sel[m]["alpha"] == max(accs, key=accs.get)
        assert {r["alpha"] for r in rows if r["method"] == m and r.get("selected")} == {sel[m]["alpha"]}
    m = {(r["method"], r["eval_set"], r["seed"], r["alpha"]): r["metrics"] for r in rows if r["kind"] != "val"}
    for seed in (0, 1):  # the bases are the chosen runs: RRP α=0 is the chosen RP, WiSE-FT α=1 the chosen FT
        for (a, meth), ref in (((0.0, "residual_reprogrammer"), "reprogrammer"), ((1.0, "wise_ft"), "finetune")):
            assert m[(meth, "cifar10", seed, a)] == pytest.approx(m[(ref, "cifar10", seed, None)], abs=1e-6)


def test_chosen_checkpoint_is_reused_not_retrained(finished):
    out, calls = finished
    sel = read_selection(out)["methods"]
    for m in ("finetune", "reprogrammer"):
        mine = [c for c in calls if c[0] == m]
        assert len(mine) == 3 and sorted(c[1] for c in mine) == [0, 0, 1]  # 2 candidates + seed 1, not seed 0 again
        dirs = {c[2] for c in mine}
        assert len(dirs) == 3 and all(d.startswith(f"{m}-s") for d in dirs)
    assert {c[0] for c in calls} == {"finetune", "reprogrammer"}  # RRP and WiSE-FT load their bases
    assert not list((out / "checkpoints").glob("*.stale-*"))  # candidates never moved each other aside
    assert sel["finetune"]["val_acc"] in {c["val_acc"] for c in sel["finetune"]["candidates"]}


def test_killed_run_resumes_without_retraining_or_duplicates(tmp_path, monkeypatch, shared_datasets):
    cfg = write(
        tmp_path,
        DATA
        + f"""
wise_alphas: [0.0, 1.0]
methods:
  - name: zeroshot
  - name: finetune
    sweep: {{lr: [1.0e-4, 3.0e-2]}}
    train: {TRAIN}
  - name: wise_ft
    base: finetune
""",
    )
    out, real = tmp_path / "out", protocol.validation_rows
    n = collections.Counter()

    def dies(when):
        def scorer(runner, spec, method, alphas=None):
            n[when] += 1
            if (when == "candidate" and n[when] == 2) or (when == "alpha" and alphas is not None):
                raise KeyboardInterrupt  # as if killed here
            return real(runner, spec, method, alphas)

        return scorer

    calls = fits(monkeypatch)
    for when in ("candidate", "alpha"):  # killed after the 2nd candidate trained, then before WiSE-FT's α scores
        monkeypatch.setattr(protocol, "validation_rows", dies(when))
        with pytest.raises(KeyboardInterrupt):
            run(cfg, out)
    assert [(c[0], c[1]) for c in calls] == [("finetune", 0)] * 2  # the 2nd run trained nothing
    monkeypatch.setattr(protocol, "validation_rows", real)
    run(cfg, out)
    assert [(c[0], c[1]) for c in calls[2:]] == [("finetune", 1)]  # finished seed-0 candidates are not retrained
    got = identities(out)
    assert len(got) == len(set(got))
    rows = ResultsDB(out / "results.jsonl").rows()
    assert len([r for r in rows if r["kind"] == "val"]) == 2 + 2  # 2 candidates + 2 α's, once each
    assert len(got) == 4 + 3 * 2 + 3 * 2 + 3 * 2 * 2  # + zeroshot, finetune, wise_ft × 2 α, over 2 seeds
    run(cfg, out)  # a finished run: nothing trained, nothing appended
    assert identities(out) == got and len(calls) == 3
    run(cfg, out, resume=False)  # --no-resume retrains, but still trains the chosen seed-0 candidate only once
    assert sorted((c[0], c[1]) for c in calls[3:]) == [("finetune", 0), ("finetune", 0), ("finetune", 1)]


@pytest.mark.parametrize(
    "raw, needle",
    [
        ({"methods": [{"name": "finetune", "sweep": {"lr": [1e-4]}}]}, "add val_subset"),
        ({"val_subset": 10, "methods": [{"name": "finetune", "sweep": {"lrr": [1e-4]}}]}, "has no option 'lrr'"),
        ({"val_subset": 10, "methods": [{"name": "finetune", "sweep": {"lr": []}}]}, "non-empty list"),
        ({"val_subset": 10, "methods": [{"name": "finetune", "sweep": {"lr": 1e-4}}]}, "non-empty list"),
        (
            {
                "val_subset": 10,
                "methods": ["reprogrammer", {"name": "residual_reprogrammer", "sweep": {"alpha_zeroshot": [0.1]}}],
            },
            "sweep its base",
        ),
        ({"val_subset": 0}, "val_subset must be a positive"),
    ],
)
def test_bad_protocol_configs_are_one_line_errors(raw, needle):
    with pytest.raises(ConfigError) as e:
        from_dict(dict(raw, encoder="tiny"))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_fair_comparison_config_loads():
    cfg = load_config(ROOT / "configs" / "fair_comparison.yaml")
    assert (cfg.encoder, cfg.train_subset, cfg.val_subset, cfg.test_subset, cfg.seeds) == (
        "standin:strong",
        2000,
        500,
        1000,
        [0, 1, 2],
    )
    for run_name, encoder in (
        ("fair_strong", cfg.encoder),
        ("fair_weak", "standin"),
    ):  # the shipped runs use this config
        shipped = load_config(ROOT / "docs" / "results" / run_name / "config.resolved.yaml")
        assert (shipped.encoder, shipped.seeds, shipped.train_subset) == (encoder, cfg.seeds, cfg.train_subset)
        same = lambda c: [(m.name, m.sweep, m.train) for m in c.methods]  # noqa: E731
        assert same(shipped) == same(cfg), run_name
    assert cfg.method("finetune").sweep == {"lr": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3]} == cfg.method("lp_ft").sweep
    assert cfg.method("reprogrammer").sweep
    assert cfg.method("wise_ft").base == "finetune" and cfg.method("residual_reprogrammer").base == "reprogrammer"
    assert {m.name for m in cfg.methods} == {
        "zeroshot",
        "linear_probe",
        "finetune",
        "lp_ft",
        "wise_ft",
        "reprogrammer",
        "residual_reprogrammer",
    }


def test_report_shows_the_fair_table_and_keeps_val_rows_out_of_the_paper_table(finished):
    out, _ = finished
    df = ResultsDB(out / "results.jsonl").to_frame()
    sel = read_selection(out)
    table = comparison_table(df, sel)
    assert len(table) == 5 and (table["seeds"] == 2).all()
    ft = sel["methods"]["finetune"]
    id_rows = df[(df.method == "finetune") & (df.kind == "id") & (df.config_hash == ft["config_hash"])]
    assert table.loc[ft["label"], "ID acc mean"] == pytest.approx(100 * id_rows["acc"].mean())
    rrp = sel["methods"]["residual_reprogrammer"]
    assert rrp["label"] == f"residual_reprogrammer (α_zs={rrp['alpha']:g})" and rrp["label"] in table.index
    pd_all, pd_test = paper_table(df), paper_table(df[df.kind != "val"])
    assert pd_all.equals(pd_test)
    page = build_report(out).read_text()
    assert "Fair comparison" in page and ft["label"] in page and "Validation scores behind the choices" in page
    tag = sel["methods"]["reprogrammer"]["checkpoint_tag"]
    assert f"(reprogrammer-s0-{tag}); grey = 0" in page  # the learned frame shown is the chosen candidate's
