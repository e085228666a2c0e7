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
fails at once. A call that fails for good raises ``ChatError`` naming the URL and the problem, with its ``kind``
(``FAILURE_KINDS``); ``permanent`` says the server refused the request itself (``REQUEST_ERROR_STATUS``), so sending it
again later cannot help.

``deadline`` (optional) bounds a whole call in wall-clock seconds from the moment it is made: the wait for a
concurrency slot, every try and every back-off. ``router=True`` marks verl's reward router
(verl/experimental/reward_loop/router/naive_router.py) as the endpoint: it answers a bare ``500 Internal Server
Error`` when the judge server behind it answered an HTTP error (a refused prompt's 400 included) or could not be
reached in its own 3 tries, so such an answer is not tried again (kind ``router_error``).

``acomplete`` without a ``session`` uses one connection pool per client and event loop, kept alive across calls (a
reward worker's samples share it); ``complete`` without one opens a pool per call. ``complete`` sends with httpx,
``acomplete`` with aiohttp (one httpx pool slows to ~70 requests/s at 64 in flight; aiohttp's keeps up).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import ssl
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

import aiohttp
import httpx

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""Statuses of a busy or briefly failing server: the same request may succeed on a later try."""
REQUEST_ERROR_STATUS = frozenset({400, 413, 422})
"""Statuses that reject the request itself (e.g. a prompt longer than the server's context): the same request fails
the same way on every try. Other failures (401/403/404: key, URL or model name; a retryable status after the last
try; a network error) say nothing about the request and are worth a later retry."""

ROUTER_WRAPPED_BODY = "Internal Server Error"
"""The whole body of the 500 that verl's router (FastAPI) sends when forwarding raised."""
FAILURE_KINDS = ("http_<status>", "timeout", "connection", "malformed", "unusable", "deadline", "router_error")
"""``ChatError.kind``: an HTTP status that failed for good, a request timeout, a transport failure (refused or broken
connection), a reply that is not a chat completion with text, a reply the caller's ``parse`` rejected, the call's
``deadline`` passed, verl's router wrapping the judge server's error."""

T = TypeVar("T")


class ChatError(RuntimeError):
    """A chat completion that failed for good: after every try, or at once with a status no try can fix."""

    def __init__(self, message: str, status: int | None = None, kind: str | None = None, permanent: bool = False):
        super().__init__(message)
        self.status = status
        self.kind = kind or (f"http_{status}" if status is not None else "error")
        self._permanent = permanent

    @property
    def permanent(self) -> bool:
        """Whether the server refused the request itself (``REQUEST_ERROR_STATUS``, or verl's router wrapping it)."""
        return self._permanent or self.status in REQUEST_ERROR_STATUS


class _FailedTry(Exception):
    """A try that another try may fix; the message says what went wrong, ``kind`` which ``FAILURE_KINDS`` it is."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def _transport_kind(error: Exception) -> str:
    return "timeout" if isinstance(error, (httpx.TimeoutException, TimeoutError)) else "connection"


def chat_url(base_url: str) -> str:
    """The chat-completions endpoint under an API root such as ``http://host:8000/v1``."""
    return base_url.rstrip("/") + "/chat/completions"


@cache
def _tls() -> ssl.SSLContext:
    # httpx's default TLS settings, built once per process: building them costs ~0.1 s of CPU per session.
    return httpx.create_ssl_context()


def _identity(text: str) -> str:
    return text


# One semaphore and one connection pool per (event loop, client): asyncio objects belong to the loop that first
# waits on them.
_BOUNDS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[ChatClient, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[ChatClient, aiohttp.ClientSession]] = (
    weakref.WeakKeyDictionary()
)


_KEEPERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


@atexit.register
def _close_pools_at_exit() -> None:
    """Close the pools of loops still open at exit (a Ray actor's or a thread's loop that never shuts down), which
    aiohttp would otherwise report as unclosed."""
    for loop, pools in list(_POOLS.items()):
        for pool in list(pools.values()):
            if pool.closed or loop.is_closed():
                continue
            try:
                if loop.is_running():
                    asyncio.run_coroutine_threadsafe(pool.close(), loop).result(timeout=2)
                else:
                    loop.run_until_complete(pool.close())
            except Exception:  # noqa: BLE001 (best effort at exit)
                pass


async def _close_at_shutdown(pools: dict[ChatClient, aiohttp.ClientSession]) -> Any:
    """Suspended once per event loop; the loop's ``shutdown_asyncgens`` resumes it into closing the loop's pools."""
    try:
        yield
    finally:
        for pool in pools.values():
            await pool.close()
        pools.clear()


@dataclass(frozen=True)
class ChatClient:
    """The endpoint under the API root ``base_url`` (``http://host:8000/v1``), serving ``model``.

    ``timeout`` applies to each request; ``retries`` is the number of extra tries after a failed one, the n-th waiting
    ``backoff * 2**(n - 1)`` seconds; ``concurrency`` bounds the ``acomplete`` requests in flight per event loop
    (equal clients share the bound and the connection pool); ``deadline`` bounds a whole call (None: no bound);
    ``router``: the endpoint is verl's reward router (see the module docstring).
    """

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 600.0
    retries: int = 3
    backoff: float = 1.0
    concurrency: int = 16
    deadline: float | None = None
    router: bool = False

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
        if self.deadline is not None and not self.deadline > 0:
            raise ValueError(f"deadline must be > 0 seconds (or None), got {self.deadline!r}")

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

    def async_session(self) -> aiohttp.ClientSession:
        """A connection pool for ``acomplete`` calls in the running event loop."""
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers=self.headers,
            connector=aiohttp.TCPConnector(limit=self.concurrency, ssl=_tls()),
        )

    async def shared_async_session(self) -> aiohttp.ClientSession:
        """This client's connection pool in the running event loop (made on first use, kept alive across calls,
        closed when the loop shuts its async generators down, as ``asyncio.run`` does at its end)."""
        loop = asyncio.get_running_loop()
        per_loop = _POOLS.get(loop)
        if per_loop is None:
            per_loop = _POOLS[loop] = {}
            keeper = _close_at_shutdown(per_loop)
            await keeper.__anext__()
            _KEEPERS[loop] = keeper
        pool = per_loop.get(self)
        if pool is None or pool.closed:
            pool = per_loop[self] = self.async_session()
        return pool

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
        problems: list[_FailedTry] = []
        end = None if self.deadline is None else time.monotonic() + self.deadline
        for attempt in range(self.retries + 1):
            timeout = self.timeout
            if attempt:
                delay = self._delay(attempt)
                if end is not None and time.monotonic() + delay >= end:
                    raise self._past_deadline(problems)
                time.sleep(delay)
            if end is not None:
                timeout = min(timeout, end - time.monotonic())
                if timeout <= 0:
                    raise self._past_deadline(problems)
            with self._try(attempt, problems):
                response = session.post(self.url, json=payload, timeout=timeout)
                return self._read(response.status_code, response.text, parse)
        raise self._gave_up(problems[-1])

    async def acomplete(
        self,
        payload: dict[str, Any],
        parse: Callable[[str], T] = _identity,
        session: aiohttp.ClientSession | None = None,
    ) -> T:
        """``complete`` in an event loop; each request waits for one of the loop's ``concurrency`` slots. Without a
        ``session``, the client's shared pool of this loop."""
        session = session or await self.shared_async_session()
        if self.deadline is None:
            return await self._acomplete(payload, parse, session)
        problems: list[_FailedTry] = []
        try:
            async with asyncio.timeout(self.deadline):
                return await self._acomplete(payload, parse, session, problems)
        except TimeoutError:
            raise self._past_deadline(problems) from None

    async def _acomplete(
        self,
        payload: dict[str, Any],
        parse: Callable[[str], T],
        session: aiohttp.ClientSession,
        problems: list[_FailedTry] | None = None,
    ) -> T:
        problems = [] if problems is None else problems
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt))
            with self._try(attempt, problems):
                async with self._bound(), session.post(self.url, json=payload) as response:
                    status, text = response.status, await response.text()
                return self._read(status, text, parse)
        raise self._gave_up(problems[-1])

    def _delay(self, attempt: int) -> float:
        return self.backoff * 2 ** (attempt - 1)

    def _bound(self) -> asyncio.Semaphore:
        per_loop = _BOUNDS.setdefault(asyncio.get_running_loop(), {})
        if self not in per_loop:
            per_loop[self] = asyncio.Semaphore(self.concurrency)
        return per_loop[self]

    def _read(self, status: int, text: str, parse: Callable[[str], T]) -> T:
        """The parsed reply of a finished request (its status and body); ``_FailedTry`` for what another try may fix,
        else ``ChatError``."""
        if self.router and status == 500 and text.strip() == ROUTER_WRAPPED_BODY:
            raise ChatError(
                f"HTTP 500 from verl's reward router at {self.url}: the judge server behind it answered an error (a "
                f"refused request, e.g. a prompt over its max_model_len, or a failure) or was unreachable; not retried",
                status,
                kind="router_error",
                permanent=True,
            )
        if status in RETRYABLE_STATUS:
            raise _FailedTry(f"HTTP {status}: {text[:200]}", f"http_{status}")
        if status != 200:
            raise ChatError(f"HTTP {status} from {self.url}: {text[:200]}", status)
        try:
            content = json.loads(text)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise _FailedTry(f"malformed chat completion: {text[:200]!r}", "malformed") from error
        if not isinstance(content, str):
            raise _FailedTry(f"chat completion without text content: {text[:200]!r}", "malformed")
        try:
            return parse(content)
        except ValueError as error:
            raise _FailedTry(f"unusable reply ({error})", "unusable") from error

    @contextmanager
    def _try(self, attempt: int, problems: list[_FailedTry]) -> Iterator[None]:
        """Around one try: a failure that another try may fix is logged and added to ``problems``."""
        try:
            yield
        except _FailedTry as failed:
            problems.append(failed)
        except (httpx.HTTPError, aiohttp.ClientError, TimeoutError) as failed:  # a timeout, a refused connection, ...
            why = str(failed) or f"no answer within timeout={self.timeout:g} s"
            problems.append(_FailedTry(f"{type(failed).__name__}: {why}", _transport_kind(failed)))
        else:
            return
        # INFO: a call that fails for good is the caller's to report (the judge reward: one line per kind and step)
        logger.info("chat completion try %d/%d at %s failed: %s", attempt + 1, self.retries + 1, self.url, problems[-1])

    def _gave_up(self, problem: _FailedTry) -> ChatError:
        return ChatError(f"gave up after {self.retries + 1} attempts on {self.url}; last: {problem}", kind=problem.kind)

    def _past_deadline(self, problems: list[_FailedTry]) -> ChatError:
        last = f"; last: {problems[-1]}" if problems else ""
        return ChatError(
            f"no answer from {self.url} within the call's deadline of {self.deadline:g} s "
            f"(tries and back-off included){last}",
            kind="deadline",
        )
