"""Supervised warm start of a tiny model for CPU smoke runs (smoke runs and tests only).

A random tiny model never writes a well-formed answer, so every rule reward is 0 and group-relative methods have
nothing to learn from. A few seconds of fitting on well-formed responses fixes that. The prompt tokens are built by
verl's own Continuous Token builder, exactly as the agent loop builds them during rollout.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase
from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

__all__ = ["warm_start"]

_FINGERPRINT_FILE = "warm_start.json"
Example = tuple[list[dict[str, str]], str]


def warm_start(
    model_path_in: str | os.PathLike,
    out_dir: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    steps: int = 60,
    lr: float = 3e-3,
    seed: int = 0,
    batch_size: int | None = None,
) -> Path:
    """Fit ``model_path_in`` on ``examples`` (chat messages, response text); save model + tokenizer to ``out_dir``.

    AdamW for ``steps`` steps, each on the whole set (``batch_size`` None) or on ``batch_size`` examples drawn without
    replacement (seeded, a new draw per step); the loss is the mean negative log-likelihood of the response tokens (each
    response followed by the tokenizer's EOS token), prompt tokens are not trained. The result is cached: when
    ``out_dir`` already holds a model whose fingerprint (input weights and config, tokenizer vocabulary and chat
    template, examples, steps, lr, seed) matches, nothing is trained. Returns ``out_dir``.
    """
    if not examples:
        raise ValueError("warm_start needs at least one (messages, response_text) example")
    if steps < 1:
        raise ValueError(f"warm_start steps must be >= 1, got {steps}")
    if batch_size is not None and not 1 <= batch_size:
        raise ValueError(f"warm_start batch_size must be >= 1 or None, got {batch_size}")
    out_dir = Path(out_dir)
    fingerprint = _fingerprint(Path(model_path_in), tokenizer, examples, steps, lr, seed, batch_size)
    fingerprint_path = out_dir / _FINGERPRINT_FILE
    if fingerprint_path.exists() and json.loads(fingerprint_path.read_text()).get("fingerprint") == fingerprint:
        return out_dir

    model = AutoModelForCausalLM.from_pretrained(str(model_path_in), dtype=torch.float32)
    input_ids, labels, attention_mask = _supervised_batch(model.config.model_type, tokenizer, examples)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    draws = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        if batch_size is None or batch_size >= len(input_ids):
            loss = response_loss(model, input_ids, labels, attention_mask)
        else:
            rows = torch.randperm(len(input_ids), generator=draws)[:batch_size]
            loss = response_loss(model, input_ids[rows], labels[rows], attention_mask[rows])
        loss.backward()
        optimizer.step()
    model.eval()

    # Write next to out_dir, then swap in, so an interrupted run never leaves a half-written cache behind; the
    # fingerprint, written last, is what marks the folder complete.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / _FINGERPRINT_FILE).write_text(json.dumps({"fingerprint": fingerprint, "final_loss": loss.item()}))
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def response_loss(
    model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Mean negative log-likelihood of the labelled tokens: the loss ``model(..., labels=labels)`` computes, with the
    output layer applied only at the positions followed by a label. On a tiny model over a real vocabulary the output
    layer is most of the cost, and the prompt and padding positions (most of the batch) need no logits."""
    hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    targets = labels[:, 1:]
    scored = targets != -100
    logits = model.get_output_embeddings()(hidden[:, :-1][scored])
    return torch.nn.functional.cross_entropy(logits.float(), targets[scored])


def _supervised_batch(
    model_type: str, tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids``, ``labels`` (-100 on prompt and padding) and ``attention_mask``."""
    builder = create_continuous_token_builder(tokenizer, hf_model_type=model_type)
    sequences, label_rows = [], []
    for messages, response in examples:
        prompt_ids = builder.build_initial_tokens(list(messages))
        response_ids = tokenizer.encode(response, add_special_tokens=False) + [tokenizer.eos_token_id]
        sequences.append(prompt_ids + response_ids)
        label_rows.append([-100] * len(prompt_ids) + response_ids)
    width = max(len(ids) for ids in sequences)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids in sequences])
    labels = torch.tensor([row + [-100] * (width - len(row)) for row in label_rows])
    attention_mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in sequences])
    return input_ids, labels, attention_mask


def _fingerprint(
    model_path: Path,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    steps: int,
    lr: float,
    seed: int,
    batch_size: int | None = None,
) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in model_path.iterdir() if p.suffix in {".json", ".safetensors", ".bin"})
    if not any(p.suffix in {".safetensors", ".bin"} for p in files):
        raise FileNotFoundError(f"no model weights (*.safetensors / *.bin) in {str(model_path)!r}")
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update(json.dumps([len(tokenizer), tokenizer.chat_template, tokenizer.eos_token_id]).encode())
    digest.update(json.dumps([list(map(list, examples)), steps, lr, seed], sort_keys=True, default=str).encode())
    if batch_size is not None:  # full-batch fingerprints stay those of the caches written before batch_size existed
        digest.update(f"batch_size={batch_size}".encode())
    return digest.hexdigest()
