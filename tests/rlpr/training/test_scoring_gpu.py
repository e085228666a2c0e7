"""GPU: the RLPR scoring forward in bf16 agrees with fp32 within bf16 precision (docs/rlpr.md#probability-reward).

r comes from the public path (``rlpr.score_response`` / ``rlpr.score_direct_answer``: the training batch builder, then
``rlpr.training.hf_logprobs.response_log_probs``), on a tiny model moved to the GPU in fp32 and in bf16. Two checks
each:

* the path's r equals an independent float64 recomputation from the same model's logits on the same scoring row
  (log-softmax at T, p of the y* tokens, their mean) up to fp32 rounding: the path adds no error of its own, in
  either dtype, on the GPU;
* |log r_bf16 − log r_fp32| <= K·u·s, with u = 2^-8 the unit roundoff of bf16, s = max |z| / T the logit scale at the
  y* positions (one bf16 rounding of a logit moves log p by about u·s), and K = 8 for the few roundings of a 2-layer
  forward (on CPU the largest deviation measured is 0.7 u·s).

The model has initializer_range 0.1: non-uniform probabilities, yet logits of moderate size so that bf16 is a fair
comparison (with 0.5 a random model's bf16 logits drift by tens of roundoffs).
"""

from __future__ import annotations

import copy
import importlib.util
import math
from pathlib import Path

import pytest
import torch

import rlpr
from harness.generation import pad_token_id
from offline_models import build_tiny_qwen2
from rlpr.training.rollout import make_rollout
from rlpr.training.scoring import ScoringConfig, build_scoring_batch

pytestmark = pytest.mark.gpu

_spec = importlib.util.spec_from_file_location("rlpr_test_helpers", Path(__file__).with_name("helpers.py"))
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)

BF16_UNIT_ROUNDOFF = 2.0**-8  # bfloat16 keeps 8 significant bits
ROUNDINGS = 8  # K: bf16 roundings of a 2-layer forward that reach the logits
FP32_SLACK = 1e-5  # relative: the path's fp32 log-softmax against the float64 recomputation

QUESTION = "What is the capital of France?"
REFERENCE = "Paris"
RESPONSES = [
    "<think>Paris is the capital of France, everyone knows.</think><answer>Paris</answer>",
    "<think>hmm</think>\n<answer>\nLyon</answer>",
    "<think>一个很长的推理 🙂 with mixed text and more words</think> <answer>Marseille",
]


def path_and_independent(model, tokenizer, prompt_ids, response_ids, temperature) -> tuple[float, float, float]:
    """(r from the public path, r recomputed in float64 from one forward over the same scoring row, logit scale s).

    ``response_ids`` None means the debias term r' (``rlpr.score_direct_answer``).
    """
    debias = response_ids is None
    if debias:
        r_path = rlpr.score_direct_answer(model, tokenizer, prompt_ids, REFERENCE, temperature=temperature)
    else:
        r_path = rlpr.score_response(model, tokenizer, prompt_ids, response_ids, REFERENCE, temperature=temperature)
        assert r_path is not None
    rollout = make_rollout([prompt_ids], [[] if debias else response_ids], [REFERENCE], ["0"], pad_token_id(tokenizer))
    scoring = build_scoring_batch(rollout, tokenizer, ScoringConfig(), debias_rows=debias)
    row = scoring.prompt_row["0"] if debias else scoring.response_row[0]
    batch = scoring.data.batch
    p_len, r_len = batch["prompts"].shape[1], batch["responses"].shape[1]
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(
            input_ids=batch["input_ids"][row : row + 1].to(device),
            attention_mask=batch["attention_mask"][row : row + 1].to(device),
            position_ids=batch["position_ids"][row : row + 1].to(device),
            use_cache=False,
        ).logits[0, p_len - 1 : p_len - 1 + r_len]
    mask = scoring.answer_mask[row]
    assert mask.any()
    z = logits.double().cpu()[mask] / temperature
    tokens = batch["responses"][row][mask]
    log_p = torch.log_softmax(z, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return float(r_path), float(log_p.exp().mean()), float(z.abs().max())


def bf16_vs_fp32(model, tokenizer, device: str, temperature: float) -> list[tuple[tuple, tuple]]:
    """For every response and the debias term: (``path_and_independent`` in fp32, the same in bf16) on ``device``."""
    model32 = copy.deepcopy(model).to(device=device, dtype=torch.float32).eval()
    model16 = copy.deepcopy(model).to(device=device, dtype=torch.bfloat16).eval()
    prompt_ids = helpers.chat_prompt_ids(tokenizer, QUESTION)
    cases = []
    for text in [*RESPONSES, None]:
        ids = None
        if text is not None:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        cases.append(
            tuple(path_and_independent(m, tokenizer, prompt_ids, ids, temperature) for m in (model32, model16))
        )
    return cases


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_bf16_scoring_forward_matches_fp32_within_bf16_precision(small_tokenizer, temperature):
    model = build_tiny_qwen2(small_tokenizer, seed=0, initializer_range=0.1)
    cases = bf16_vs_fp32(model, small_tokenizer, "cuda", temperature)
    assert len(cases) == len(RESPONSES) + 1
    for (r32, ind32, scale), (r16, ind16, _) in cases:
        assert r32 == pytest.approx(ind32, rel=FP32_SLACK) and r16 == pytest.approx(ind16, rel=FP32_SLACK)
        assert 0 < r16 <= 1 and 0 < r32 <= 1
        assert abs(math.log(r16 / r32)) <= ROUNDINGS * BF16_UNIT_ROUNDOFF * scale, (r32, r16, scale)
