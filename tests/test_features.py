"""Feature extraction and the on-disk feature cache (reprolab.evaluation.features)."""

import warnings

import pytest
import torch
from conftest import TinySet

from reprolab.errors import ReprolabError
from reprolab.evaluation.evaluate import collect
from reprolab.evaluation.features import FeatureCache, extract, key_hash, method_key, state_hash
from reprolab.methods.base import ZeroShot
from reprolab.methods.reprogrammer import Reprogrammer


class NoPreload(torch.utils.data.Dataset):
    """Same items as a TinySet, but without the in-memory ``images`` tensor (forces the DataLoader path)."""

    def __init__(self, base):
        self.base, self.name, self.key = base, base.name + "-np", base.key + "-np"

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        return self.base[i]


class Counting:
    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return {"mean": x.mean(dim=(2, 3)), "first": x[:, 0, 0, :4]}


def test_extract_concatenates_in_order_on_both_paths():
    ds = TinySet(n=37)
    fn = Counting()
    out = extract(fn, ds, batch_size=8, progress=False)
    assert fn.calls == 5  # ceil(37 / 8)
    assert torch.allclose(out["mean"], ds.images.mean(dim=(2, 3)))
    assert torch.equal(out["labels"], ds.labels)
    out2 = extract(Counting(), NoPreload(ds), batch_size=8, progress=False)
    for k in out:
        assert torch.equal(out[k], out2[k])


def test_extract_rejects_bad_input():
    with pytest.raises(ReprolabError, match="batch_size"):
        extract(Counting(), TinySet(n=4), batch_size=0, progress=False)
    with pytest.raises(ReprolabError, match="empty"):
        extract(Counting(), TinySet(n=0), progress=False)


def test_state_hash_tracks_values_names_and_dtypes():
    a = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3)}
    assert state_hash(a) == state_hash({"b": torch.zeros(3), "w": torch.arange(6.0).reshape(2, 3)})
    assert state_hash(a) != state_hash({**a, "b": torch.tensor([0.0, 0.0, 1e-7])})
    assert state_hash(a) != state_hash({"w2": a["w"], "b": a["b"]})
    assert state_hash(a) != state_hash({**a, "b": torch.zeros(3, dtype=torch.float64)})
    assert state_hash({"h": torch.ones(2, dtype=torch.bfloat16)})  # any dtype hashes
    assert state_hash({}) == state_hash({})


def test_cache_hit_returns_identical_tensors_without_recomputing(tmp_path):
    ds, fn, cache = TinySet(n=20), Counting(), FeatureCache(tmp_path)
    key = {"encoder": "x", "dataset": ds.key}
    first = cache.get_or_compute(key, fn, ds, batch_size=8, progress=False)
    calls = fn.calls
    again = FeatureCache(tmp_path).get_or_compute(key, fn, ds, batch_size=8, progress=False)
    assert fn.calls == calls
    assert set(first) == set(again)
    for k in first:
        assert torch.equal(first[k], again[k])
    assert (tmp_path / f"{key_hash(key)}.safetensors").exists() and (tmp_path / f"{key_hash(key)}.json").exists()
    cache.get_or_compute({**key, "dataset": "other"}, fn, ds, batch_size=8, progress=False)
    assert fn.calls == 2 * calls  # a different key is a miss


@pytest.mark.parametrize("damage", ["tensors", "sidecar", "missing_tensors"])
def test_corrupt_cache_entry_is_recomputed_with_a_warning(tmp_path, damage):
    ds, fn, cache = TinySet(n=12), Counting(), FeatureCache(tmp_path)
    key = {"k": 1}
    first = cache.get_or_compute(key, fn, ds, progress=False)
    st, js = tmp_path / f"{key_hash(key)}.safetensors", tmp_path / f"{key_hash(key)}.json"
    if damage == "tensors":
        raw = bytearray(st.read_bytes())
        raw[-5:] = b"\x00\xff\x00\xff\x00"
        st.write_bytes(bytes(raw))
    elif damage == "sidecar":
        js.write_text("{not json")
    else:
        st.unlink()
    with pytest.warns(UserWarning, match="corrupt"):
        again = cache.get_or_compute(key, fn, ds, progress=False)
    assert fn.calls == 2
    assert torch.equal(first["mean"], again["mean"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten entry is healthy again
        cache.get_or_compute(key, fn, ds, progress=False)
    assert fn.calls == 2


def test_method_key_changes_with_state_dataset_and_encoder(tiny):
    rp = Reprogrammer(tiny, mode="image").setup(["cat", "dog", "car", "ship"])
    a, b = TinySet(n=8, seed=0), TinySet(n=8, seed=1)
    k = method_key(rp, a, ["logits"])
    assert k["encoder"] == tiny.id and k["dataset"] == a.key and str(tiny.image_size) in k["transform"]
    assert key_hash(k) == key_hash(method_key(rp, a, ["logits"]))
    assert key_hash(k) != key_hash(method_key(rp, b, ["logits"]))
    with torch.no_grad():
        rp.image_rp.W.add_(0.01)
    assert key_hash(k) != key_hash(method_key(rp, a, ["logits"]))
    assert key_hash(method_key(ZeroShot(tiny).setup(rp.classnames), a, ["logits"])) != key_hash(k)


def test_collect_uses_the_cache_and_leaves_training_possible(tiny, tmp_path):
    ds = TinySet(n=16)
    rp = Reprogrammer(tiny, mode="image").setup(ds.classnames)
    cache = FeatureCache(tmp_path)
    out = collect(rp, [ds], cache, batch_size=8, progress=False)[ds.name]
    assert cache.misses == 1 and set(out) == {"logits", "image_features", "labels"}
    assert torch.allclose(out["logits"], rp.logits(ds.images).detach(), atol=1e-5)
    again = collect(rp, [ds], cache, batch_size=8, progress=False)[ds.name]
    assert cache.hits == 1 and torch.equal(out["logits"], again["logits"])
    # zero-shot text features were cached inside the method during evaluation; training must still work
    rp.train()
    loss, _ = rp.training_loss(ds.images[:8], ds.labels[:8])
    loss.backward()
    assert rp.image_rp.W.grad is not None
    with torch.no_grad():
        rp.image_rp.W.add_(0.05)
    collect(rp, [ds], cache, batch_size=8, progress=False)
    assert cache.misses == 2  # new state, new entry
    assert rp.training  # mode restored
