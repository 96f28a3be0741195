"""reprolab.experiment.results: append-only JSONL store, crash-safe tail, resumability and the paper table."""

import json
import math
import warnings

import numpy as np
import pytest

from reprolab.errors import CorruptFileError, ReprolabError
from reprolab.experiment.paper_table import paper_table
from reprolab.experiment.results import REQUIRED_KEYS, ResultsDB, config_hash, validate_row

OOD_KEYS = ("fpr95", "auroc", "aupr_in", "aupr_out")


def row(method="zeroshot", eval_set="cifar10", kind="id", seed=0, alpha=None, cfg="h0", **metrics):
    if not metrics:
        metrics = {"acc": 0.5} if kind != "ood" else dict.fromkeys(OOD_KEYS, 0.5)
    return {
        "method": method,
        "encoder": "tiny",
        "train_dataset": "cifar10",
        "eval_set": eval_set,
        "kind": kind,
        "seed": seed,
        "alpha": alpha,
        "alpha_meaning": None if alpha is None else "fine-tuned weight (WiSE-FT)",
        "metrics": metrics,
        "n": 100,
        "config_hash": cfg,
    }


def test_rows_round_trip(tmp_path):
    db = ResultsDB(tmp_path / "sub" / "results.jsonl")
    assert db.rows() == [] and len(db.to_frame()) == 0
    a = db.append(row(acc=0.8))
    b = db.append_many(
        [
            row(eval_set="cifar10.1", kind="shift", acc=np.float32(0.25)),
            row(
                eval_set="svhn",
                kind="ood",
                seed=np.int64(0),
                alpha=0.5,
                fpr95=0.3,
                auroc=0.9,
                aupr_in=0.8,
                aupr_out=0.7,
            ),
        ]
    )
    got = db.rows()
    assert got == [a, *b]
    assert got[0]["metrics"] == {"acc": 0.8} and got[1]["metrics"]["acc"] == 0.25
    assert got[2]["alpha"] == 0.5 and got[2]["seed"] == 0 and isinstance(got[2]["seed"], int)
    assert all(set(REQUIRED_KEYS) <= set(r) for r in got)
    assert got[0]["created"].endswith("Z")
    lines = (tmp_path / "sub" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(s) for s in lines)
    df = db.to_frame()
    assert list(df.columns[:11]) == [k for k in REQUIRED_KEYS if k != "metrics"]
    assert df.loc[0, "acc"] == 0.8 and df.loc[2, "auroc"] == 0.9 and math.isnan(df.loc[0, "auroc"])


