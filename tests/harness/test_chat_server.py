"""harness.chat_server: the small OpenAI-compatible chat server (in-process here; the smoke test runs the command)."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

import httpx
import pytest
import torch

from harness.chat_server import ChatModel, make_handler

MESSAGES = [{"role": "system", "content": "Judge."}, {"role": "user", "content": "Which reply is better?"}]


@pytest.fixture(scope="module")
def served(small_tokenizer, tmp_path_factory):
    from offline_models import load_tiny_qwen2

    path = tmp_path_factory.mktemp("judge")
    load_tiny_qwen2(small_tokenizer, path)
    model = ChatModel(str(path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(model))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield model, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _chat(url: str, **body) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES, **body}, timeout=60)


def test_greedy_completion_is_the_models_own_greedy_text(served, small_tokenizer):
    model, url = served
    response = _chat(url, temperature=0, max_tokens=6)
    assert response.status_code == 200
    body = response.json()
    ids = small_tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True, return_dict=False)
    prompt = torch.tensor([list(ids)])
    with torch.no_grad():
        out = model.model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=6,
            do_sample=False,
            pad_token_id=small_tokenizer.pad_token_id,
        )
    expected = small_tokenizer.decode(out[0, prompt.shape[1] :], skip_special_tokens=True)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": expected}
    assert body["usage"]["prompt_tokens"] == prompt.shape[1] and body["usage"]["completion_tokens"] <= 6


def test_sampling_repeats_with_its_seed(served):
    _, url = served
    texts = [
        _chat(url, temperature=1.0, max_tokens=8, seed=s).json()["choices"][0]["message"]["content"]
        for s in (1, 1, 2, 3)
    ]
    assert texts[0] == texts[1] and len(set(texts)) > 1


@pytest.mark.parametrize(
    ("body", "message"),
    [({"messages": []}, "messages"), ({"temperature": -1}, "temperature"), ({"max_tokens": "8"}, "max_tokens")],
)
def test_bad_requests_are_refused_with_400(served, body, message):
    _, url = served
    response = _chat(url, **body)
    assert response.status_code == 400 and message in response.json()["error"]["message"]


def test_routes(served):
    model, url = served
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{url}/v1/models").json()["data"][0]["id"] == model.name
    assert httpx.post(f"{url}/v1/completions", json={}).status_code == 404
    assert httpx.post(f"{url}/v1/chat/completions", content=b"not json").status_code == 400
