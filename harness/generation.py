"""Generation backends of both evaluations (``rlpr.evaluate``, ``rm_r1.evaluate``): chat messages in, texts out.

* ``TransformersBackend``: a local checkpoint through ``transformers`` (CPU or GPU), batched greedy/sampled decoding.
* ``OpenAIBackend``: any OpenAI-compatible server (vLLM's ``vllm serve``, SGLang, a hosted API) through
  ``harness.chat_client.ChatClient`` (its retries, back-off and timeouts) from a thread pool.
* ``VLLMBackend``: vLLM's offline engine on GPU; ``vllm`` is imported only when this backend is built.

``generate`` yields a ``Completion`` per request as soon as it is ready (any order, each exactly once), so callers
can store results as they arrive. A request that failed for good yields ``text=None`` and the error, with
``permanent=True`` when the request itself was refused
(``harness.chat_client.REQUEST_ERROR_STATUS``) and resending it cannot help. ``request_seed`` derives the per-request
seeds that make a sampled run repeat exactly, however it is batched or resumed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Protocol

from harness.chat_client import ChatClient, ChatError

BACKENDS = ("hf", "openai", "vllm")


OFFICIAL_MAX_NEW_TOKENS = 50_000
"""The generation budget of RM-R1's official evaluation (its one-command script passes ``max_tokens=50000`` to vLLM
for every benchmark and both families). vLLM stops a generation at the model's context length first: 32,768 tokens
for the Qwen2.5-Instruct judges, so their budget is the context left after the prompt; the DeepSeek-R1-Distill
judges (131,072) get all 50,000."""


@dataclass(frozen=True)
class Sampling:
    """Decoding settings shared by all backends; temperature 0 means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = OFFICIAL_MAX_NEW_TOKENS


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: chat messages and the seed of its sampling (used when temperature > 0)."""

    messages: list[dict[str, str]]
    seed: int = 0


@dataclass(frozen=True)
class Completion:
    """The result of ``requests[index]``: the generated text, or None and the reason it failed (``permanent``: the
    request itself was refused, so retrying it is pointless). ``truncated``: the generation stopped at its token
    budget (or the model's context) instead of ending; None where the backend does not report it (openai)."""

    index: int
    text: str | None
    error: str | None = None
    permanent: bool = False
    truncated: bool | None = None


class GenerationBackend(Protocol):
    def generate(self, requests: Sequence[GenerationRequest], sampling: Sampling) -> Iterator[Completion]: ...


def request_seed(*parts: object) -> int:
    """A 31-bit seed derived from ``parts`` (stable across processes, unlike ``hash``)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def pad_token_id(tokenizer: Any) -> int:
    """The id rows are padded with: the tokenizer's pad token, or its eos token when it has none."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def chat_prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of ``messages`` under the tokenizer's chat template, with the assistant generation prompt.

    The template text is tokenized without adding special tokens, so a template that writes its own BOS gets one.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


EOS_SOURCES = ("tokenizer", "model")


class TransformersBackend:
    """Greedy or sampled generation with ``AutoModelForCausalLM`` in left-padded batches of ``batch_size``.

    Sampling seeds torch with the first request's seed of each batch, so sampled outputs repeat for the same batching.
    ``eos``: where generation stops, at the tokenizer's end token (``tokenizer``, the judge evaluation) or at the end
    tokens of the model's generation config (``model``, transformers' own default: RLPR's evaluation; e.g. an instruct
    Qwen2.5 also stops at ``<|endoftext|>`` there).
    """

    def __init__(
        self,
        model_path: str,
        batch_size: int = 4,
        device: str | None = None,
        dtype: str = "auto",
        eos: str = "tokenizer",
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if eos not in EOS_SOURCES:
            raise ValueError(f"eos must be one of {EOS_SOURCES}, got {eos!r}")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(self.device).eval()
        self.batch_size = batch_size
        self.eos = eos

    def _end_ids(self) -> tuple[dict[str, Any], list[int]]:
        """The ``generate`` keyword that sets the end tokens ({} under ``eos="model"``) and the ids that end a reply."""
        if self.eos == "tokenizer":
            eos = self.tokenizer.eos_token_id
            return {"eos_token_id": eos}, [] if eos is None else [eos]
        ids = self.model.generation_config.eos_token_id
        return {}, [] if ids is None else [ids] if isinstance(ids, int) else list(ids)

    def generate(self, requests: Sequence[GenerationRequest], sampling: Sampling) -> Iterator[Completion]:
        import torch

        pad = pad_token_id(self.tokenizer)
        end_option, end_ids = self._end_ids()
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start : start + self.batch_size]
            prompts = [chat_prompt_ids(self.tokenizer, r.messages) for r in batch]
            width = max(map(len, prompts))
            input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
            attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
            options: dict[str, Any] = {"do_sample": False}
            if sampling.temperature > 0:
                torch.manual_seed(batch[0].seed)
                options = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
            with torch.no_grad():
                output = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    max_new_tokens=sampling.max_new_tokens,
                    pad_token_id=pad,
                    **end_option,
                    **options,
                )
            for offset, row in enumerate(output[:, width:]):
                ended = any(bool((row == eos).any()) for eos in end_ids)
                text = self.tokenizer.decode(row, skip_special_tokens=True)
                yield Completion(start + offset, text, truncated=not ended and len(row) >= sampling.max_new_tokens)


