"""DeepSeek-GRM's pointwise generative judge (docs/rm_r1.md#pointwise-judge): principles, critique, integer scores 1-10.

The judge ends with ``Scores: \\boxed{x, y}`` (x for Chatbot A, y for Chatbot B). Voting sums each reply's scores over
k samples (totals in [k, 10k]) and predicts the argmax with a seeded random tie-break; the training reward is +1 only
when the true best reply scores strictly highest (the strict-winner reward).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rm_r1.prompts import check_family, render_comparison
from rm_r1.reward import VERL_CALL_KWARGS, label_side

MIN_SCORE, MAX_SCORE = 1, 10

POINTWISE_INSTRUCTIONS = (
    "You are an impartial judge. You will see a conversation between a client and two AI chatbots, Chatbot A and "
    "Chatbot B, which differ only in their final reply. Rate each final reply on its own merits.\n\n"
    "1. Principles: write the few principles that matter most for judging replies to this particular conversation "
    "(for example correctness, helpfulness, safety, depth, clarity), each with a weight, the weights adding up to "
    "100%. If the task has a checkable correct answer, work it out yourself first.\n"
    "2. Critique: judge each reply against every principle in turn, citing the reply's own words as evidence.\n"
    "3. Scores: give each reply an integer score from 1 (useless or harmful) to 10 (could not be better), Chatbot A's "
    "score first. End with this line and write nothing after it:\n"
    "Scores: \\boxed{score of Chatbot A, score of Chatbot B}\n\n"
    "The order in which the replies appear, their length and the chatbots' names must not influence your scores."
)
"""The pointwise judge's instructions: the system prompt (instruct family) or the head of the one user message."""

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_INTEGER = re.compile(r"\s*(\d+)\s*")


def build_pointwise_messages(
    conversation: str | list[dict], reply_a: str, reply_b: str, family: str = "instruct"
) -> list[dict[str, str]]:
    """Chat messages asking the pointwise judge to score ``reply_a`` (Chatbot A) and ``reply_b`` (Chatbot B).

    The conversation and replies are laid out as for the pairwise judge (``rm_r1.prompts.render_comparison``).
    ``instruct`` -> [system: instructions, user: comparison]; ``reasoning`` -> [user: instructions + comparison].
    """
    comparison = render_comparison(conversation, reply_a, reply_b)
    if check_family(family) == "instruct":
        return [{"role": "system", "content": POINTWISE_INSTRUCTIONS}, {"role": "user", "content": comparison}]
    return [{"role": "user", "content": f"{POINTWISE_INSTRUCTIONS}\n\n{comparison}"}]


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


def strict_winner_reward(scores: Sequence[int] | None, best: int) -> float:
    """+1.0 iff scores[best] > scores[i] for every i != best; -1.0 otherwise (ties, or unparsed scores = None)."""
    if scores is None:
        return -1.0
    if not 0 <= best < len(scores):
        raise ValueError(f"best={best} is not the index of one of the {len(scores)} scored replies")
    return 1.0 if all(scores[best] > s for i, s in enumerate(scores) if i != best) else -1.0


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str | int,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's ``reward.custom_reward_function`` for a pointwise judge (``pkg://rm_r1.pointwise``, ``compute_score``).

    ``ground_truth``: the best reply, ``model_a``/``model_b`` for a pair or its 0-based index among
    ``extra_info["num_replies"]`` (default 2) replies. Every sample returns ``score`` = the strict-winner reward
    (+1/-1), ``acc`` (1.0 when it is +1) and ``scores_found`` (1.0 when the scores parsed).
    """
    unexpected = sorted(set(kwargs) - VERL_CALL_KWARGS)
    if unexpected:
        raise TypeError(f"compute_score got unexpected reward kwargs {unexpected}; it takes none")
    n = int((extra_info or {}).get("num_replies", 2))
    best = ground_truth if isinstance(ground_truth, int) else "AB".index(label_side(ground_truth))
    if not 0 <= best < n:
        raise ValueError(f"ground_truth {ground_truth!r} is not one of the {n} replies")
    scores = parse_scores(solution_str, n)
    reward = strict_winner_reward(scores, best)
    return {"score": reward, "acc": float(reward > 0), "scores_found": float(scores is not None)}
