"""Tiny random ``Qwen2ForCausalLM`` models for tests and CPU smoke runs (never for real training)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedModel

MODEL_FILES = ("config.json", "model.safetensors", "tokenizer_config.json")
# The smallest tiny model vLLM's CPU attention runs (head size 32: vllm/v1/attention/backends/cpu_attn.py:64-66 lists
# 32, 64, 80 and up): hidden 64 over 2 query heads and 1 key/value head.
VLLM_TINY_MODEL = {"hidden_size": 64, "num_heads": 2, "num_kv_heads": 1}
"""What a complete model folder (model and tokenizer, as ``save_pretrained`` writes them) holds."""


def build_folder_atomically(
    target: str | os.PathLike, build: Callable[[Path], None], required: tuple[str, ...]
) -> Path:
    """Return ``target``, first building it with ``build(folder)`` unless it already holds every ``required`` file.

    ``build`` writes into a temporary folder next to ``target`` that is renamed to ``target`` only when complete, so a
    kill never leaves a half-written ``target``. A ``target`` missing some required file (left by an older, non-atomic
    writer) is deleted and rebuilt.
    """
    target = Path(target)
    if all((target / name).exists() for name in required):
        return target
    if target.exists():
        print(f"rebuilding incomplete {target} (missing some of {list(required)})")
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(staging)
        missing = [name for name in required if not (staging / name).exists()]
        if missing:
            raise RuntimeError(f"building {target} wrote no {missing}")
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def build_tiny_qwen2(
    tokenizer: Any,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    initializer_range: float = 0.5,
    num_heads: int = 4,
    num_kv_heads: int = 2,
) -> PreTrainedModel:
    """A random Qwen2 causal LM sized to ``tokenizer``; a large initializer_range keeps its outputs far from uniform.

    The head size is ``hidden_size / num_heads`` (16 by default; vLLM's CPU attention needs at least 32:
    ``VLLM_TINY_MODEL``)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
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


def save_tiny_qwen2(tokenizer: Any, folder: str | os.PathLike, seed: int = 0, **kwargs: Any) -> None:
    """Save a tiny model (``build_tiny_qwen2``) and ``tokenizer`` into ``folder``."""
    build_tiny_qwen2(tokenizer, seed=seed, **kwargs).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def load_tiny_qwen2(tokenizer: Any, cache_dir: str | os.PathLike, seed: int = 0, **kwargs: Any) -> PreTrainedModel:
    """Build (once) and reload a tiny model through ``AutoModelForCausalLM`` together with its tokenizer."""
    from transformers import AutoModelForCausalLM

    path = build_folder_atomically(
        cache_dir, lambda folder: save_tiny_qwen2(tokenizer, folder, seed, **kwargs), MODEL_FILES
    )
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype="float32")
    model.eval()
    return model
