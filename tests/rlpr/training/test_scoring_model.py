"""r and r' of the batch path equal a plain forward of the tiny model on the same ids (docs/rlpr.md#debias)."""

import importlib.util
from pathlib import Path

import pytest
import torch

import rlpr
from rlpr.training.hf_logprobs import response_log_probs
from rlpr.training.scoring import ScoringConfig, build_scoring_batch, compute_rewards

_spec = importlib.util.spec_from_file_location("rlpr_test_helpers", Path(__file__).with_name("helpers.py"))
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)

RESPONSES = [
    "<think>Paris is the capital of France, everyone knows.</think><answer>Paris</answer>",
    "<think>hmm</think>\n<answer>\nLyon</answer>",
    "no format at all",
    "<think>一个很长的推理 🙂 with mixed text and more words to make it longer</think> <answer>Marseille",
]


@torch.no_grad()
def direct_score(model, ids, mask, temperature, log=False):
    """Independent computation: one unpadded forward, softmax at T, p of each masked token, then their mean
    (or the mean of log p with ``log``)."""
    logits = model(torch.tensor([ids])).logits[0].double() / temperature
    probs = torch.softmax(logits, -1)
    p = torch.tensor([float(probs[t - 1, ids[t]]) for t in range(1, len(ids)) if mask[t]], dtype=torch.float64)
    return float(p.log().mean()) if log else float(p.mean())


def close(x):
    """Equal to 1e-5, and relatively to 1e-4: the tiny model's probabilities can be far below 1e-5."""
    return pytest.approx(x, rel=1e-4, abs=1e-12)


def full_row(scoring, row):
    """Unpadded o' / debias ids and the answer mask over them."""
    b = scoring.data.batch
    attn = b["attention_mask"][row].bool()
    ids = b["input_ids"][row][attn].tolist()
    p_len = int(b["attention_mask"][row][: b["prompts"].shape[1]].sum())
    r_mask = scoring.answer_mask[row][b["response_mask"][row].bool()].tolist()
    return ids, [False] * p_len + r_mask


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_batch_path_equals_direct_forward(tiny_model, small_tokenizer, temperature):
    rollout = helpers.rollout_from_texts(small_tokenizer, "What is the capital of France?", RESPONSES, "Paris")
    config = ScoringConfig()
    scoring = build_scoring_batch(rollout, small_tokenizer, config)
    assert scoring.status == ["ok", "ok", "no_answer", "ok"]
    log_probs = response_log_probs(tiny_model, scoring.data, temperature, micro_batch_size=2)
    out = compute_rewards(scoring, log_probs, config)
    mean_log = compute_rewards(scoring, log_probs, ScoringConfig(score_method="mean_logprob"))
    for i, row in enumerate(scoring.response_row):
        if row < 0:
            assert out.r[i] == 0.0
            continue
        ids, mask = full_row(scoring, row)
        assert out.r[i].item() == close(direct_score(tiny_model, ids, mask, temperature))
        assert out.r[i].item() == pytest.approx(direct_score(tiny_model, ids, mask, temperature), abs=1e-5)
        assert mean_log.r[i].item() == pytest.approx(
            direct_score(tiny_model, ids, mask, temperature, log=True), abs=1e-4
        )
    ids, mask = full_row(scoring, scoring.prompt_row["q0"])
    r_prime = direct_score(tiny_model, ids, mask, temperature)
    assert out.r_prime.tolist() == [close(r_prime)] * 4
    valid = [out.r[i].item() for i, row in enumerate(scoring.response_row) if row >= 0]
    assert 0.0 < r_prime < 1.0 and all(v > 0 for v in valid) and len(set(valid)) == 3


def test_single_example_helpers(tiny_model, small_tokenizer):
    prompt = helpers.chat_prompt_ids(small_tokenizer, "What is the capital of France?")
    rollout = helpers.rollout_from_texts(small_tokenizer, "What is the capital of France?", RESPONSES, "Paris")
    scoring = build_scoring_batch(rollout, small_tokenizer, ScoringConfig())
    for i, text in enumerate(RESPONSES):
        ids = small_tokenizer(text, add_special_tokens=False)["input_ids"] + [small_tokenizer.eos_token_id]
        r = rlpr.score_response(tiny_model, small_tokenizer, prompt, ids, "Paris", temperature=0.8)
        if scoring.response_row[i] < 0:
            assert r is None
        else:
            row_ids, mask = full_row(scoring, scoring.response_row[i])
            assert r == close(direct_score(tiny_model, row_ids, mask, 0.8))
    r_prime = rlpr.score_direct_answer(tiny_model, small_tokenizer, prompt, "Paris", temperature=0.8)
    row_ids, mask = full_row(scoring, scoring.prompt_row["q0"])
    assert r_prime == close(direct_score(tiny_model, row_ids, mask, 0.8))
    geo = rlpr.score_direct_answer(tiny_model, small_tokenizer, prompt, "Paris", method="geo_mean_prob")
    assert 0.0 < geo <= rlpr.score_direct_answer(tiny_model, small_tokenizer, prompt, "Paris")  # AM >= GM
    with pytest.raises(ValueError, match="reference"):
        rlpr.score_direct_answer(tiny_model, small_tokenizer, prompt, "  ")
    with pytest.raises(ValueError, match="method"):
        rlpr.score_response(tiny_model, small_tokenizer, prompt, ids, "Paris", method="median")
