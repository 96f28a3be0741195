"""Config loading: validation errors are one line naming the key and the fix; --set overrides; shipped configs."""

from pathlib import Path

import pytest

from reprolab.errors import ConfigError
from reprolab.experiment.config import Config, apply_override, from_dict, load_config, parse_value

ROOT = Path(__file__).resolve().parents[1]


def _err(raw) -> str:
    with pytest.raises(ConfigError) as e:
        from_dict(raw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_unknown_key_is_one_line_with_a_suggestion():
    msg = _err({"encodr": "tiny"})
    assert "encodr" in msg and "did you mean 'encoder'" in msg


def test_unknown_train_key_names_the_method_and_the_fix():
    msg = _err({"methods": [{"name": "finetune", "train": {"stepz": 3}}]})
    assert "methods.finetune.train" in msg and "'stepz'" in msg and "steps" in msg


def test_wrong_types_name_the_key_and_the_set_fix():
    msg = _err({"train_subset": "lots"})
    assert msg.startswith("train_subset must be int") and "--set train_subset=" in msg
    msg = _err({"methods": [{"name": "reprogrammer", "train": {"batch_size": 3.5}}]})
    assert "methods.reprogrammer.train.batch_size must be int" in msg
    assert "seeds" in _err({"seeds": ["a"]})
    assert "T must be a number" in _err({"T": "cold"})
    assert "download must be bool" in _err({"download": "yes"})


def test_bad_values_and_unknown_methods_are_rejected():
    assert "score must be one of" in _err({"score": "msp"})
    assert "rrp_alphas must lie in [0, 1]" in _err({"rrp_alphas": [0.5, 1.5]})
    assert "did you mean 'finetune'" in _err({"methods": [{"name": "fintune"}]})
    assert "listed twice" in _err({"methods": ["zeroshot", "zeroshot"]})
    assert "base is 'reprogrammer'" in _err({"methods": [{"name": "residual_reprogrammer", "base": "reprogrammer"}]})


def test_defaults_and_method_shorthand():
    cfg = from_dict({"methods": ["zeroshot", {"name": "finetune", "params": {"lr": 1e-3}}]})
    assert isinstance(cfg, Config) and cfg.encoder == "auto" and cfg.T == 0.01 and cfg.seeds == [0]
    assert cfg.method("zeroshot").params == {} and cfg.method("finetune").params["lr"] == 1e-3
    with pytest.raises(ConfigError, match="no method 'coop'"):
        cfg.method("coop")


def test_data_root_defaults_to_the_environment(monkeypatch):
    monkeypatch.setenv("REPROLAB_DATA", "/some/where")
    assert from_dict({}).data_root == "/some/where"
    assert from_dict({"data_root": "/explicit"}).data_root == "/explicit"


def test_yaml_scalars_parse_like_yaml_1_2():
    assert parse_value("1e-3") == 1e-3 and isinstance(parse_value("1e-3"), float)
    assert parse_value("50") == 50 and parse_value("[0, 1]") == [0, 1] and parse_value("null") is None
    assert parse_value("standin") == "standin" and parse_value("true") is True


def test_set_overrides_dotted_keys_and_methods_by_name(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("encoder: tiny\nmethods:\n  - zeroshot\n  - name: reprogrammer\n    train: {steps: 10}\n")
    cfg = load_config(
        p,
        [
            "train_subset=500",
            "methods.reprogrammer.train.steps=50",
            "methods.reprogrammer.params.lr_image=1e-2",
            "seeds=[0, 1]",
            "methods.zeroshot.params.templates=ensemble",
        ],
    )
    assert cfg.train_subset == 500 and cfg.seeds == [0, 1]
    assert cfg.method("reprogrammer").train == {"steps": 50}
    assert cfg.method("reprogrammer").params == {"lr_image": 0.01}
    assert cfg.method("zeroshot").params == {"templates": "ensemble"}


@pytest.mark.parametrize(
    "override, needle",
    [
        ("train_subset=many", "train_subset must be int"),
        ("methods.coop.train.steps=5", "no method named 'coop'"),
        ("methods.reprogrammer.train.stepz=5", "'stepz'"),
        ("nonsense=1", "unknown key 'nonsense'"),
        ("train_subset", "--set needs key=value"),
        ("encoder.sub=1", "is a value, not a section"),
    ],
)
def test_bad_overrides_are_one_line_errors(tmp_path, override, needle):
    p = tmp_path / "c.yaml"
    p.write_text("encoder: tiny\nmethods:\n  - name: reprogrammer\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, [override])
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("encoder: [tiny\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_apply_override_creates_sections():
    raw = {}
    apply_override(raw, "methods=[zeroshot]")
    apply_override(raw, "methods.zeroshot.params.template=a photo of {}")
    assert raw == {"methods": [{"name": "zeroshot", "params": {"template": "a photo of {}"}}]}


@pytest.mark.parametrize("name", ["quickstart.yaml", "paper/cifar10.yaml", "paper/imagenet.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.methods and cfg.shift_sets and cfg.ood_sets
    for m in cfg.methods:
        if m.name in ("finetune", "reprogrammer"):
            assert m.train, f"{name}: {m.name} has no training settings"


def test_quickstart_is_offline_and_paper_configs_use_clip():
    qs = load_config(ROOT / "configs" / "quickstart.yaml")
    assert qs.encoder.startswith("standin") and qs.download == "auto"  # an offline stand-in, never CLIP
    assert {m.name for m in qs.methods} >= {
        "zeroshot",
        "linear_probe",
        "finetune",
        "reprogrammer",
        "residual_reprogrammer",
    }
    for name in ("cifar10", "imagenet"):
        cfg = load_config(ROOT / "configs" / "paper" / f"{name}.yaml")
        assert cfg.encoder == "clip" and cfg.id_dataset == name
        rp = cfg.method("reprogrammer")
        assert rp.train["batch_size"] == 128 and rp.train["epochs"] == 5
