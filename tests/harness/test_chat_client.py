"""harness.chat_client: the one OpenAI-compatible chat client, blocking and async, against a fake server on
127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from harness import chat_client
from harness.chat_client import ChatClient, ChatError, chat_url

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}]


def call(client: ChatClient, how: str, payload: dict, **kwargs):
    """``client.complete`` or, in a fresh event loop, ``client.acomplete``."""
    if how == "sync":
        return client.complete(payload, **kwargs)
    return asyncio.run(client.acomplete(payload, **kwargs))


def replies(*answers):
    """A fake server answer giving ``answers`` in turn (then the last one again)."""
    given = []
    lock = threading.Lock()

    def answer(body):
        with lock:
            given.append(body)
            return answers[min(len(given), len(answers)) - 1]

    return answer


@pytest.fixture
def no_sleep(monkeypatch):
    """Records the back-off waits instead of sleeping them."""
    waits: list[float] = []

    async def asleep(seconds):
        waits.append(seconds)

    monkeypatch.setattr(chat_client.time, "sleep", waits.append)
    monkeypatch.setattr(chat_client.asyncio, "sleep", asleep)
    return waits


HOW = pytest.mark.parametrize("how", ["sync", "async"])


@HOW
def test_a_busy_server_is_retried_with_doubling_waits_then_answers(openai_server, no_sleep, how):
    server = openai_server(replies(503, 429, 500, "4"))
    client = ChatClient(server.base_url + "/", "judge-7b", api_key="sk-test", retries=3, backoff=0.5)
    payload = client.payload(MESSAGES, max_tokens=16)
    assert call(client, how, payload) == "4"
    assert len(server.bodies) == 4 and no_sleep == [0.5, 1.0, 2.0]  # backoff * 2**(n - 1) before the n-th retry
    assert server.paths == ["/v1/chat/completions"] * 4
    assert server.bodies[0] == {"model": "judge-7b", "messages": MESSAGES, "temperature": 0.0, "max_tokens": 16}
    assert {h["Authorization"] for h in server.headers} == {"Bearer sk-test"}


@HOW
def test_sampling_fields_are_sent_when_given(openai_server, how):
    server = openai_server(replies("ok"))
    client = ChatClient(server.base_url, "m")
    assert call(client, how, client.payload(MESSAGES, 8, temperature=0.7, top_p=0.9, seed=11)) == "ok"
    body = server.bodies[0]
    assert (body["temperature"], body["top_p"], body["seed"], body["max_tokens"]) == (0.7, 0.9, 11, 8)
    assert "Authorization" not in server.headers[0]


@HOW
@pytest.mark.parametrize(("status", "permanent"), [(400, True), (422, True), (403, False), (404, False)])
def test_a_status_no_try_can_fix_fails_at_once(openai_server, how, status, permanent):
    server = openai_server(replies(status))
    client = ChatClient(server.base_url, "m", retries=3, backoff=0.0)
    with pytest.raises(ChatError) as error:
        call(client, how, client.payload(MESSAGES, 8))
    assert len(server.bodies) == 1
    assert str(error.value).startswith(f"HTTP {status} from {server.base_url}/chat/completions: ")
    assert error.value.status == status and error.value.permanent is permanent


@HOW
@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (b"<html>oops</html>", "malformed chat completion: '<html>oops</html>'"),
        (json.dumps({"choices": []}).encode(), "malformed chat completion"),
        (json.dumps({"choices": [{"message": {"content": None}}]}).encode(), "chat completion without text content"),
    ],
)
def test_a_malformed_reply_is_retried_then_named(openai_server, no_sleep, how, reply, problem):
    server = openai_server(replies(reply))
    client = ChatClient(server.base_url, "m", retries=2, backoff=0.0)
    with pytest.raises(ChatError) as error:
        call(client, how, client.payload(MESSAGES, 8))
    assert len(server.bodies) == 3
    url = f"{server.base_url}/chat/completions"
    assert str(error.value).startswith(f"gave up after 3 attempts on {url}; last: {problem}")
    assert error.value.status is None and not error.value.permanent


@HOW
def test_parse_rejects_a_reply_with_value_error_and_it_is_retried(openai_server, no_sleep, how):
    server = openai_server(replies("maybe", "7"))
    client = ChatClient(server.base_url, "m", retries=1, backoff=0.0)
    assert call(client, how, client.payload(MESSAGES, 8), parse=int) == 7
    assert len(server.bodies) == 2
    server = openai_server(replies("maybe"))
    client = ChatClient(server.base_url, "m", retries=1, backoff=0.0)
    with pytest.raises(ChatError, match=r"last: unusable reply \(invalid literal for int"):
        call(client, how, client.payload(MESSAGES, 8), parse=int)


@HOW
def test_an_unreachable_endpoint_and_a_timeout_are_failed_tries(openai_server, how):
    client = ChatClient("http://127.0.0.1:9/v1", "m", retries=1, backoff=0.0)
    with pytest.raises(
        ChatError, match="gave up after 2 attempts on http://127.0.0.1:9/v1/chat/completions; last: (Client)?Conn"
    ) as error:
        call(client, how, client.payload(MESSAGES, 8))
    assert error.value.kind == "connection" and not error.value.permanent

    def slow(body):
        time.sleep(0.5)
        return "late"

    server = openai_server(slow)
    client = ChatClient(server.base_url, "m", retries=0, timeout=0.1)
    with pytest.raises(ChatError, match="gave up after 1 attempts .*; last: (ReadTimeout|TimeoutError)") as error:
        call(client, how, client.payload(MESSAGES, 8))
    assert error.value.kind == "timeout"


def test_async_requests_in_flight_are_bounded_per_client(openai_server):
    def answer(body):
        time.sleep(0.05)
        return "ok"

    server = openai_server(answer)

    async def many():
        # equal clients share one bound in a loop
        clients = [ChatClient(server.base_url, "m", concurrency=2) for _ in range(6)]
        return await asyncio.gather(*(c.acomplete(c.payload(MESSAGES, 8)) for c in clients))

    assert asyncio.run(many()) == ["ok"] * 6
    assert server.peak == 2


def test_one_session_serves_many_calls(openai_server):
    server = openai_server(replies("a", "b"))
    client = ChatClient(server.base_url, "m", api_key="k")
    with client.session() as session:
        assert [client.complete(client.payload(MESSAGES, 8), session=session) for _ in range(2)] == ["a", "b"]
    assert [h["Authorization"] for h in server.headers] == ["Bearer k"] * 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": "localhost:8000/v1"}, "base_url must be an http"),
        ({"model": ""}, "model must be a non-empty str"),
        ({"concurrency": 0}, "concurrency must be a positive int"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"retries": -1}, "retries must be a non-negative int"),
        ({"backoff": -1.0}, "backoff must be >= 0"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ChatClient(**{"base_url": "http://127.0.0.1:1/v1", "model": "m", **kwargs})


def test_chat_url_joins_the_api_root():
    assert chat_url("http://h:8000/v1") == chat_url("http://h:8000/v1/") == "http://h:8000/v1/chat/completions"
    assert "sk-secret" not in repr(ChatClient("http://h/v1", "m", api_key="sk-secret"))


@HOW
def test_failures_name_their_kind(openai_server, no_sleep, how):
    cases = [(503, "http_503"), (404, "http_404"), (b"<html>", "malformed"), ((502, b"bad gateway"), "http_502")]
    for answer, kind in cases:
        client = ChatClient(openai_server(lambda body, answer=answer: answer).base_url, "m", retries=1)
        with pytest.raises(ChatError) as error:
            call(client, how, client.payload(MESSAGES, 8))
        assert error.value.kind == kind, answer


@HOW
def test_verls_router_wrapping_an_error_is_not_tried_again(openai_server, how):
    # verl's router (FastAPI) answers a bare "500 Internal Server Error" when the judge server behind it refused the
    # request: sent once, permanent, kind router_error; the same answer from a server that is not the router is retried
    server = openai_server(lambda body: (500, b"Internal Server Error"))
    client = ChatClient(server.base_url, "m", retries=3, backoff=0.0, router=True)
    with pytest.raises(ChatError, match="verl's reward router") as error:
        call(client, how, client.payload(MESSAGES, 8))
    assert (len(server.bodies), error.value.kind, error.value.permanent) == (1, "router_error", True)
    plain = ChatClient(server.base_url, "m", retries=3, backoff=0.0)
    with pytest.raises(ChatError) as error:
        call(plain, how, plain.payload(MESSAGES, 8))
    assert len(server.bodies) == 1 + 4 and error.value.kind == "http_500"


@HOW
def test_the_deadline_bounds_the_whole_call_tries_and_back_off_included(openai_server, how):
    def slow(body):
        time.sleep(0.4)
        return 503

    server = openai_server(slow)
    # without a deadline: 4 tries of 0.4 s plus 0.2 + 0.4 + 0.8 s of back-off = 3 s; the deadline stops it at 1 s
    client = ChatClient(server.base_url, "m", retries=3, backoff=0.2, timeout=5.0, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(ChatError, match="within the call's deadline of 1 s") as error:
        call(client, how, client.payload(MESSAGES, 8))
    assert error.value.kind == "deadline" and time.monotonic() - started < 1.5
    assert 1 <= len(server.bodies) <= 2


def test_one_pool_per_loop_keeps_connections_alive(openai_server):
    server = openai_server(lambda body: "ok")
    client = ChatClient(server.base_url, "m", concurrency=2)

    async def many():
        for _ in range(3):  # three waves of 4 calls, 2 in flight at most
            await asyncio.gather(*(client.acomplete(client.payload(MESSAGES, 8)) for _ in range(4)))

    asyncio.run(many())
    assert len(server.bodies) == 12 and len(set(server.ports)) <= 2  # before: a pool (a connection) per call
