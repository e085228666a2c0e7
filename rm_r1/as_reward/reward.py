"""A trained judge as the reward of another policy's RL run (docs/rm_r1.md#a-judge-as-the-reward-of-an-rl-run).

verl 0.9.1 calls ``compute_score`` once per policy sample from its reward loop (``reward.custom_reward_function.path:
pkg://rm_r1.as_reward.reward``); being ``async``, it is awaited in the reward worker's event loop
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

A call that fails for good (HTTP error after the retries, the call's ``deadline`` passed, a prompt over the judge's
``max_model_len``) or whose output has no verdict / score is a failure: it is counted by kind (``DETAIL_KEY``) and casts
no vote. A sample without any vote gets ``neutral_reward`` (default: the middle of the range, 0 for pairwise, 0.5 for
pointwise), never a silent 0. Every sample returns the same keys (``EXTRA_KEYS`` and ``DETAIL_KEY``);
``rm_r1.as_reward.trainer`` turns them into the step's ``judge/*`` metrics and stops a run whose judge keeps failing
(``max_failed_frac`` over ``max_failed_steps`` steps).

Each reward worker process keeps one connection pool per judge endpoint (keep-alive across samples) and judges
identical requests (same endpoint and body: conversation, reply, order, seed; e.g. equal replies in a GRPO group) once,
while the answer is among its last ``CACHE_SIZE`` (``judge_cache_hits``).

The API key of an external judge is read from the environment variable named by ``api_key_env``; a literal
``api_key`` in the config is refused (verl prints the config and hands it to its loggers).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from harness.chat_client import ChatClient, ChatError
from rm_r1.judge.instructions import SINGLE_POINTWISE_INSTRUCTIONS
from rm_r1.judge.pointwise import MAX_SCORE, MIN_SCORE, parse_scores
from rm_r1.judge.prompts import SPEAKERS, build_judge_messages, check_family, context_messages
from rm_r1.judge.verdicts import EVALUATION_VERDICT_RULE, check_verdict_rule, parse_verdict

MODES = ("pairwise", "pointwise")
CONTEXT_KEY = "judge_context"
"""``extra_info`` key holding what the policy answered: a question string or a chat-message list ending with a user
turn (verl hands ``compute_score`` no prompt, only ``extra_info``; scripts/prepare_judge_reward_data.py writes it)."""
CONTEXT_FALLBACK_KEYS = ("question", "raw_prompt")
"""Where else ``extra_info`` holds it, in order: verl's example data put the question in ``extra_info["question"]``
(examples/data_preprocess/*.py), and verl's agent loop adds the chat messages the policy answered as ``raw_prompt``
(verl/experimental/agent_loop/agent_loop.py:730, merged into ``extra_info`` by reward_manager/naive.py:44-46)."""
EXTRA_KEYS = (
    "judge_calls",
    "judge_votes",
    "judge_failed",
    "judge_agreement",
    "judge_truncated",
    "judge_neutral",
    "judge_cache_hits",
)
DETAIL_KEY = "judge_detail"
"""A JSON string per sample (verl's validation metrics skip string keys): ``endpoint``, ``failures`` ({kind: [count,
example]}), ``latencies`` (seconds of each call sent to the judge, retries included) and ``span`` ([start, end] in Unix
seconds)."""
CACHE_SIZE = 4096
NO_VERDICT, NO_SCORE, TOO_LONG = "no_verdict", "no_score", "too_long"
"""Failure kinds of this module; the HTTP ones are ``harness.chat_client.FAILURE_KINDS``."""
CONTEXT_MARGIN = 8  # judge tokens kept free below max_model_len (the served chat template may add a few)
TRUNCATION_MARK = "\n[... the reply is cut here: it was longer than the judge can read]"


@dataclass(frozen=True)
class JudgeSettings:
    """``reward.custom_reward_function.reward_kwargs`` (every key optional except an endpoint without verl's router)."""

    mode: str = "pairwise"
    family: str = "instruct"
    prompt_file: str | None = None  # pairwise only: your own judge instructions (rm_r1.judge.prompts.load_prompt)
    k: int = 1
    both_orders: bool = False
    temperature: float = 0.5
    top_p: float = 1.0
    max_new_tokens: int = 4096
    verdict_rule: str = EVALUATION_VERDICT_RULE
    seed: int = 0
    neutral_reward: float | None = None  # None: 0.0 (pairwise) / 0.5 (pointwise)
    base_url: str | None = None  # an external server, API prefix included: http://host:8000/v1
    model: str | None = None  # the served model name; default: the judge tokenizer's name_or_path
    api_key: str | None = field(default=None, repr=False)  # refused: use api_key_env
    api_key_env: str | None = None  # the environment variable holding the judge's API key
    concurrency: int = 64  # judge requests in flight per reward worker process
    retries: int = 2
    backoff: float = 1.0
    timeout: float = 300.0  # seconds per request
    deadline: float | None = 600.0  # seconds per call: the wait for a slot, the tries and the back-offs
    max_response_tokens: int = 4096  # policy reply budget in judge tokens (with the judge tokenizer)
    max_response_chars: int = 16384  # policy reply budget in characters (without one)
    max_model_len: int | None = None  # the judge's context (prompt + max_new_tokens), enforced with its tokenizer
    max_failed_frac: float = 0.5  # rm_r1.as_reward.trainer stops training when this fraction of a step's calls fail ...
    max_failed_steps: int = 2  # ... on this many consecutive training steps

    def __post_init__(self) -> None:
        if self.api_key is not None:
            raise ValueError(
                "reward_kwargs.api_key: a literal API key in the config is refused (verl prints the config and hands "
                "it to its loggers); export it in an environment variable and name that variable in "
                "reward_kwargs.api_key_env"
            )
        if self.mode not in MODES:
            raise ValueError(f"reward_kwargs.mode={self.mode!r}; expected one of {MODES}")
        check_family(self.family)
        check_verdict_rule(self.verdict_rule)
        if self.prompt_file is not None and self.mode != "pairwise":
            raise ValueError("reward_kwargs.prompt_file is for the pairwise judge only")
        positive = {
            "k": self.k,
            "concurrency": self.concurrency,
            "max_new_tokens": self.max_new_tokens,
            "timeout": self.timeout,
            "deadline": self.deadline,
            "max_response_tokens": self.max_response_tokens,
            "max_response_chars": self.max_response_chars,
            "max_model_len": self.max_model_len,
            "max_failed_steps": self.max_failed_steps,
        }
        for name, value in positive.items():
            if value is not None and value <= 0:
                raise ValueError(f"reward_kwargs.{name} must be > 0, got {value}")
        if self.retries < 0 or self.backoff < 0 or self.temperature < 0:
            raise ValueError("reward_kwargs.retries, backoff and temperature must be >= 0")
        if not 0 < self.max_failed_frac <= 1:
            raise ValueError(f"reward_kwargs.max_failed_frac must be in (0, 1], got {self.max_failed_frac}")
        if self.max_model_len is not None and self.max_model_len <= self.max_new_tokens:
            raise ValueError(
                f"reward_kwargs.max_model_len={self.max_model_len} leaves no room for a prompt next to "
                f"max_new_tokens={self.max_new_tokens}"
            )

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

    def key(self) -> str | None:
        """The judge's API key, from the environment variable ``api_key_env`` (None without one)."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ValueError(
                f"reward_kwargs.api_key_env names the environment variable {self.api_key_env!r}, which is not set "
                f"in this process"
            )
        return value


@dataclass(frozen=True)
class CallResult:
    """One judge call: its text (None: failed), the failure ``kind`` and an ``example`` message, the seconds it took
    when sent (None: answered from the cache, or not sent), and whether the cache answered it."""

    text: str | None
    kind: str | None = None
    example: str = ""
    latency: float | None = None
    hit: bool = False


@dataclass(frozen=True)
class JudgeOutcome:
    """The reward of one policy sample and what it took."""

    score: float
    calls: int
    votes: int
    failed: int
    agreement: float
    truncated: bool
    cache_hits: int = 0
    endpoint: str = ""
    failures: dict[str, tuple[int, str]] = field(default_factory=dict)  # kind -> (count, first example)
    latencies: tuple[float, ...] = ()
    span: tuple[float, float] = (0.0, 0.0)

    def as_dict(self) -> dict[str, float | str]:
        neutral = float(self.votes == 0)
        extra = (self.calls, self.votes, self.failed, self.agreement, float(self.truncated), neutral, self.cache_hits)
        detail = {
            "endpoint": self.endpoint,
            "failures": {kind: list(v) for kind, v in self.failures.items()},
            "latencies": [round(x, 6) for x in self.latencies],
            "span": [round(x, 6) for x in self.span],
        }
        return {
            "score": self.score,
            **{key: float(v) for key, v in zip(EXTRA_KEYS, extra, strict=True)},
            DETAIL_KEY: json.dumps(detail),
        }


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
    """The conversation the policy answered: ``extra_info[CONTEXT_KEY]``, else the first of
    ``CONTEXT_FALLBACK_KEYS`` that is there (a parquet round trip turns a message list into a numpy array of dicts).
    A key that is there but holds neither a question nor messages is an error naming it."""
    info = extra_info or {}
    for key in (CONTEXT_KEY, *CONTEXT_FALLBACK_KEYS):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, str) and value:
            return value
        if not isinstance(value, (str, dict)):
            try:
                return [dict(m) for m in value]
            except (TypeError, ValueError):
                pass
        raise ValueError(
            f"extra_info[{key!r}] must hold the question (a non-empty str) or the chat messages the policy answered, "
            f"got {value!r}"
        )
    raise ValueError(
        f"extra_info holds none of {[CONTEXT_KEY, *CONTEXT_FALLBACK_KEYS]}: the judge needs the question or the chat "
        f"messages the policy answered; prepare the data with scripts/prepare_judge_reward_data.py (keys present: "
        f"{sorted(info)})"
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
            api_key=settings.key(),
            timeout=settings.timeout,
            retries=settings.retries,
            backoff=settings.backoff,
            concurrency=settings.concurrency,
            deadline=settings.deadline,
            router=bool(router_address),
        )
    except ValueError as error:
        raise ValueError(f"reward_kwargs.{error}") from error


class _Answers:
    """One reward worker's answers per judge client in one event loop: requests with the same body are sent once
    (later ones wait for, or reuse, the first one's answer) while among the last ``CACHE_SIZE``; a failed request is
    forgotten, so that the next identical one is sent again."""

    def __init__(self) -> None:
        self.futures: OrderedDict[str, asyncio.Future] = OrderedDict()

    async def ask(self, client: ChatClient, payload: dict[str, Any]) -> CallResult:
        key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        known = self.futures.get(key)
        if known is not None:
            self.futures.move_to_end(key)
            try:
                return CallResult(await asyncio.shield(known), hit=True)
            except ChatError as error:
                return CallResult(None, error.kind, str(error), hit=True)
        future = asyncio.get_running_loop().create_future()
        self.futures[key] = future
        while len(self.futures) > CACHE_SIZE:
            self.futures.popitem(last=False)
        started = time.perf_counter()
        try:
            text = await client.acomplete(payload)
        except ChatError as error:
            self._forget(key, future)
            future.set_exception(error)
            future.exception()  # retrieved: nobody may be waiting
            return CallResult(None, error.kind, str(error), time.perf_counter() - started)
        except BaseException:
            self._forget(key, future)
            future.cancel()
            raise
        future.set_result(text)
        return CallResult(text, latency=time.perf_counter() - started)

    def _forget(self, key: str, future: asyncio.Future) -> None:
        if self.futures.get(key) is future:
            del self.futures[key]


_ANSWERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[ChatClient, _Answers]] = weakref.WeakKeyDictionary()


def answers_for(client: ChatClient) -> _Answers:
    """The running event loop's ``_Answers`` of ``client`` (equal clients share them)."""
    per_loop = _ANSWERS.setdefault(asyncio.get_running_loop(), {})
    if client not in per_loop:
        per_loop[client] = _Answers()
    return per_loop[client]


def fit_reply(
    reply: str, tokenizer: Any, max_model_len: int, max_new_tokens: int, build: Callable[[str], list[list[dict]]]
) -> tuple[str, bool] | None:
    """``reply`` cut so that every judge prompt ``build(reply)`` makes (chat template applied, with the generation
    prompt) plus ``max_new_tokens`` fits in ``max_model_len`` (less ``CONTEXT_MARGIN``); with whether it was cut.
    None when even an empty reply does not fit (the rest of the prompt is too long)."""
    limit = max_model_len - max_new_tokens - CONTEXT_MARGIN

    def longest(text: str) -> int:
        return max(
            len(tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=True, return_dict=False))
            for m in build(text)
        )

    excess = longest(reply) - limit
    if excess <= 0:
        return reply, False
    ids = tokenizer.encode(reply, add_special_tokens=False)
    keep = len(ids) - excess - len(tokenizer.encode(TRUNCATION_MARK, add_special_tokens=False))
    while keep > 0:
        cut = tokenizer.decode(ids[:keep]) + TRUNCATION_MARK
        over = longest(cut) - limit
        if over <= 0:
            return cut, True
        keep -= over  # a cut may re-tokenise into a few more tokens: cut again by the difference
    return None


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
    started = time.time()
    client = chat_client(settings, router_address, tokenizer)
    if settings.mode == "pairwise" and (not isinstance(reference, str) or not reference):
        raise ValueError(
            f"pairwise judging needs reward_model.ground_truth = the reference reply (a non-empty "
            f"str), got {reference!r} for sample {sample_id!r}"
        )
    reply, truncated = truncate_reply(response, tokenizer, settings.max_response_tokens, settings.max_response_chars)
    orders: list[bool] = []  # per call: the policy shown as B
    for j in range(settings.k):
        if settings.mode == "pointwise":
            orders.append(False)
        elif settings.both_orders:
            orders.extend((False, True))
        else:
            orders.append(policy_shown_as_b(settings.seed, sample_id, j))

    def build(text: str) -> list[list[dict]]:
        if settings.mode == "pointwise":
            return [single_reply_messages(conversation, text, settings.family)] * len(orders)
        return [
            build_judge_messages(
                conversation,
                *((reference, text) if as_b else (text, reference)),
                settings.family,
                settings.prompt_file,
            )
            for as_b in orders
        ]

    fitted: tuple[str, bool] | None = (reply, False)
    if tokenizer is not None and settings.max_model_len is not None:
        fitted = fit_reply(reply, tokenizer, settings.max_model_len, settings.max_new_tokens, build)
    if fitted is None:
        results = [
            CallResult(
                None,
                TOO_LONG,
                f"the judge prompt of sample {sample_id!r} does not fit max_model_len={settings.max_model_len} with "
                f"max_new_tokens={settings.max_new_tokens} even with an empty reply; not sent",
            )
        ] * len(orders)
    else:
        reply, cut = fitted
        truncated = truncated or cut
        digest = hashlib.sha256(reply.encode()).hexdigest()[:16]
        answers = answers_for(client)

        async def one(i: int, messages: list[dict]) -> CallResult:
            seed = int(hashlib.sha256(f"{settings.seed}/{sample_id}/{digest}/{i}".encode()).hexdigest()[:7], 16)
            payload = client.payload(messages, settings.max_new_tokens, settings.temperature, settings.top_p, seed)
            return await answers.ask(client, payload)

        results = list(await asyncio.gather(*(one(i, m) for i, m in enumerate(build(reply)))))
    failures: dict[str, tuple[int, str]] = {}

    def failed(kind: str, example: str) -> None:
        count, first = failures.get(kind, (0, example))
        failures[kind] = (count + 1, first)

    if settings.mode == "pointwise":
        scores: list[int | None] = []
        for r in results:
            parsed = None if r.text is None else (parse_scores(r.text, 1) or (None,))[0]
            scores.append(parsed)
            if r.text is None:
                failed(r.kind or "error", r.example)
            elif parsed is None:
                failed(NO_SCORE, f"no score 1-10 in the judge's output, which ends: {r.text[-200:]!r}")
        score, agreement = pointwise_reward(scores, settings.neutral)
        votes = sum(s is not None for s in scores)
    else:
        wins: list[bool | None] = []
        for r, as_b in zip(results, orders, strict=True):
            verdict = None if r.text is None else parse_verdict(r.text, settings.verdict_rule)
            wins.append(None if verdict is None else (verdict == "B") == as_b)
            if r.text is None:
                failed(r.kind or "error", r.example)
            elif verdict is None:
                failed(
                    NO_VERDICT,
                    f"no verdict under rule {settings.verdict_rule!r} in the judge's output, which ends: "
                    f"{r.text[-200:]!r}",
                )
        score, agreement = pairwise_reward(wins, settings.neutral)
        votes = sum(w is not None for w in wins)
    return JudgeOutcome(
        score,
        len(orders),
        votes,
        len(orders) - votes,
        agreement,
        truncated,
        cache_hits=sum(r.hit for r in results),
        endpoint=client.url,
        failures=failures,
        latencies=tuple(r.latency for r in results if r.latency is not None),
        span=(started, time.time()),
    )


async def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str | None,
    extra_info: dict[str, Any] | None = None,
    reward_router_address: str | None = None,
    reward_model_tokenizer: Any | None = None,
    **reward_kwargs: Any,
) -> dict[str, float | str]:
    """verl's custom reward (``path: pkg://rm_r1.as_reward.reward``, ``name: compute_score``); ``reward_kwargs`` are the
    fields of ``JudgeSettings``. Returns ``score`` and every key of ``EXTRA_KEYS``: ``judge_calls``, ``judge_votes``
    (calls with a verdict or score), ``judge_failed`` (calls without: HTTP failure or unparsable), ``judge_agreement``,
    ``judge_truncated`` (1 when the reply was cut to the judge's budget), ``judge_neutral`` (1 when no call voted
    and the score is the neutral reward) and ``judge_cache_hits`` (calls answered by an identical request's answer);
    and ``DETAIL_KEY`` (failures by kind with an example, latencies, the endpoint)."""
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
