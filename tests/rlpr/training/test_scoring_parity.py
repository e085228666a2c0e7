"""What the scoring batch reads from a response, next to a second implementation of the official code's reading
(issue 19, items 5 and 7).

Written from what the official trainer does with the sampled ids:

* validity of o' (``official_valid``): the response is decoded WITH its special tokens, pad strings are stripped from
  both ends, the eos string is appended when the text does not end with it; the response is valid when ``<answer>``
  occurs once (R1: ``<think>`` and ``</think>`` once each, in order before it) and the text after ``<answer>`` is not
  blank once stripped. That text always ends with the eos string, so its emptiness check never fires: ``<answer>``
  followed only by whitespace is scored.
* the repetition penalty (``official_penalty``) reads ``decode(ids, skip_special_tokens=True)``: every special token is
  removed wherever it stands, then the words (whitespace split, each split again on ``_``) are counted in windows.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from rlpr.answer import repetition_penalty
from rlpr.reward.o_prime import parse_response
from rlpr.reward.token_bytes import token_bytes
from rlpr.training.rollout import make_rollout
from rlpr.training.scoring import ScoringConfig, build_scoring_batch, compute_rewards

from .helpers import chat_prompt_ids, rollout_from_texts


def official_valid(tokenizer, ids: list[int], mode: str) -> bool:
    text = tokenizer.decode(ids, skip_special_tokens=False)
    pad, eos = tokenizer.pad_token, tokenizer.eos_token
    while text.startswith(pad):
        text = text[len(pad) :]
    while text.endswith(pad):
        text = text[: -len(pad)]
    if not text.endswith(eos):
        text += eos
    if text.count("<answer>") != 1:
        return False
    if mode == "R1":
        if text.count("<think>") != 1 or text.count("</think>") != 1:
            return False
        if re.fullmatch(r"^.*<think>.*</think>.*<answer>.*$", text, re.DOTALL) is None:
            return False
    return bool(text.split("<answer>")[1].strip())


def official_penalty(tokenizer, ids: list[int], window: int = 10, limit: int = 10) -> float:
    words = [piece for chunk in tokenizer.decode(ids, skip_special_tokens=True).split() for piece in chunk.split("_")]
    if len(words) <= window:
        return 0.0
    seen: dict[tuple[str, ...], int] = {}
    for start in range(len(words) - window + 1):
        key = tuple(words[start : start + window])
        seen[key] = seen.get(key, 0) + 1
        if seen[key] >= limit:
            return -1.0
    return 0.0


def _ids(tokenizer, text: str, eos: bool = True) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if eos else [])


VALIDITY = [
    ("<think>a</think><answer>", "R1"),
    ("<think>a</think><answer>   ", "R1"),
    ("<think>a</think> <answer>\n\n", "R1"),
    ("<think>a</think><answer> 5 </answer>", "R1"),
    ("<think>a</think>", "R1"),
    ("<answer>", "R1"),
    ("<think>a</think><answer> x <answer> y", "R1"),
    ("</think><think>a<answer>5", "R1"),
    ("reasoning <answer>  \t", "R1_nothink"),
    ("reasoning <answer>", "R1_nothink"),
    ("no tag at all", "R1_nothink"),
]


@pytest.mark.parametrize("eos", [True, False])
@pytest.mark.parametrize(("response", "mode"), VALIDITY)
def test_validity_matches_the_official_even_for_a_blank_answer(qwen_tokenizer, response, mode, eos):
    ids = _ids(qwen_tokenizer, response, eos)
    parsed = parse_response(ids, token_bytes(qwen_tokenizer), "5", mode, qwen_tokenizer.eos_token)
    assert (parsed.tail is not None) is official_valid(qwen_tokenizer, ids, mode)


def test_a_blank_answer_is_scored_like_any_valid_response(qwen_tokenizer):
    rollout = rollout_from_texts(qwen_tokenizer, "2+2?", ["<think>a</think><answer>  ", "<think>a</think>"], "4")
    scoring = build_scoring_batch(rollout, qwen_tokenizer, ScoringConfig())
    assert scoring.status == ["ok", "no_answer"]


def _special_ids(tokenizer) -> list[int]:
    return sorted(i for i, tok in tokenizer.added_tokens_decoder.items() if tok.special)


def test_the_penalty_reads_the_response_without_any_special_token(qwen_tokenizer):
    tok = qwen_tokenizer
    specials = _special_ids(tok)
    assert len(specials) >= 11
    word = tok("w", add_special_tokens=False)["input_ids"]
    space = tok(" ", add_special_tokens=False)["input_ids"]
    # 30 words "w<special>", the special cycling through 11 different ones: with the specials the text repeats only
    # every 11 words (two identical windows of ten), without them it is one word thirty times (21 windows)
    ids = [t for i in range(30) for t in word + [specials[i % 11]] + space] + [tok.eos_token_id]
    tb = token_bytes(tok)
    parsed = parse_response(ids, tb, "4", "R1", tok.eos_token)
    assert parsed.plain == tok.decode(ids, skip_special_tokens=True)
    assert official_penalty(tok, ids) == -1.0
    assert repetition_penalty(parsed.text) == 0.0  # what reading the text with its inner specials would give

    rollout = make_rollout([chat_prompt_ids(tok, "2+2?")], [ids], ["4"], ["q0"], tok.pad_token_id)
    config = ScoringConfig()
    scoring = build_scoring_batch(rollout, tok, config)
    out = compute_rewards(scoring, torch.zeros(scoring.answer_mask.shape), config)
    assert out.repetition.tolist() == [-1.0]


def test_the_plain_text_is_the_tokenizers_own_skip_special_decode(qwen_tokenizer):
    tok = qwen_tokenizer
    specials = _special_ids(tok)
    rng = np.random.default_rng(0)
    tb = token_bytes(tok)
    for _ in range(200):
        ids = rng.integers(0, 151643, size=int(rng.integers(1, 40))).tolist()
        for at in rng.integers(0, len(ids), size=3):
            ids.insert(int(at), int(rng.choice(specials)))
        parsed = parse_response(ids + [tok.eos_token_id], tb, "4", "R1", tok.eos_token)
        assert parsed.plain == tok.decode(ids, skip_special_tokens=True)
