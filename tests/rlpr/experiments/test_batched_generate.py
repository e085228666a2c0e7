"""BatchedHFGenerateClient: concurrent requests in one generate() call, the same tokens as one request at a time."""

from __future__ import annotations

import asyncio

import pytest
from omegaconf import OmegaConf

from cpu_backend import HFGenerateClient
from rlpr.experiments.batched_generate import BatchedHFGenerateClient


def _prompts(tokenizer) -> list[list[int]]:
    questions = ["1+2+3", "What is nine plus nine plus nine?", "7"]  # different lengths: left padding is exercised
    return [
        list(tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True)["input_ids"])
        for q in questions
    ]


async def _generate_all(client, prompts, sampling_params):
    return await asyncio.gather(
        *[
            client.generate(f"r{i}", prompt_ids=p, sampling_params=sampling_params, priority=i)
            for i, p in enumerate(prompts)
        ]
    )


def test_greedy_batch_matches_one_request_at_a_time(tiny_model, small_tokenizer, monkeypatch):
    config = OmegaConf.create({"response_length": 12, "seed": 0})
    prompts = _prompts(small_tokenizer)
    single = asyncio.run(_generate_all(HFGenerateClient(tiny_model, config), prompts, {"temperature": 0.0}))
    calls = []
    generate = tiny_model.generate
    monkeypatch.setattr(tiny_model, "generate", lambda *a, **k: calls.append(a[0].shape) or generate(*a, **k))
    batched = asyncio.run(_generate_all(BatchedHFGenerateClient(tiny_model, config), prompts, {"temperature": 0.0}))
    assert len(calls) == 1 and tuple(calls[0]) == (3, max(map(len, prompts)))  # one call, all three rows
    assert [o.token_ids for o in batched] == [o.token_ids for o in single]
    eos = small_tokenizer.eos_token_id
    for out in batched:  # at most response_length tokens, nothing after an EOS
        assert 0 < len(out.token_ids) <= 12
        assert eos not in out.token_ids[:-1]


def test_sampled_batch_is_seeded_and_a_failure_reaches_every_request(tiny_model, small_tokenizer, monkeypatch):
    config = OmegaConf.create({"response_length": 6, "seed": 3})
    prompts = _prompts(small_tokenizer)
    params = {"temperature": 1.0, "top_k": -1, "top_p": 1.0}
    first = asyncio.run(_generate_all(BatchedHFGenerateClient(tiny_model, config), prompts, params))
    again = asyncio.run(_generate_all(BatchedHFGenerateClient(tiny_model, config), prompts, params))
    assert [o.token_ids for o in first] == [o.token_ids for o in again]

    def broken(*args, **kwargs):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(tiny_model, "generate", broken)
    with pytest.raises(RuntimeError, match="model exploded"):
        asyncio.run(_generate_all(BatchedHFGenerateClient(tiny_model, config), prompts, params))
