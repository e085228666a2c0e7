"""Which response tokens the policy loss covers (``rlpr.policy_loss_tokens``, docs/rlpr.md#policy-loss-tokens).

``response`` (the default, the paper's and verl's): every response token. ``reasoning``: only the tokens up to and
including the one that holds the last byte of ``</think>``, so the answer the model wrote after its reasoning does not
inherit the reasoning's advantage. The RLPR reward scores the reasoning (the reference answer's probability after it),
not the answer the model sampled; a learning-curve probe found that training the sampled answer on that advantage lets
it drift away from the model's own reasoning (docs/learning_curve.md).

Tags are not single tokens in Qwen's vocabulary (``</think><answer>`` is ``</``, ``think``, ``><``, ``answer``,
``>``), so ``</think>`` is found by byte offsets of the sampled tokens (``rlpr.reward.token_bytes``), as the scoring
batch finds ``<answer>``. A response that is not valid for a probability reward (``rlpr.reward.o_prime.answer_byte``:
``<think>``, ``</think>``, ``<answer>`` exactly once and in order) has no reasoning to split off: all its tokens stay
in the loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlpr.answer import THINK_CLOSE
from rlpr.reward.o_prime import answer_byte
from rlpr.reward.token_bytes import token_bytes

POLICY_LOSS_TOKENS = ("response", "reasoning")
_THINK_CLOSE_BYTES = THINK_CLOSE.encode()


def check_policy_loss_tokens(value: str, format_mode: str) -> str:
    """``value`` if it is one of ``POLICY_LOSS_TOKENS`` and applies to ``format_mode``, else a ``ValueError``."""
    if value not in POLICY_LOSS_TOKENS:
        raise ValueError(f"rlpr.policy_loss_tokens must be one of {POLICY_LOSS_TOKENS}, got {value!r}")
    if value == "reasoning" and format_mode != "R1":
        raise ValueError(
            f"rlpr.policy_loss_tokens=reasoning needs rlpr.format_mode=R1 (a <think> ... </think> reasoning to "
            f"train on); format_mode {format_mode!r} has no reasoning block. Use policy_loss_tokens=response."
        )
    return value


def reasoning_token_count(ids: np.ndarray, tokenizer: Any) -> int | None:
    """How many leading tokens of ``ids`` (one response, no padding) end at or after the last byte of its ``</think>``,
    i.e. the length of the reasoning part; None when the response is not valid for a probability reward (R1)."""
    tb = token_bytes(tokenizer)
    raw = tb.join(ids)
    if answer_byte(raw, "R1") is None:
        return None
    end = raw.find(_THINK_CLOSE_BYTES) + len(_THINK_CLOSE_BYTES)  # one byte past the tag
    ends = np.cumsum(tb.lengths[np.asarray(ids, dtype=np.int64)])  # byte offset one past each token
    return (
        int(np.searchsorted(ends, end, side="left")) + 1
    )  # the first token whose end reaches the tag's end, and all before


def reasoning_loss_mask(
    responses: torch.Tensor, response_mask: torch.Tensor, tokenizer: Any
) -> tuple[torch.Tensor, int]:
    """``response_mask`` restricted to each response's reasoning tokens (``reasoning_token_count``), and the number of
    responses left whole because they have no reasoning block to split off."""
    out = response_mask.clone()
    whole = 0
    lengths = response_mask.sum(-1).long().tolist()
    for i, length in enumerate(lengths):
        count = reasoning_token_count(responses[i, :length].numpy(), tokenizer)
        if count is None:
            whole += 1
            continue
        out[i, count:] = 0
    return out, whole
