"""``python -m harness.chat_server --model PATH`` (users run it as ``python -m rm_r1.serve_judge``): a small
OpenAI-compatible chat server running a transformers model.

For CPU smoke runs and tests of the judge-as-reward loop (``rm_r1.as_reward.reward``), a stand-in for verl's router in
front of vLLM servers; real runs use verl's served judge or ``vllm serve``. Standard library only (``http.server``
with a thread per connection); one generation at a time, under a lock.

* ``POST /v1/chat/completions``: ``messages``, ``temperature`` (0 = greedy), ``top_p``, ``max_tokens``, ``seed``;
  answers ``{"choices": [{"message": {"role": "assistant", "content": ...}, "finish_reason": ...}], "usage": ...}``.
* ``GET /v1/models`` and ``GET /health``.

Binds ``--host`` (default 127.0.0.1) on ``--port`` (default 0: a free port) and prints one line,
``serving <model> at http://HOST:PORT/v1``, once it accepts requests; Ctrl-C or SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_MAX_TOKENS = 256


class ChatModel:
    """A transformers causal LM with its tokenizer's chat template: messages in, text out."""

    def __init__(self, path: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = path
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.lock = threading.Lock()

    def complete(
        self, messages: list[dict[str, str]], temperature: float, top_p: float, max_tokens: int, seed: int
    ) -> tuple[str, str, int, int]:
        """(text, finish_reason, prompt tokens, completion tokens)."""
        import torch

        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        prompt = torch.tensor([list(ids)])
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
        )
        with self.lock, torch.no_grad():
            torch.manual_seed(seed)
            out = self.model.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=max_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                top_k=0,
                **sampling,
            )
        new = out[0, prompt.shape[1] :].tolist()
        stopped = bool(new) and new[-1] == self.tokenizer.eos_token_id
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return text, "stop" if stopped else "length", prompt.shape[1], len(new)


def _request_error(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages
        )
    ):
        return "messages must be a non-empty list of {role: str, content: str}"
    for key in ("temperature", "top_p"):
        if not isinstance(body.get(key, 0), int | float) or body.get(key, 0) < 0:
            return f"{key} must be a number >= 0"
    for key in ("max_tokens", "seed"):
        if not isinstance(body.get(key, 0), int) or body.get(key, 0) < 0:
            return f"{key} must be an integer >= 0"
    return None


def make_handler(model: ChatModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == "/health":
                self._send(200, {"status": "ok"})
            elif self.path == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": model.name, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, {"error": {"message": "the body is not JSON"}})
                return
            problem = _request_error(body)
            if problem:
                self._send(400, {"error": {"message": problem}})
                return
            text, finish, prompt_tokens, completion_tokens = model.complete(
                body["messages"],
                float(body.get("temperature", 1.0)),
                float(body.get("top_p", 1.0)),
                int(body.get("max_tokens", DEFAULT_MAX_TOKENS)),
                int(body.get("seed", 0)),
            )
            self._send(
                200,
                {
                    "object": "chat.completion",
                    "model": model.name,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                },
            )

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
            pass  # one line per request would drown the training log

    return Handler


def main(argv: list[str] | None = None, prog: str = "python -m harness.chat_server") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a local Hugging Face folder (model and tokenizer)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port (default: 0, a free one)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(ChatModel(args.model)))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    host, port = server.server_address[:2]
    print(f"serving {args.model} at http://{host}:{port}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
