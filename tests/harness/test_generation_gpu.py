"""GPU: the hf judge backend (``harness.generation.TransformersBackend``) gives on CUDA the greedy texts and verdicts it
gives on CPU, for a tiny judge warm-started to write verdicts (docs/rm_r1.md#verdict-rules).

Greedy decoding is a chain of argmaxes, so two devices agree exactly only where no step is a near tie. The margin of
each request is computed on CPU (smallest gap between the top two logits over its greedy steps); a request is compared
when that gap exceeds ``MARGIN`` times the logit scale, far above the few fp32 roundoffs by which CPU and GPU kernels
differ. Both backends run in fp32 with TF32 off.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.generation import GenerationRequest, Sampling, TransformersBackend, chat_prompt_ids
from rm_r1.judge.prompts import build_judge_messages
from rm_r1.judge.verdicts import VERDICT_RULES, VERDICT_TAGS, parse_verdict

pytestmark = pytest.mark.gpu

MARGIN = 1e-3  # relative to max |logit|: about 8,000 fp32 roundoffs
MAX_NEW_TOKENS = 16
PAIRS = [
    ("What is 2 + 2?", "4", "5"),
    ("Name a primary colour.", "Red.", "Green is a primary colour of paint."),
    ("Say hello in French.", "Hola", "Bonjour"),
    ("Is the earth flat?", "Yes.", "No, it is round."),
    ("What is the capital of Japan?", "Tokyo", "Kyoto"),
    ("What is 2 * 3?", "8", "6"),
]
# The side the warm start teaches for each pair (the better reply's side, so both verdicts occur).
SIDES = ["A", "A", "B", "B", "A", "B"]


# A one-line instruct-family system prompt keeps the CPU warm start and forwards short; the built-in prompts are
# tested in test_prompts.py.
SHORT_PROMPT = "Say which reply is better, ending with {verdict_a} or {verdict_b}."


@pytest.fixture(scope="module")
def judge(small_tokenizer, tmp_path_factory) -> tuple[Path, list[GenerationRequest]]:
    """A tiny random Qwen2 judge fitted for a few CPU steps to end each request with a verdict tag, and the requests."""
    from cpu_backend.warm_start import warm_start
    from offline_models import load_tiny_qwen2

    root = tmp_path_factory.mktemp("judge")
    prompt_file = root / "prompt.txt"
    prompt_file.write_text(SHORT_PROMPT)
    requests = [
        GenerationRequest(build_judge_messages(q, a, b, family="instruct", prompt_file=prompt_file), seed=i)
        for i, (q, a, b) in enumerate(PAIRS)
    ]
    load_tiny_qwen2(small_tokenizer, root / "tiny")
    examples = [(r.messages, VERDICT_TAGS[side]) for r, side in zip(requests, SIDES)]
    return warm_start(root / "tiny", root / "judge", small_tokenizer, examples, steps=60, lr=1e-2), requests


@torch.no_grad()
def greedy_margins(model, tokenizer, requests: list[GenerationRequest], max_new_tokens: int) -> list[float]:
    """Per request: min over greedy steps of (top-1 − top-2 logit) / max |logit|, one unpadded request at a time."""
    margins = []
    for request in requests:
        ids = torch.tensor([chat_prompt_ids(tokenizer, request.messages)])
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            output_scores=True,
            return_dict_in_generate=True,
        )
        scores = torch.cat(out.scores).float()  # (steps, vocab): the processed logits of each greedy step
        top2 = scores.topk(2, dim=-1).values
        margins.append(float(((top2[:, 0] - top2[:, 1]) / scores.abs().amax(dim=-1)).min()))
    return margins


def _texts(backend: TransformersBackend, requests: list[GenerationRequest]) -> list[str]:
    completions = sorted(backend.generate(requests, Sampling(max_new_tokens=MAX_NEW_TOKENS)), key=lambda c: c.index)
    assert [c.index for c in completions] == list(range(len(requests)))
    assert all(c.text is not None for c in completions), [c.error for c in completions]
    return [c.text for c in completions]


@pytest.fixture
def no_tf32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_hf_backend_on_gpu_matches_cpu(judge, no_tf32):
    judge_dir, requests = judge
    cpu = TransformersBackend(str(judge_dir), batch_size=4, device="cpu", dtype="float32")
    margins = greedy_margins(cpu.model, cpu.tokenizer, requests, MAX_NEW_TOKENS)
    clear = [i for i, m in enumerate(margins) if m > MARGIN]
    assert len(clear) >= len(requests) // 2, margins
    cpu_texts = _texts(cpu, requests)
    assert any(parse_verdict(cpu_texts[i], "anywhere") is not None for i in clear), cpu_texts

    gpu = TransformersBackend(str(judge_dir), batch_size=4, device="cuda", dtype="float32")
    assert next(gpu.model.parameters()).device.type == "cuda"
    gpu_texts = _texts(gpu, requests)
    for i in clear:
        assert gpu_texts[i] == cpu_texts[i], (i, margins[i])
        for rule in VERDICT_RULES:
            assert parse_verdict(gpu_texts[i], rule) == parse_verdict(cpu_texts[i], rule)