class BackendError(RuntimeError):
    """A request that failed after every retry (or with a status that retrying cannot fix); ``permanent`` when the
    server refused the request itself (``harness.chat_client.REQUEST_ERROR_STATUS``)."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible server.

    ``base_url`` includes the API prefix (``http://host:8000/v1``). Up to ``concurrency`` requests are in flight; each
    is retried ``retries`` times as ``harness.chat_client`` says, waiting ``backoff * 2**attempt`` seconds
    in between.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        concurrency: int = 16,
        retries: int = 3,
        timeout: float = 600.0,
        backoff: float = 1.0,
    ):
        self.client = ChatClient(base_url, model, api_key, timeout, retries, backoff, concurrency)

    def generate(self, requests: Sequence[GenerationRequest], sampling: Sampling) -> Iterator[Completion]:
        client = self.client

        def complete(session: Any, request: GenerationRequest) -> str:
            payload = client.payload(
                request.messages, sampling.max_new_tokens, sampling.temperature, sampling.top_p, request.seed
            )
            return client.complete(payload, session=session)

        with client.session() as session:
            pool = ThreadPoolExecutor(max_workers=client.concurrency)
            try:
                futures = {pool.submit(complete, session, r): i for i, r in enumerate(requests)}
                for future in as_completed(futures):
                    try:
                        yield Completion(futures[future], future.result())
                    except ChatError as error:
                        yield Completion(futures[future], None, str(error), error.permanent)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)


class VLLMBackend:
    """vLLM's offline engine (GPU). Prompts are token ids from the tokenizer's chat template, like the hf backend;
    each request gets its own seed. Requests go to the engine in chunks of ``chunk_size`` so results stream out.
    ``seed``: the engine's own seed (vLLM's default when None)."""

    def __init__(
        self,
        model_path: str,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        chunk_size: int = 512,
        seed: int | None = None,
    ):
        from vllm import LLM  # GPU-only dependency: imported when this backend is built, never at module import

        self.llm = LLM(
            model=model_path,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            **({} if seed is None else {"seed": seed}),
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.chunk_size = chunk_size

    def generate(self, requests: Sequence[GenerationRequest], sampling: Sampling) -> Iterator[Completion]:
        from vllm import SamplingParams

        for start in range(0, len(requests), self.chunk_size):
            chunk = requests[start : start + self.chunk_size]
            prompts = [{"prompt_token_ids": chat_prompt_ids(self.tokenizer, r.messages)} for r in chunk]
            params = [
                SamplingParams(
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    max_tokens=sampling.max_new_tokens,
                    seed=r.seed if sampling.temperature > 0 else None,
                )
                for r in chunk
            ]
            for offset, output in enumerate(self.llm.generate(prompts, params, use_tqdm=False)):
                first = output.outputs[0]
                yield Completion(start + offset, first.text, truncated=first.finish_reason == "length")
