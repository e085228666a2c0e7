"""DeepSeek-GRM's pointwise generative judge (docs/rm_r1.md#pointwise-judge): principles, critique, integer scores 1-10.

The judge ends with ``Scores: \\boxed{x, y}`` (x for Chatbot A, y for Chatbot B), or, when it rates any number n of
replies in one prompt (``build_rating_messages``; n = 1 rates a single reply), with the n scores in the order shown.
Voting sums each reply's scores over k samples (totals in [k, 10k]) and predicts the argmax with a seeded random
tie-break; the training reward is +1 only when the true best reply scores strictly highest (the strict-winner reward).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rm_r1.judge.instructions import POINTWISE_INSTRUCTIONS, rating_instructions
from rm_r1.judge.prompts import SPEAKERS, check_family, context_messages, render_comparison

MIN_SCORE, MAX_SCORE = 1, 10

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_INTEGER = re.compile(r"\s*(\d+)\s*")


def build_pointwise_messages(
    conversation: str | list[dict], reply_a: str, reply_b: str, family: str = "instruct"
) -> list[dict[str, str]]:
    """Chat messages asking the pointwise judge to score ``reply_a`` (Chatbot A) and ``reply_b`` (Chatbot B).

    The conversation and replies are laid out as for the pairwise judge (``rm_r1.judge.prompts.render_comparison``).
    ``instruct`` -> [system: instructions, user: comparison]; ``reasoning`` -> [user: instructions + comparison].
    """
    comparison = render_comparison(conversation, reply_a, reply_b)
    if check_family(family) == "instruct":
        return [{"role": "system", "content": POINTWISE_INSTRUCTIONS}, {"role": "user", "content": comparison}]
    return [{"role": "user", "content": f"{POINTWISE_INSTRUCTIONS}\n\n{comparison}"}]


def render_candidates(conversation: str | list[dict], replies: Sequence[str]) -> str:
    """The conversation once (a question, or "User:" / "Assistant:" turns), then each candidate reply in a numbered
    block ``[Reply i]`` ... ``[End of reply i]``."""
    for i, reply in enumerate(replies, 1):
        if not isinstance(reply, str):
            raise ValueError(f"reply {i} must be a str, got {type(reply).__name__}")
    context = context_messages(conversation)
    if len(context) == 1:
        head = f"[Client question]\n{context[0]['content']}"
    else:
        turns = "\n\n".join(f"{SPEAKERS.get(m['role'], 'Assistant')}: {m['content']}" for m in context)
        head = f"[Conversation so far]\n{turns}\n[End of the conversation]"
    blocks = [f"[Reply {i}]\n{reply}\n[End of reply {i}]" for i, reply in enumerate(replies, 1)]
    return "\n\n".join([head, *blocks])


def build_rating_messages(
    conversation: str | list[dict], replies: Sequence[str], family: str = "instruct"
) -> list[dict[str, str]]:
    """Chat messages asking the pointwise judge to score every reply of ``replies`` (1 or more) in one generation;
    ``parse_scores(response, len(replies))`` reads the answer. Layout by ``family`` as ``build_pointwise_messages``."""
    instructions = rating_instructions(len(replies))
    shown = render_candidates(conversation, replies)
    if check_family(family) == "instruct":
        return [{"role": "system", "content": instructions}, {"role": "user", "content": shown}]
    return [{"role": "user", "content": f"{instructions}\n\n{shown}"}]


def parse_scores(response: str, n: int = 2) -> tuple[int, ...] | None:
    """The n integer scores of the LAST ``\\boxed{...}`` in ``response``, or None.

    None when there is no box, the box does not hold exactly n comma-separated integers, or a score lies outside
    [1, 10]. ``Scores: \\boxed{7, 4}`` -> (7, 4).
    """
    if not isinstance(response, str):
        raise ValueError(f"response must be a str, got {type(response).__name__}")
    boxes = _BOXED.findall(response)
    if not boxes:
        return None
    parts = boxes[-1].split(",")
    matches = [_INTEGER.fullmatch(part) for part in parts]
    if len(parts) != n or not all(matches):
        return None
    scores = tuple(int(m.group(1)) for m in matches)
    if not all(MIN_SCORE <= s <= MAX_SCORE for s in scores):
        return None
    return scores


@dataclass(frozen=True)
class PointwiseVote:
    """Voting over k pointwise samples: per-reply totals, the prediction (None = no sample parsed) and failures."""

    totals: tuple[int, ...]
    decision: int | None
    failures: int


def pointwise_voting(samples: Sequence[Sequence[int] | None], n: int, rng: random.Random) -> PointwiseVote:
    """Sum of scores over the parsed samples and the argmax (DeepSeek-GRM voting).

    totals[i] = sum over parsed samples s of s[i] (each s already in the original reply order; None = unparsed,
    counted in ``failures``). decision = argmax_i totals[i], ties broken by ``rng.choice`` among the tied replies;
    None when no sample parsed.
    """
    if not samples:
        raise ValueError("pointwise voting needs at least one sample")
    totals = [0] * n
    failures = 0
    for scores in samples:
        if scores is None:
            failures += 1
            continue
        if len(scores) != n:
            raise ValueError(f"every sample must score {n} replies, got {tuple(scores)!r}")
        for i, score in enumerate(scores):
            totals[i] += score
    if failures == len(samples):
        return PointwiseVote(tuple(totals), None, failures)
    top = max(totals)
    decision = rng.choice([i for i, total in enumerate(totals) if total == top])
    return PointwiseVote(tuple(totals), decision, failures)
