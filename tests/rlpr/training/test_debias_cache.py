"""The r' cache: keys, lookups that name missing prompts, and persistence across a restart."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from rlpr.training.debias_cache import DebiasCache, DebiasCacheMiss, prompt_key

META = {"score_method": "mean_prob", "tagged": False, "temperature": 1.0}


def test_prompt_key_is_sha256_of_length_prefixed_int64_ids_then_utf8_reference():
    raw = (2).to_bytes(8, "little") + (7).to_bytes(8, "little") + (151643).to_bytes(8, "little") + "Paris é".encode()
    assert prompt_key([7, 151643], "Paris é") == hashlib.sha256(raw).hexdigest()


def test_prompt_key_separates_ids_and_reference_and_accepts_tensors():
    base = prompt_key([1, 2], "3")
    assert prompt_key(torch.tensor([1, 2]), "3") == base
    assert len({base, prompt_key([1], "23"), prompt_key([1, 2, 3], ""), prompt_key([2, 1], "3")}) == 4
    with pytest.raises(TypeError, match="reference must be a string, got int"):
        prompt_key([1], 3)


def test_get_many_returns_values_in_order_and_names_missing_prompts(tmp_path):
    cache = DebiasCache(tmp_path / "r_prime.json", META)
    keys = [prompt_key([i], "y") for i in range(3)]
    cache.put_many(keys[:2], [0.25, 0.5])
    assert cache.get_many([keys[1], keys[0], keys[1]]) == [0.5, 0.25, 0.5]
    assert cache.missing(keys + keys) == [keys[2]]
    with pytest.raises(DebiasCacheMiss) as err:
        cache.get_many(keys, names=["row 0", "row 1", "row 2: 'What is the capital'"])
    message = str(err.value)
    assert "1 of 3 prompts" in message
    assert "row 2: 'What is the capital'" in message
    assert "row 0" not in message
    assert str(tmp_path / "r_prime.json") in message
    assert isinstance(err.value, KeyError)


def test_saved_cache_is_found_again_by_a_resumed_run(tmp_path):
    path = tmp_path / "run" / "r_prime.json"
    first = DebiasCache(path, META)
    assert first.load() is False
    keys = [prompt_key([5, 6], "42"), prompt_key([5, 6], "43")]
    first.put_many(keys, [0.1, 1 / 3])
    first.save()
    assert json.loads(path.read_text())["entries"] == {keys[0]: 0.1, keys[1]: 1 / 3}

    resumed = DebiasCache(path, META)
    assert resumed.load() is True
    assert len(resumed) == 2 and keys[0] in resumed
    assert resumed.get_many(keys) == [0.1, 1 / 3]  # exact: JSON floats round-trip


def test_state_dict_round_trip(tmp_path):
    cache = DebiasCache(tmp_path / "c.json", META)
    cache.put_many(["k"], [0.75])
    other = DebiasCache(tmp_path / "c.json", META)
    other.load_state_dict(cache.state_dict())
    assert other.get_many(["k"]) == [0.75]


def test_a_cache_computed_with_other_settings_is_refused(tmp_path):
    path = tmp_path / "c.json"
    cache = DebiasCache(path, META)
    cache.put_many(["k"], [0.75])
    cache.save()
    with pytest.raises(ValueError, match=r"'score_method': \('mean_prob', 'geo_mean_prob'\)"):
        DebiasCache(path, {**META, "score_method": "geo_mean_prob"}).load()


def test_bad_values_and_files_are_reported(tmp_path):
    cache = DebiasCache(tmp_path / "c.json", META)
    with pytest.raises(ValueError, match="2 keys but 1 values"):
        cache.put_many(["a", "b"], [0.5])
    with pytest.raises(ValueError, match="prompt key a is not finite"):
        cache.put_many(["a"], [float("nan")])
    cache.put_many(["a"], [0.5])
    cache.put_many(["a"], [0.5])  # the same value again is fine
    with pytest.raises(ValueError, match="already cached as 0.5"):
        cache.put_many(["a"], [0.6])
    with pytest.raises(ValueError, match="2 keys but 1 names"):
        cache.get_many(["a", "a"], names=["x"])
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        DebiasCache(tmp_path / "broken.json").load()
    with pytest.raises(ValueError, match="format 7"):
        cache.load_state_dict({"format": 7, "entries": {}})
