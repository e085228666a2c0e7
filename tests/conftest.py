"""Shared fixtures: the real Qwen2.5 tokenizer rebuilt offline, a cut-vocabulary variant, and a tiny random model."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def qwen_tokenizer():
    """The full Qwen2.5 tokenizer (151,643 BPE ranks + 22 added tokens), loaded through AutoTokenizer."""
    from offline_models import load_qwen25_tokenizer

    return load_qwen25_tokenizer()


@pytest.fixture(scope="session")
def small_tokenizer():
    """Qwen2.5's tokenizer cut to its first 8,192 ranks (added tokens right after): same rules, small vocabulary."""
    from offline_models import SMALL_VOCAB, load_qwen25_tokenizer

    return load_qwen25_tokenizer(SMALL_VOCAB)


@pytest.fixture(scope="session")
def tiny_model(small_tokenizer, tmp_path_factory):
    """A random 2-layer Qwen2ForCausalLM over the small tokenizer, saved and reloaded via AutoModelForCausalLM."""
    from offline_models import load_tiny_qwen2

    return load_tiny_qwen2(small_tokenizer, tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture
def restore_threads():
    """The smoke commands set torch to one thread (right for a tiny model on 2 cores); restore it afterwards."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


CHAT_PATH = "/v1/chat/completions"


class FakeOpenAI:
    """A local OpenAI-compatible chat server on 127.0.0.1 whose answers the test decides.

    ``answer(body)`` gets each request's JSON body and returns the reply text (sent as a chat completion, status 200),
    an int (that HTTP status, without a completion), bytes (a raw 200 body, e.g. a malformed reply) or a (status,
    bytes) pair (a raw body with that status). A request to another path than ``CHAT_PATH`` gets 404. The server
    records each request's body, headers, path and client port (``ports``: one per connection), the most requests in
    flight at once (``peak``), and what an ``answer`` raised (``errors``; it then replies 500).
    """

    def __init__(self, answer):
        self.answer = answer
        self.bodies, self.headers, self.paths, self.errors, self.ports = [], [], [], [], []
        self.active = self.peak = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real server; no Nagle delay between header and body
            disable_nagle_algorithm = True

            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.bodies.append(body)
                    fake.headers.append(dict(self.headers))
                    fake.paths.append(self.path)
                    fake.ports.append(self.client_address[1])
                    fake.active += 1
                    fake.peak = max(fake.peak, fake.active)
                try:
                    answer = fake.answer(body) if self.path == CHAT_PATH else 404
                except Exception as error:  # reported by the fixture; the client sees a server error
                    fake.errors.append(error)
                    answer = 500
                finally:
                    with fake.lock:
                        fake.active -= 1
                if isinstance(answer, str):
                    message = {"role": "assistant", "content": answer}
                    status, data = 200, json.dumps({"choices": [{"message": message}]}).encode()
                elif isinstance(answer, bytes):
                    status, data = 200, answer
                elif isinstance(answer, tuple):
                    status, data = answer
                else:
                    status, data = answer, json.dumps({"error": f"status {answer}"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # a client that timed out and hung up
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.base_url = f"http://{self.address}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=5)


@pytest.fixture
def openai_server():
    """``openai_server(answer)`` starts a ``FakeOpenAI`` (usable in a ``with`` block); all are shut down after the
    test, which fails if an ``answer`` raised."""
    started = []

    def start(answer):
        started.append(FakeOpenAI(answer))
        return started[-1]

    yield start
    for server in started:
        server.close()
    errors = [error for server in started for error in server.errors]
    if errors:
        pytest.fail(f"a fake OpenAI server's answer raised {len(errors)} times, first: {errors[0]!r}")


@pytest.fixture
def launcher_tools(tmp_path):
    """A stand-in python that records what a launcher starts, a folder for stand-in tools and an empty HOME
    (tests/helpers/launchers.py)."""
    from tests.helpers.launchers import make_launcher_tools

    return make_launcher_tools(tmp_path)
