"""Turning token id lists into a rollout ``DataProto`` in verl's layout (prompts left-padded, responses right-padded).

For the single-example helpers, the ``rlpr.score`` command, tests and benchmarks; during training the rollout comes
from verl's rollout manager in this same layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def pad_token_id(tokenizer) -> int:
    """The id rows are padded with: the tokenizer's pad token, or its eos token when it has none."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def make_rollout(
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    references: Sequence[str],
    uids: Sequence[str],
    pad_token_id: int,
    data_sources: Sequence[str] | None = None,
):
    """A rollout ``DataProto`` with ``prompts``, ``responses``, ``input_ids``, ``attention_mask``, ``position_ids``,
    ``response_mask`` and non-tensors ``reward_model`` ({"ground_truth": ...}), ``uid`` and ``data_source``."""
    from verl import DataProto

    n = len(prompt_ids)
    if not (len(response_ids) == len(references) == len(uids) == n):
        raise ValueError(
            f"prompt_ids ({n}), response_ids ({len(response_ids)}), references ({len(references)}) and uids "
            f"({len(uids)}) must have the same length"
        )
    if any(len(p) == 0 for p in prompt_ids):
        raise ValueError(f"empty prompt at rows {[i for i, p in enumerate(prompt_ids) if len(p) == 0]}")
    p_len = max(len(p) for p in prompt_ids)
    r_len = max([len(r) for r in response_ids] + [0])
    prompts = torch.full((n, p_len), pad_token_id, dtype=torch.long)
    responses = torch.full((n, r_len), pad_token_id, dtype=torch.long)
    attn = torch.zeros(n, p_len + r_len, dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompt_ids, response_ids)):
        prompts[i, p_len - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
        responses[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
        attn[i, p_len - len(p) : p_len + len(r)] = 1
    return DataProto.from_dict(
        tensors={
            "prompts": prompts,
            "responses": responses,
            "input_ids": torch.cat([prompts, responses], dim=1),
            "attention_mask": attn,
            "position_ids": torch.clip(torch.cumsum(attn, dim=-1) - 1, min=0),
            "response_mask": attn[:, p_len:].clone(),
        },
        non_tensors={
            "reward_model": np.array([{"ground_truth": ref} for ref in references], dtype=object),
            "uid": np.array(list(uids), dtype=object),
            "data_source": np.array(list(data_sources) if data_sources else ["unknown"] * n, dtype=object),
        },
    )
