"""Tiny random ``Qwen2ForCausalLM`` models for tests and CPU smoke runs (never for real training)."""

from __future__ import annotations

import os
from pathlib import Path


def build_tiny_qwen2(
    tokenizer, seed: int = 0, hidden_size: int = 64, num_layers: int = 2, initializer_range: float = 0.5
):
    """A random Qwen2 causal LM sized to ``tokenizer``; a large initializer_range keeps its outputs far from uniform."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        initializer_range=initializer_range,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.eval()
    return model


def load_tiny_qwen2(tokenizer, cache_dir: str | os.PathLike, seed: int = 0, **kwargs):
    """Build (once) and reload a tiny model through ``AutoModelForCausalLM`` together with its tokenizer."""
    from transformers import AutoModelForCausalLM

    path = Path(cache_dir)
    if not (path / "config.json").exists():
        build_tiny_qwen2(tokenizer, seed=seed, **kwargs).save_pretrained(path)
        tokenizer.save_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype="float32")
    model.eval()
    return model
