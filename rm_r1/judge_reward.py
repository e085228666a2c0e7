"""A trained judge as the reward of another policy's RL run (docs/rm_r1.md#a-judge-as-the-reward-of-an-rl-run).

verl 0.9.1 calls ``compute_score`` once per policy sample from its reward loop (``reward.custom_reward_function.path:
pkg://rm_r1.judge_reward``); being ``async``, it is awaited in the reward worker's event loop
(verl/experimental/reward_loop/reward_manager/naive.py:66-73) and the samples of a batch run concurrently
(verl/experimental/reward_loop/reward_loop.py:138-143). When verl serves the judge itself
(``reward.reward_model.enable: true``), it passes ``reward_router_address`` (host:port of its router in front of the
vLLM servers) and ``reward_model_tokenizer`` (naive.py:58-65); without it the judge is any OpenAI-compatible server
named by ``reward_kwargs.base_url``.

Two modes, both with the prompt families and parsers of evaluation:

* ``pairwise``: the judge compares the policy's reply with the row's reference reply (``reward_model.ground_truth``),
  k times at ``temperature``, each time in a seeded A/B order (or, with ``both_orders``, in both orders: 2k calls).
  With w verdicts for the policy and l for the reference, R = (w - l) / (w + l) = 2·w/(w + l) - 1 in [-1, 1].
* ``pointwise`` (DeepSeek-GRM): the judge writes principles, a critique and a score 1-10 for the policy's reply
  alone, k times. With parsed scores s_1..s_m, R = (mean(s) - 1) / 9 in [0, 1].

A call that fails for good (HTTP error after the retries) or whose output has no verdict / score is a failure: it is
counted and casts no vote. A sample without any vote gets ``neutral_reward`` (default: the middle of the range, 0 for
pairwise, 0.5 for pointwise), never a silent 0. Every sample returns the same keys (``EXTRA_KEYS``).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from rlpr.evaluation.chat_client import ChatClient, ChatError
from rm_r1.pointwise import MAX_SCORE, MIN_SCORE, parse_scores
from rm_r1.prompts import SPEAKERS, build_judge_messages, check_family, context_messages
from rm_r1.reward import check_rule, parse_verdict

MODES = ("pairwise", "pointwise")
CONTEXT_KEY = "judge_context"
"""``extra_info`` key holding what the policy answered: a question string or a chat-message list ending with a user
turn (verl hands ``compute_score`` no prompt, only ``extra_info``; scripts/prepare_judge_reward_data.py writes it)."""
EXTRA_KEYS = ("judge_calls", "judge_votes", "judge_failed", "judge_agreement", "judge_truncated", "judge_neutral")
TRUNCATION_MARK = "\n[... the reply is cut here: it was longer than the judge can read]"

SINGLE_POINTWISE_INSTRUCTIONS = (
    "You are an impartial judge. You will see a conversation between a client and an AI chatbot. Rate the chatbot's "
    "final reply on its own merits.\n\n"
    "1. Principles: write the few principles that matter most for judging a reply to this particular conversation "
    "(for example correctness, helpfulness, safety, depth, clarity), each with a weight, the weights adding up to "
    "100%. If the task has a checkable correct answer, work it out yourself first.\n"
    "2. Critique: judge the reply against every principle in turn, citing its own words as evidence.\n"
    "3. Score: give the reply an integer score from 1 (useless or harmful) to 10 (could not be better). End with this "
    "line and write nothing after it:\n"
    "Score: \\boxed{score}\n\n"
    "The reply's length and the chatbot's name must not influence your score."
)
"""Instructions of the single-reply pointwise judge (the system prompt, or the head of the one user message)."""


@dataclass(frozen=True)
class JudgeSettings:
    """``reward.custom_reward_function.reward_kwargs`` (every key optional except an endpoint without verl's router)."""

    mode: str = "pairwise"
    family: str = "instruct"
    prompt_file: str | None = None  # pairwise only: your own judge instructions (rm_r1.prompts.load_prompt)
    k: int = 1
    both_orders: bool = False
    temperature: float = 0.5
    top_p: float = 1.0
    max_new_tokens: int = 4096
    verdict_rule: str = "anywhere"  # evaluation's default rule
    seed: int = 0
    neutral_reward: float | None = None  # None: 0.0 (pairwise) / 0.5 (pointwise)
    base_url: str | None = None  # an external server, API prefix included: http://host:8000/v1
    model: str | None = None  # the served model name; default: the judge tokenizer's name_or_path
    api_key: str | None = None
    concurrency: int = 64  # judge requests in flight per reward worker process
    retries: int = 3
    backoff: float = 1.0
    timeout: float = 600.0
    max_response_tokens: int = 4096  # policy reply budget in judge tokens (with the judge tokenizer)
    max_response_chars: int = 16384  # policy reply budget in characters (without one)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"reward_kwargs.mode={self.mode!r}; expected one of {MODES}")
        check_family(self.family)
        check_rule(self.verdict_rule)
        if self.prompt_file is not None and self.mode != "pairwise":
            raise ValueError("reward_kwargs.prompt_file is for the pairwise judge only")
        positive = {
            "k": self.k,
            "concurrency": self.concurrency,
            "max_new_tokens": self.max_new_tokens,
            "timeout": self.timeout,
            "max_response_tokens": self.max_response_tokens,
            "max_response_chars": self.max_response_chars,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"reward_kwargs.{name} must be > 0, got {value}")
        if self.retries < 0 or self.backoff < 0 or self.temperature < 0:
            raise ValueError("reward_kwargs.retries, backoff and temperature must be >= 0")

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> JudgeSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown judge reward_kwargs {unknown}; expected some of {sorted(known)}")
        return cls(**kwargs)

    @property
    def neutral(self) -> float:
        if self.neutral_reward is not None:
            return float(self.neutral_reward)
        return 0.0 if self.mode == "pairwise" else 0.5


@dataclass(frozen=True)
class JudgeOutcome:
    """The reward of one policy sample and what it took."""

    score: float
    calls: int
    votes: int
    failed: int
    agreement: float
    truncated: bool

    def as_dict(self) -> dict[str, float]:
        neutral = float(self.votes == 0)
        extra = (self.calls, self.votes, self.failed, self.agreement, float(self.truncated), neutral)
        return {"score": self.score, **{key: float(v) for key, v in zip(EXTRA_KEYS, extra, strict=True)}}


def pairwise_reward(policy_wins: Sequence[bool | None], neutral: float) -> tuple[float, float]:
    """(R, agreement) from the verdicts of the k (or 2k) calls: True = the policy's reply won, False = the reference
    won, None = failure (no vote).

    w, l = wins, losses; R = (w - l) / (w + l) in [-1, 1]; agreement = max(w, l) / (w + l); no vote: (neutral, 0.0).
    """
    wins = sum(1 for v in policy_wins if v is True)
    losses = sum(1 for v in policy_wins if v is False)
    if wins + losses == 0:
        return neutral, 0.0
    return (wins - losses) / (wins + losses), max(wins, losses) / (wins + losses)


def pointwise_reward(scores: Sequence[int | None], neutral: float) -> tuple[float, float]:
    """(R, agreement) from the scores of the k calls (None = failure): R = (mean - 1) / 9 in [0, 1] over the parsed
    scores; agreement = the share of parsed scores equal to the most common one; no score: (neutral, 0.0)."""
    parsed = [s for s in scores if s is not None]
    if not parsed:
        return neutral, 0.0
    mean = sum(parsed) / len(parsed)
    return (mean - MIN_SCORE) / (MAX_SCORE - MIN_SCORE), Counter(parsed).most_common(1)[0][1] / len(parsed)


def truncate_reply(text: str, tokenizer: Any | None, max_tokens: int, max_chars: int) -> tuple[str, bool]:
    """``text`` cut to ``max_tokens`` judge tokens (with ``tokenizer``) or ``max_chars`` characters (without), plus
    ``TRUNCATION_MARK``; and whether it was cut."""
    if tokenizer is not None:
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) <= max_tokens:
            return text, False
        return tokenizer.decode(ids[:max_tokens]) + TRUNCATION_MARK, True
    if len(text) <= max_chars:
        return text, False
    return text[:max_chars] + TRUNCATION_MARK, True


