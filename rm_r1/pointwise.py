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
from typing import Any

from rm_r1.prompts import SPEAKERS, check_family, context_messages, render_comparison
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


RATING_INSTRUCTIONS = (
    "You are an impartial judge. You will see a conversation between a client and an AI assistant, followed by "
    "{candidates}. Rate {each} on its own merits.\n\n"
    "1. Principles: write the few principles that matter most for judging replies to this particular conversation "
    "(for example correctness, helpfulness, safety, depth, clarity), each with a weight, the weights adding up to "
    "100%. If the task has a checkable correct answer, work it out yourself first.\n"
    "2. Critique: judge {each} against every principle in turn, citing the reply's own words as evidence.\n"
    "3. Scores: give {each} an integer score from 1 (useless or harmful) to 10 (could not be better){order}. End with "
    "this line and write nothing after it:\n"
    "{label}: \\boxed{{{slots}}}\n\n"
    "{bias}"
)
"""Instructions for rating ``count`` replies in one prompt; ``rating_instructions`` fills them in."""


def rating_instructions(count: int) -> str:
    """The pointwise instructions for ``count`` >= 1 replies (one reply: a single score in the box)."""
    if count < 1:
        raise ValueError(f"the judge rates at least one reply, got count={count}")
    if count == 1:
        return RATING_INSTRUCTIONS.format(
            candidates="one candidate final reply of the assistant, numbered 1", each="the reply", order="",
        label="Score", slots="score of reply 1",
            bias="The reply's length and style must not influence your score beyond what they are worth.",
        )  # fmt: skip
    return RATING_INSTRUCTIONS.format(
        candidates=f"{count} candidate final replies of the assistant, numbered from 1 to {count}",
        each="each reply", order=", in the order of the replies", label="Scores",
        slots=", ".join(f"score of reply {i}" for i in range(1, count + 1)),
        bias="The order in which the replies appear and their length must not influence your scores.",
    )  # fmt: skip


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
