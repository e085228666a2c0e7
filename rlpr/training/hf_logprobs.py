"""Per-token log-probs of a scoring batch under a transformers causal LM (CPU or GPU).

The same quantity verl's actor ``compute_log_prob`` returns, laid out as (rows, response_len): entry t is
log softmax(logits / T) of response token t given everything before it. Used by the single-example helpers, the
``rlpr.score`` command and the CPU smoke runs; real training gets these from verl's actor workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from verl import DataProto


@torch.no_grad()
def response_log_probs(
    model: torch.nn.Module, data: DataProto, temperature: float = 1.0, micro_batch_size: int = 8
) -> torch.Tensor:
    """log p(responses[:, t] | input before it) at temperature ``temperature`` for a verl-layout ``DataProto``."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    batch = data.batch
    responses = batch["responses"]
    p_len, r_len = batch["prompts"].shape[1], responses.shape[1]
    device = next(model.parameters()).device
    out = []
    for lo in range(0, responses.shape[0], micro_batch_size):
        sl = slice(lo, lo + micro_batch_size)
        logits = model(
            input_ids=batch["input_ids"][sl].to(device),
            attention_mask=batch["attention_mask"][sl].to(device),
            position_ids=batch["position_ids"][sl].to(device),
            use_cache=False,
        ).logits
        logits = logits[:, p_len - 1 : p_len - 1 + r_len].float() / temperature
        logp = torch.log_softmax(logits, dim=-1)
        out.append(logp.gather(-1, responses[sl].to(device).unsqueeze(-1)).squeeze(-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, r_len)