def test_partial_trailing_line_ignored_then_truncated(tmp_path):
    path = tmp_path / "results.jsonl"
    db = ResultsDB(path)
    db.append_many([row(seed=0), row(seed=1)])
    good = path.read_bytes()
    with open(path, "ab") as f:  # simulate a hard kill in the middle of a write
        f.write(b'{"method": "finetune", "encod')
    with pytest.warns(UserWarning, match="partial last line"):
        assert [r["seed"] for r in db.rows()] == [0, 1]
    with pytest.warns(UserWarning, match="partial last line"):
        db.append(row(seed=2))
    assert path.read_bytes().startswith(good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning now: the tail is clean
        assert [r["seed"] for r in db.rows()] == [0, 1, 2]
    assert path.read_bytes().endswith(b"}\n")


def test_partial_line_only_file(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"meth')
    db = ResultsDB(path)
    with pytest.warns(UserWarning):
        assert db.rows() == []
    with pytest.warns(UserWarning):
        db.append(row())
    assert len(db.rows()) == 1


def test_corrupt_middle_line_raises(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(row()) + "\nnot json\n")
    with pytest.raises(CorruptFileError, match="line 2"):
        ResultsDB(path).rows()


def test_done_and_done_keys(tmp_path):
    db = ResultsDB(tmp_path / "r.jsonl")
    assert not db.done("zeroshot", "h0", 0)
    db.append_many([row(cfg="h0", seed=0), row(eval_set="svhn", kind="ood", cfg="h0", seed=0)])
    db.append(row(method="coop", cfg="h1", seed=1))
    assert db.done("zeroshot", "h0", 0)
    assert db.done("zeroshot", "h0", 0, eval_sets=["cifar10", "svhn"])
    assert not db.done("zeroshot", "h0", 0, eval_sets=["cifar10", "svhn", "dtd"])  # incomplete run
    assert not db.done("zeroshot", "h0", 1) and not db.done("zeroshot", "other", 0)
    assert db.done_keys() == {("zeroshot", "h0", 0), ("coop", "h1", 1)}


def test_validate_row_errors_are_one_line():
    r = row()
    del r["seed"]
    with pytest.raises(ReprolabError, match="seed") as e:
        validate_row({**r, "created": "x"})
    assert "\n" not in str(e.value)
    bad = [
        dict(kind="wrong"),
        dict(seed=1.5),
        dict(alpha=0.5),
        dict(kind="ood"),
        dict(metrics={"acc": float("nan")}),
        dict(method=""),
    ]
    for change in bad:
        r = {**row(), "created": "x", **change}
        if change.get("kind") == "ood":
            r["metrics"] = {"acc": 0.5}
        if "alpha" in change:
            r["alpha_meaning"] = None
        with pytest.raises(ReprolabError):
            validate_row(r)


def test_append_many_is_all_or_nothing(tmp_path):
    db = ResultsDB(tmp_path / "r.jsonl")
    with pytest.raises(ReprolabError):
        db.append_many([row(), {**row(), "kind": "nope"}])
    assert db.rows() == []


def test_config_hash_stable():
    a = config_hash({"lr": 0.01, "steps": 100, "opt": {"b": [0.9, 0.99], "name": "adam"}})
    b = config_hash({"opt": {"name": "adam", "b": [0.9, 0.99]}, "steps": 100, "lr": 0.01})
    assert a == b and len(a) == 40
    assert a == config_hash({"lr": np.float64(0.01), "steps": np.int64(100), "opt": {"b": (0.9, 0.99), "name": "adam"}})
    assert a != config_hash({"lr": 0.02, "steps": 100, "opt": {"b": [0.9, 0.99], "name": "adam"}})
    with pytest.raises(ReprolabError):
        config_hash({"f": object()})


def test_paper_table_two_seeds(tmp_path):
    db = ResultsDB(tmp_path / "r.jsonl")
    rows = []
    for seed, (idacc, s1, s2, au1, au2) in enumerate([(0.80, 0.6, 0.4, 0.90, 0.80), (0.90, 0.7, 0.5, 0.95, 0.85)]):
        rows += [
            row(seed=seed, acc=idacc),
            row(eval_set="s1", kind="shift", seed=seed, acc=s1),
            row(eval_set="s2", kind="shift", seed=seed, acc=s2),
            row(eval_set="o1", kind="ood", seed=seed, fpr95=0.2, auroc=au1, aupr_in=0.9, aupr_out=0.8),
            row(eval_set="o2", kind="ood", seed=seed, fpr95=0.4, auroc=au2, aupr_in=0.7, aupr_out=0.6),
        ]
    rows.append(row(method="wise_ft", alpha=0.5, seed=0, acc=0.7))
    db.append_many(rows)
    db.append(rows[0])  # an exact re-run of the same row keeps only one copy
    t = paper_table(db.to_frame())
    assert list(t.index) == ["zeroshot", "wise_ft (α=0.5)"]
    z = t.loc["zeroshot"]
    assert z["seeds"] == 2
    # ID: 0.80, 0.90 -> 85 ± 7.07 (sample std = 0.1/sqrt(2))
    assert z["ID acc mean"] == pytest.approx(85.0) and z["ID acc std"] == pytest.approx(100 * 0.1 / math.sqrt(2))
    assert z["ID acc"] == "85.00 ± 7.07"
    # shift: per-seed means 0.5, 0.6 -> 55 ± 7.07; AUROC per seed 0.85, 0.90 -> 87.5 ± 3.54
    assert z["shift acc mean"] == pytest.approx(55.0) and z["AUROC"] == "87.50 ± 3.54"
    assert z["FPR95"] == "30.00 ± 0.00" and z["AUPR-In mean"] == pytest.approx(80.0)
    # holistic per seed: (0.8+0.5+0.85)/3 = 0.71667, (0.9+0.6+0.9)/3 = 0.8 -> 75.83 ± 5.89
    assert z["holistic mean"] == pytest.approx(75.8333333) and z["holistic std"] == pytest.approx(5.8925565)
    w = t.loc["wise_ft (α=0.5)"]
    assert w["ID acc"] == "70.00" and w["shift acc"] == "—" and np.isnan(w["holistic mean"])


def test_paper_table_refuses_mixed_inputs(tmp_path):
    db = ResultsDB(tmp_path / "r.jsonl")
    db.append_many([row(cfg="a"), row(cfg="b")])
    with pytest.raises(ReprolabError, match="config_hash"):
        paper_table(db.to_frame())
    df = db.to_frame()
    df.loc[1, "encoder"] = "other"
    with pytest.raises(ReprolabError, match="encoder"):
        paper_table(df)
    with pytest.raises(ReprolabError):
        paper_table(ResultsDB(tmp_path / "empty.jsonl").to_frame())
