"""Warm start: supervised fitting on well-formed responses, cached by fingerprint."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from cpu_backend.warm_start import _supervised_batch, response_loss, warm_start

EXAMPLES = [
    ([{"role": "user", "content": f"What is {i} + {i}?"}], f"<think>{i} plus {i}</think><answer>{2 * i}</answer>")
    for i in range(4)
]


def response_nll(model_dir, tokenizer) -> float:
    """Mean NLL of the example responses (+ EOS) after the chat-templated prompt, computed directly."""
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    total, count = 0.0, 0
    for messages, response in EXAMPLES:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt = tokenizer.encode(text, add_special_tokens=False)
        target = tokenizer.encode(response, add_special_tokens=False) + [tokenizer.eos_token_id]
        ids = torch.tensor([prompt + target])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, len(prompt) - 1 : -1], dim=-1)
        total -= logp.gather(-1, torch.tensor(target)[:, None]).sum().item()
        count += len(target)
    return total / count


def test_warm_start_fits_responses_and_caches(tiny_model_dir, small_tokenizer, tmp_path):
    out = tmp_path / "warm"
    result = warm_start(tiny_model_dir, out, small_tokenizer, EXAMPLES, steps=15, lr=1e-2, seed=0)

    assert result == out
    assert response_nll(out, small_tokenizer) < 0.5 * response_nll(tiny_model_dir, small_tokenizer)
    assert (out / "tokenizer_config.json").exists()

    fingerprint = json.loads((out / "warm_start.json").read_text())["fingerprint"]
    weights = out / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    warm_start(tiny_model_dir, out, small_tokenizer, EXAMPLES, steps=15, lr=1e-2, seed=0)
    assert weights.stat().st_mtime_ns == stamp  # cache hit: nothing retrained or rewritten

    warm_start(tiny_model_dir, out, small_tokenizer, EXAMPLES, steps=16, lr=1e-2, seed=0)
    assert json.loads((out / "warm_start.json").read_text())["fingerprint"] != fingerprint


def test_warm_start_rejects_empty_examples(tiny_model_dir, small_tokenizer, tmp_path):
    with pytest.raises(ValueError, match="example"):
        warm_start(tiny_model_dir, tmp_path / "warm", small_tokenizer, [], steps=1)


def test_response_loss_is_the_models_own_loss_on_the_labelled_tokens(tiny_model, small_tokenizer):
    """The warm start's loss skips the logits of prompt and padding positions; it must equal the loss the model computes
    from the labels itself (-100 on prompt and padding), value and gradient."""
    longer = ([{"role": "user", "content": "What is 12 + 30?"}], "<think>12 plus 30 is 42</think><answer>42</answer>")
    input_ids, labels, attention_mask = _supervised_batch("qwen2", small_tokenizer, [*EXAMPLES, longer])
    assert (labels == -100).any() and attention_mask.eq(0).any()  # prompts and padding present
    tiny_model.zero_grad()
    expected = tiny_model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    expected.backward()
    expected_grads = [p.grad.clone() for p in tiny_model.parameters()]
    tiny_model.zero_grad()
    loss = response_loss(tiny_model, input_ids, labels, attention_mask)
    loss.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    for got, want in zip((p.grad for p in tiny_model.parameters()), expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    tiny_model.zero_grad()


def test_warm_start_mini_batches(tiny_model_dir, small_tokenizer, tmp_path):
    """batch_size draws that many examples per step: at least the whole set is the full-batch run exactly; smaller
    batches train on other gradients, get their own fingerprint, and still fit; below 1 is refused."""
    full = warm_start(tiny_model_dir, tmp_path / "full", small_tokenizer, EXAMPLES, steps=15, lr=1e-2, seed=0)
    same = warm_start(
        tiny_model_dir, tmp_path / "same", small_tokenizer, EXAMPLES, steps=15, lr=1e-2, seed=0, batch_size=4
    )
    mini = warm_start(
        tiny_model_dir, tmp_path / "mini", small_tokenizer, EXAMPLES, steps=15, lr=1e-2, seed=0, batch_size=2
    )

    def weights(folder):
        return AutoModelForCausalLM.from_pretrained(str(folder)).state_dict()

    a, b, c = weights(full), weights(same), weights(mini)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    prints = {json.loads((f / "warm_start.json").read_text())["fingerprint"] for f in (full, same, mini)}
    assert len(prints) == 3
    assert response_nll(mini, small_tokenizer) < 0.5 * response_nll(tiny_model_dir, small_tokenizer)
    with pytest.raises(ValueError, match="batch_size"):
        warm_start(tiny_model_dir, tmp_path / "bad", small_tokenizer, EXAMPLES, steps=1, batch_size=0)
