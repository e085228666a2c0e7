"""One client for OpenAI-compatible chat completions: ``POST {base_url}/chat/completions`` (``vllm serve``, SGLang,
verl's reward router, a hosted API). The RLPR validation judge and RM-R1's judge backends and judge reward all call
through it.

Every fact of the exchange lives here: the endpoint URL, the API-key header, the per-request timeout, the request
body, which failures another try may fix and how long to wait before it, and how the reply text is read.
``ChatClient.complete`` (blocking, for a thread pool) and ``ChatClient.acomplete`` (in an event loop, at most
``concurrency`` requests in flight per loop) make the same tries.

A try fails, and is made again up to ``retries`` times after ``backoff * 2**(attempt - 1)`` seconds, on a transport
error (timeout, refused connection), a status in ``RETRYABLE_STATUS``, or a reply that cannot be used (not a chat
completion, no text content, or text that the caller's ``parse`` rejects with a ``ValueError``). Any other status
fails at once. A call that fails for good raises ``ChatError`` naming the URL and the problem; ``permanent`` says the
server refused the request itself (``REQUEST_ERROR_STATUS``), so sending it again later cannot help.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

import httpx

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""Statuses of a busy or briefly failing server: the same request may succeed on a later try."""
REQUEST_ERROR_STATUS = frozenset({400, 413, 422})
"""Statuses that reject the request itself (e.g. a prompt longer than the server's context): the same request fails
the same way on every try. Other failures (401/403/404: key, URL or model name; a retryable status after the last
try; a network error) say nothing about the request and are worth a later retry."""

T = TypeVar("T")


class ChatError(RuntimeError):
    """A chat completion that failed for good: after every try, or at once with a status no try can fix."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    @property
    def permanent(self) -> bool:
        """Whether the server refused the request itself (``REQUEST_ERROR_STATUS``)."""
        return self.status in REQUEST_ERROR_STATUS


class _FailedTry(Exception):
    """A try that another try may fix; the message says what went wrong."""


def chat_url(base_url: str) -> str:
    """The chat-completions endpoint under an API root such as ``http://host:8000/v1``."""
    return base_url.rstrip("/") + "/chat/completions"


@cache
def _tls() -> ssl.SSLContext:
    # httpx's default TLS settings, built once per process: building them costs ~0.1 s of CPU per session.
    return httpx.create_ssl_context()


def _identity(text: str) -> str:
    return text


# One semaphore per (event loop, client): asyncio primitives belong to the loop that first waits on them.
_BOUNDS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[ChatClient, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class ChatClient:
    """The endpoint under the API root ``base_url`` (``http://host:8000/v1``), serving ``model``.

    ``timeout`` applies to each request; ``retries`` is the number of extra tries after a failed one, the n-th waiting
    ``backoff * 2**(n - 1)`` seconds; ``concurrency`` bounds the ``acomplete`` requests in flight per event loop
    (equal clients share the bound).
    """

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 600.0
    retries: int = 3
    backoff: float = 1.0
    concurrency: int = 16

    def __post_init__(self) -> None:
        if not isinstance(self.base_url, str) or not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL such as http://host:8000/v1, got {self.base_url!r}")
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a non-empty str, got {self.model!r}")
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ValueError(f"concurrency must be a positive int, got {self.concurrency!r}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout!r}")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be a non-negative int, got {self.retries!r}")
        if not self.backoff >= 0:
            raise ValueError(f"backoff must be >= 0 seconds, got {self.backoff!r}")

    @property
    def url(self) -> str:
        return chat_url(self.base_url)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def payload(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        temperature: float = 0.0,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """The request body; ``top_p`` and ``seed`` are sent only when given."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
        if top_p is not None:
            body["top_p"] = top_p
        body["max_tokens"] = max_tokens
        if seed is not None:
            body["seed"] = seed
        return body

    def session(self) -> httpx.Client:
        """A connection pool for ``complete`` calls (one may serve many threads)."""
        return httpx.Client(timeout=self.timeout, headers=self.headers, verify=_tls())

    def async_session(self) -> httpx.AsyncClient:
        """A connection pool for ``acomplete`` calls in one event loop."""
        return httpx.AsyncClient(timeout=self.timeout, headers=self.headers, verify=_tls())

    def complete(
        self,
        payload: dict[str, Any],
        parse: Callable[[str], T] = _identity,
        session: httpx.Client | None = None,
    ) -> T:
        """``parse`` of the reply text to ``payload`` (see the module docstring for the tries); blocking."""
        if session is None:
            with self.session() as own:
                return self.complete(payload, parse, own)
        problems: list[str] = []
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self._delay(attempt))
            with self._try(attempt, problems):
                return self._read(session.post(self.url, json=payload), parse)
        raise self._gave_up(problems[-1])

    async def acomplete(
        self,
        payload: dict[str, Any],
        parse: Callable[[str], T] = _identity,
        session: httpx.AsyncClient | None = None,
    ) -> T:
        """``complete`` in an event loop; each request waits for one of the loop's ``concurrency`` slots."""
        if session is None:
            async with self.async_session() as own:
                return await self.acomplete(payload, parse, own)
        problems: list[str] = []
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt))
            with self._try(attempt, problems):
                async with self._bound():
                    response = await session.post(self.url, json=payload)
                return self._read(response, parse)
        raise self._gave_up(problems[-1])

    def _delay(self, attempt: int) -> float:
        return self.backoff * 2 ** (attempt - 1)

    def _bound(self) -> asyncio.Semaphore:
        per_loop = _BOUNDS.setdefault(asyncio.get_running_loop(), {})
        if self not in per_loop:
            per_loop[self] = asyncio.Semaphore(self.concurrency)
        return per_loop[self]

    def _read(self, response: httpx.Response, parse: Callable[[str], T]) -> T:
        """The parsed reply of a finished request; ``_FailedTry`` for what another try may fix, else ``ChatError``."""
        status = response.status_code
        if status in RETRYABLE_STATUS:
            raise _FailedTry(f"HTTP {status}: {response.text[:200]}")
        if status != 200:
            raise ChatError(f"HTTP {status} from {self.url}: {response.text[:200]}", status)
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise _FailedTry(f"malformed chat completion: {response.text[:200]!r}") from error
        if not isinstance(content, str):
            raise _FailedTry(f"chat completion without text content: {response.text[:200]!r}")
        try:
            return parse(content)
        except ValueError as error:
            raise _FailedTry(f"unusable reply ({error})") from error

    @contextmanager
    def _try(self, attempt: int, problems: list[str]) -> Iterator[None]:
        """Around one try: a failure that another try may fix is logged and added to ``problems``."""
        try:
            yield
        except (httpx.HTTPError, _FailedTry) as failed:  # httpx's: a timeout, a refused connection, ...
            problem = str(failed) if isinstance(failed, _FailedTry) else f"{type(failed).__name__}: {failed}"
            logger.warning(
                "chat completion try %d/%d at %s failed: %s", attempt + 1, self.retries + 1, self.url, problem
            )
            problems.append(problem)

    def _gave_up(self, problem: str) -> ChatError:
        return ChatError(f"gave up after {self.retries + 1} attempts on {self.url}; last: {problem}")