def policy_shown_as_b(seed: int, sample_id: str, sample: int) -> bool:
    """Whether call ``sample`` for ``sample_id`` shows the policy's reply as Chatbot B (a seeded fair coin)."""
    digest = hashlib.sha256(f"{seed}/{sample_id}/{sample}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big")).random() < 0.5


def single_reply_messages(conversation: str | list[dict], reply: str, family: str = "instruct") -> list[dict]:
    """Chat messages asking the single-reply pointwise judge to score ``reply``."""
    context = context_messages(conversation)
    if len(context) == 1:
        shown = (
            f"[Client question]\n{context[0]['content']}\n\n"
            f"[The chatbot's reply]\n{reply}\n[End of the chatbot's reply]"
        )
    else:
        turns = context + [{"role": "assistant", "content": reply}]
        lines = "\n\n".join(f"{SPEAKERS.get(m['role'], 'Chatbot')}: {m['content']}" for m in turns)
        shown = f"[Conversation between the client and the chatbot]\n{lines}\n[End of the conversation]"
    if check_family(family) == "instruct":
        return [{"role": "system", "content": SINGLE_POINTWISE_INSTRUCTIONS}, {"role": "user", "content": shown}]
    return [{"role": "user", "content": f"{SINGLE_POINTWISE_INSTRUCTIONS}\n\n{shown}"}]


def judge_context(extra_info: dict[str, Any] | None) -> str | list[dict]:
    """The conversation the policy answered, from ``extra_info[CONTEXT_KEY]`` (a parquet round trip turns a message
    list into a numpy array of dicts)."""
    value = (extra_info or {}).get(CONTEXT_KEY)
    if isinstance(value, str):
        return value
    if value is not None and not isinstance(value, dict):
        try:
            return [dict(m) for m in value]
        except (TypeError, ValueError):
            pass
    raise ValueError(
        f"extra_info[{CONTEXT_KEY!r}] must hold the question (str) or the chat messages the policy "
        f"answered, got {value!r}; prepare the data with scripts/prepare_judge_reward_data.py"
    )


