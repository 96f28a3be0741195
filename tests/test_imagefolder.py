"""``imagefolder:PATH`` (reprolab/datasets/imagefolder.py): a class's own photos as ID, shift and OOD sets, through
``load_dataset`` and a run config — on small folders copied from the shared data."""

import json
import shutil

import pytest

from reprolab.datasets import load_dataset
from reprolab.errors import DatasetNotFoundError, ReprolabError
from reprolab.experiment.config import load_config
from reprolab.experiment.results import ResultsDB
from reprolab.experiment.runner import run


def copy_classes(src, dst, classes, n, rename=None):
    for c in classes:
        (dst / (rename or {}).get(c, c)).mkdir(parents=True)
        for f in sorted((src / c).iterdir())[:n]:
            shutil.copy(f, dst / (rename or {}).get(c, c) / f.name)
    return dst


@pytest.fixture(scope="module")
def folders(tmp_path_factory, shared_datasets):
    d = tmp_path_factory.mktemp("own")
    photos = copy_classes(
        shared_datasets / "cifar10" / "test",
        d / "photos",
        ["cat", "ship", "automobile"],
        10,
        rename={"automobile": "sports_car"},
    )
    textures = copy_classes(shared_datasets / "dtd10" / "32px", d / "textures", ["banded", "braided"], 6)
    shifted = copy_classes(shared_datasets / "cifar10" / "test", d / "shifted", ["ship", "cat"], 4)
    return photos, textures, shifted


def test_as_id_task_classes_from_folders_and_a_stable_split_manifest(folders):
    photos, _, _ = folders
    train = load_dataset(f"imagefolder:{photos}", "train")
    test = load_dataset(f"imagefolder:{photos}", "test")
    assert train.classnames == ["cat", "ship", "sports car"]  # sorted folder names, "_" read as a space
    assert (train.kind, test.kind) == ("id", "id")
    manifest = json.loads((photos / "reprolab_split.json").read_text())
    assert set(manifest["train"]) | set(manifest["test"]) == {
        f"{p.parent.name}/{p.name}" for p in photos.rglob("*.jpg")
    }
    assert not set(train.ids) & set(test.ids) and len(train) + len(test) == 30
    assert set(test.labels.tolist()) == {0, 1, 2}  # every class has a test image
    x, y = test[0]
    assert x.shape == (3, 224, 224) and 0 <= y < 3
    # a new photo keeps the old split and goes where the hash rule sends it
    shutil.copy(next((photos / "cat").iterdir()), photos / "cat" / "new.jpg")
    again = load_dataset(f"imagefolder:{photos}", "test")
    assert set(test.ids) <= set(again.ids)
    (photos / "cat" / "new.jpg").unlink()


def test_as_ood_and_as_shift_for_cifar10(folders):
    photos, textures, shifted = folders
    ood = load_dataset(f"imagefolder:{textures}", id_task="cifar10", size=32)
    assert ood.kind == "ood" and len(ood) == 12 and set(ood.labels.tolist()) == {-1}
    assert ood.classnames[0] == "airplane" and ood[0][0].shape == (3, 32, 32)
    shift = load_dataset(f"imagefolder:{shifted}", id_task="cifar10", size=32)
    assert shift.kind == "shift"
    cifar = load_dataset("cifar10").classnames
    assert {cifar[y] for y in shift.labels.tolist()} <= {"cat", "ship"}  # labels are CIFAR-10 indices
    with pytest.raises(ReprolabError, match="sports car"):  # cat and ship are CIFAR classes, "sports car" is not
        load_dataset(f"imagefolder:{photos}", id_task="cifar10")
    with pytest.raises(DatasetNotFoundError, match="not a folder"):
        load_dataset(f"imagefolder:{photos / 'nope'}")


def test_a_run_config_with_imagefolder_as_id_and_as_ood(folders, tmp_path):
    photos, textures, _ = folders
    cfg = tmp_path / "own.yaml"
    cfg.write_text(
        f"""
encoder: tiny
id_dataset: imagefolder:{photos}
image_size: 32
ood_sets: [imagefolder:{textures}, sklearn_digits]
eval_batch_size: 16
methods:
  - name: zeroshot
  - name: reprogrammer
    params: {{mode: both}}
    train: {{steps: 2, batch_size: 4, warmup: 1, ckpt_every: 2, progress: false}}
"""
    )
    run(load_config(cfg), tmp_path / "out")
    rows = ResultsDB(tmp_path / "out" / "results.jsonl").rows()
    sets = {(r["method"], r["kind"], r["eval_set"]) for r in rows}
    for m in ("zeroshot", "reprogrammer"):
        assert (m, "id", f"imagefolder:{photos}") in sets
        assert (m, "ood", f"imagefolder:{textures}") in sets and (m, "ood", "sklearn_digits") in sets
