"""The vLLM backend without vLLM: a stand-in ``vllm`` module checks what the backend hands the engine; and the
evaluation modules never import vllm themselves."""

from __future__ import annotations

import subprocess
import sys
import types
from types import SimpleNamespace

from harness.generation import GenerationRequest, Sampling, VLLMBackend


class FakeLLM:
    """Records the engine calls; answers each prompt with the number of its prompt tokens."""

    def __init__(self, tokenizer, **kwargs):
        self.kwargs = kwargs
        self.tokenizer = tokenizer
        self.calls = []

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append((prompts, params))
        texts = [f"{len(p['prompt_token_ids'])} tokens" for p in prompts]
        return [SimpleNamespace(outputs=[SimpleNamespace(text=text, finish_reason="stop")]) for text in texts]


def test_vllm_backend_token_ids_seeds_and_chunks(small_tokenizer, monkeypatch):
    fake = types.ModuleType("vllm")
    made = []

    def llm(**kwargs):
        made.append(FakeLLM(small_tokenizer, **kwargs))
        return made[-1]

    fake.LLM = llm
    fake.SamplingParams = lambda **kwargs: kwargs
    monkeypatch.setitem(sys.modules, "vllm", fake)

    backend = VLLMBackend("/models/judge", tensor_parallel_size=4, gpu_memory_utilization=0.5, chunk_size=2)
    engine = made[0]
    assert engine.kwargs == {
        "model": "/models/judge",
        "tensor_parallel_size": 4,
        "gpu_memory_utilization": 0.5,
        "max_model_len": None,
    }
    requests = [GenerationRequest([{"role": "user", "content": "word " * n}], seed=100 + n) for n in (1, 5, 9)]
    completions = list(backend.generate(requests, Sampling(temperature=0.5, top_p=0.9, max_new_tokens=64)))

    assert [len(prompts) for prompts, _ in engine.calls] == [2, 1]
    for request, completion in zip(requests, completions):
        text = small_tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
        assert completion.text == f"{len(small_tokenizer(text)['input_ids'])} tokens"
    first_prompts, first_params = engine.calls[0]
    header = small_tokenizer.encode("<|im_start|>assistant\n")
    assert first_prompts[0]["prompt_token_ids"][-len(header) :] == header
    assert [p["seed"] for _, params in engine.calls for p in params] == [101, 105, 109]
    assert first_params[0] == {"temperature": 0.5, "top_p": 0.9, "max_tokens": 64, "seed": 101}
    greedy = list(backend.generate(requests[:1], Sampling()))
    assert greedy[0].index == 0 and engine.calls[-1][1][0]["seed"] is None


def test_evaluation_modules_do_not_import_vllm():
    code = (
        "import sys, rm_r1.evaluate, harness.generation, rm_r1.evaluation.scaling, rm_r1.judge.pointwise\n"
        "import rm_r1.evaluation.benchmarks, rm_r1.evaluation.scorers\n"
        "assert 'vllm' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