def chat_client(settings: JudgeSettings, router_address: str | None, tokenizer: Any | None) -> ChatClient:
    """The judge's endpoint: verl's router when it serves the judge, else ``settings.base_url``."""
    if router_address:
        base_url = f"http://{router_address}/v1"
    elif settings.base_url:
        base_url = settings.base_url
    else:
        raise ValueError(
            "the judge needs an endpoint: reward.reward_model.enable=true (verl serves it and passes "
            "reward_router_address) or reward.custom_reward_function.reward_kwargs.base_url"
        )
    model = settings.model or getattr(tokenizer, "name_or_path", None)
    if not model:
        raise ValueError("reward.custom_reward_function.reward_kwargs.model: the judge's served model name is needed")
    try:
        return ChatClient(
            base_url,
            model,
            api_key=settings.api_key,
            timeout=settings.timeout,
            retries=settings.retries,
            backoff=settings.backoff,
            concurrency=settings.concurrency,
        )
    except ValueError as error:
        raise ValueError(f"reward_kwargs.{error}") from error


async def judge_sample(
    settings: JudgeSettings,
    conversation: str | list[dict],
    response: str,
    reference: str | None,
    sample_id: str,
    router_address: str | None = None,
    tokenizer: Any | None = None,
) -> JudgeOutcome:
    """Judge one policy reply (see the module docstring) and return its reward and counts."""
    client = chat_client(settings, router_address, tokenizer)
    reply, truncated = truncate_reply(response, tokenizer, settings.max_response_tokens, settings.max_response_chars)
    requests: list[tuple[list[dict], bool]] = []  # (messages, policy shown as B)
    for j in range(settings.k):
        if settings.mode == "pointwise":
            requests.append((single_reply_messages(conversation, reply, settings.family), False))
            continue
        if not isinstance(reference, str) or not reference:
            raise ValueError(
                f"pairwise judging needs reward_model.ground_truth = the reference reply (a non-empty "
                f"str), got {reference!r} for sample {sample_id!r}"
            )
        orders = (False, True) if settings.both_orders else (policy_shown_as_b(settings.seed, sample_id, j),)
        for as_b in orders:
            a, b = (reference, reply) if as_b else (reply, reference)
            requests.append((build_judge_messages(conversation, a, b, settings.family, settings.prompt_file), as_b))
    digest = hashlib.sha256(reply.encode()).hexdigest()[:16]

    async def one(i: int, messages: list[dict]) -> str | None:
        seed = int(hashlib.sha256(f"{settings.seed}/{sample_id}/{digest}/{i}".encode()).hexdigest()[:7], 16)
        payload = client.payload(messages, settings.max_new_tokens, settings.temperature, settings.top_p, seed)
        try:
            return await client.acomplete(payload, session=session)
        except ChatError:
            return None

    async with client.async_session() as session:
        texts = await asyncio.gather(*(one(i, messages) for i, (messages, _) in enumerate(requests)))
    if settings.mode == "pointwise":
        scores = [None if t is None else (parse_scores(t, 1) or (None,))[0] for t in texts]
        score, agreement = pointwise_reward(scores, settings.neutral)
        votes = sum(s is not None for s in scores)
    else:
        verdicts = [None if t is None else parse_verdict(t, settings.verdict_rule) for t in texts]
        wins = [None if v is None else (v == "B") == as_b for v, (_, as_b) in zip(verdicts, requests, strict=True)]
        score, agreement = pairwise_reward(wins, settings.neutral)
        votes = sum(w is not None for w in wins)
    return JudgeOutcome(score, len(requests), votes, len(requests) - votes, agreement, truncated)


async def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str | None,
    extra_info: dict[str, Any] | None = None,
    reward_router_address: str | None = None,
    reward_model_tokenizer: Any | None = None,
    **reward_kwargs: Any,
) -> dict[str, float]:
    """verl's custom reward (``path: pkg://rm_r1.judge_reward``, ``name: compute_score``); ``reward_kwargs`` are the
    fields of ``JudgeSettings``. Returns ``score`` and every key of ``EXTRA_KEYS``: ``judge_calls``, ``judge_votes``
    (calls with a verdict or score), ``judge_failed`` (calls without: HTTP failure or unparsable), ``judge_agreement``,
    ``judge_truncated`` (1 when the reply was cut to the judge's budget) and ``judge_neutral`` (1 when no call voted
    and the score is the neutral reward)."""
    settings = JudgeSettings.from_kwargs(reward_kwargs)
    info = extra_info or {}
    sample_id = f"{data_source}/{info.get('index', '')}"
    outcome = await judge_sample(
        settings,
        judge_context(info),
        solution_str,
        ground_truth,
        sample_id,
        reward_router_address,
        reward_model_tokenizer,
    )
    return outcome.as_dict()
