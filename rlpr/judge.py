"""An LLM judge behind any OpenAI-compatible endpoint (``POST {base_url}/chat/completions``), for validation.

The judge is asked whether a candidate answer means the same as the reference answer and replies YES or NO. A request
that fails (connection error, timeout, HTTP 5xx/429, unreadable reply) is retried ``retries`` times; when every try
fails, ``LLMJudge.judge`` raises ``JudgeError`` so the caller can count the failure instead of scoring it 0.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from dataclasses import dataclass

import httpx

logger = logging.getLogger(__name__)

JUDGE_SYSTEM_PROMPT = (
    "You grade answers to exam questions. You are shown a question, the reference answer, and a candidate answer "
    "written by a student. Decide whether the candidate answer says the same thing as the reference answer. Accept "
    "equivalent forms (another notation, an equal number or expression, rounding consistent with the reference, "
    "different wording of the same fact, units written differently). Reject answers that are incomplete, hedge "
    "between several options, or differ in substance. Do not solve the question yourself beyond what you need to "
    "compare the two answers. Reply with a single word: YES if the candidate answer is correct, NO otherwise."
)

_VERDICT = re.compile(r"^\W*(YES|NO)\b", re.IGNORECASE)


class JudgeError(RuntimeError):
    """The judge gave no usable verdict after all retries."""


@dataclass(frozen=True)
class JudgeConfig:
    """Where the judge is served and how hard to push it.

    ``base_url`` is the API root that ``/chat/completions`` is appended to (e.g. ``http://host:8000/v1``);
    ``concurrency`` bounds the requests in flight per event loop; ``timeout_s`` applies to each request;
    ``retries`` is the number of extra tries after a failed one.
    """

    base_url: str
    model: str
    api_key: str | None = None
    concurrency: int = 16
    timeout_s: float = 60.0
    retries: int = 2
    retry_delay_s: float = 1.0
    max_tokens: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.base_url, str) or not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"judge base_url must be an http(s) URL, got {self.base_url!r}")
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"judge model must be a non-empty str, got {self.model!r}")
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ValueError(f"judge concurrency must be a positive int, got {self.concurrency!r}")
        if not self.timeout_s > 0:
            raise ValueError(f"judge timeout_s must be positive, got {self.timeout_s!r}")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"judge retries must be a non-negative int, got {self.retries!r}")
        if self.retry_delay_s < 0:
            raise ValueError(f"judge retry_delay_s must be >= 0, got {self.retry_delay_s!r}")

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


def judge_messages(question: str, reference: str, candidate: str) -> list[dict[str, str]]:
    """The chat messages sent to the judge for one comparison."""
    user = (
        f"Question:\n{question}\n\nReference answer:\n{reference}\n\nCandidate answer:\n{candidate}\n\n"
        "Is the candidate answer correct? Reply YES or NO."
    )
    return [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_verdict(reply: str) -> bool:
    """True for a reply starting with YES, False for NO (any case, leading punctuation allowed); else JudgeError."""
    found = _VERDICT.match(reply) if isinstance(reply, str) else None
    if found is None:
        raise JudgeError(f"judge reply is neither YES nor NO: {reply!r}")
    return found.group(1).upper() == "YES"


class _Retryable(Exception):
    pass


# One semaphore per (event loop, config): asyncio primitives belong to the loop that first waits on them.
_SEMAPHORES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[JudgeConfig, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _semaphore(config: JudgeConfig) -> asyncio.Semaphore:
    per_loop = _SEMAPHORES.setdefault(asyncio.get_running_loop(), {})
    if config not in per_loop:
        per_loop[config] = asyncio.Semaphore(config.concurrency)
    return per_loop[config]


class LLMJudge:
    """Asks the endpoint of ``config`` for a verdict; at most ``config.concurrency`` requests at once per loop."""

    def __init__(self, config: JudgeConfig):
        self.config = config

    async def judge(self, question: str, reference: str, candidate: str) -> bool:
        cfg = self.config
        payload = {
            "model": cfg.model,
            "messages": judge_messages(question, reference, candidate),
            "temperature": 0.0,
            "max_tokens": cfg.max_tokens,
        }
        headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
        errors: list[str] = []
        async with _semaphore(cfg), httpx.AsyncClient(timeout=cfg.timeout_s) as client:
            for attempt in range(cfg.retries + 1):
                if attempt:
                    await asyncio.sleep(cfg.retry_delay_s * attempt)
                try:
                    return await self._ask(client, payload, headers)
                except _Retryable as exc:
                    errors.append(str(exc))
                    logger.warning("judge attempt %d/%d failed: %s", attempt + 1, cfg.retries + 1, exc)
        raise JudgeError(f"judge at {cfg.url} failed {len(errors)} times; last error: {errors[-1]}")

    async def _ask(self, client: httpx.AsyncClient, payload: dict, headers: dict[str, str]) -> bool:
        try:
            response = await client.post(self.config.url, json=payload, headers=headers)
        except httpx.HTTPError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise JudgeError(f"judge at {self.config.url} refused the request: HTTP {response.status_code} "
                             f"{response.text[:200]!r}")
        try:
            reply = response.json()["choices"][0]["message"]["content"]
            return parse_verdict(reply)
        except (ValueError, KeyError, IndexError, TypeError, JudgeError) as exc:
            raise _Retryable(f"unusable reply ({exc}): {response.text[:200]!r}") from exc
