"""verl's batch layouts and rollouts built from token id lists.

``padded_layout`` is the one builder of verl's padded layout (prompts left-padded, responses right-padded):
``make_rollout`` (single-example helpers, the ``rlpr.score`` command, the r' precompute, tests and benchmarks) and the
RLPR scoring batch's ``data`` use it; during training the rollout comes from verl's rollout manager in this same
layout. ``no_padding_layout`` builds the no-padding TensorDict a new-engine ``compute_log_prob`` takes straight from
the same rows, for the trainer's scoring forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch

if TYPE_CHECKING:
    from tensordict import TensorDict
    from verl import DataProto


def filled_mask(lengths: np.ndarray, width: int, *, left: bool) -> np.ndarray:
    """(rows, width) bool: the first (``left=False``) or last (``left=True``) ``lengths[i]`` positions of row i."""
    columns = np.arange(width)
    lengths = np.asarray(lengths, dtype=np.int64)[:, None]
    return columns >= width - lengths if left else columns < lengths


def big_array(shape: tuple[int, ...], dtype: npt.DTypeLike, fill: float | None = None) -> np.ndarray:
    """A numpy view of a new torch tensor: for the batch-sized arrays that end up as tensors anyway.

    torch's allocator, unlike numpy's, does not ask for transparent huge pages for large arrays. The scoring batch of
    6,144 responses first-touches ~0.9 GB; on the 2-core CI machine its page faults cost 0.6 s of kernel CPU time in
    ordinary pages and 1.2-1.5 s in huge pages (same process, runs alternated).
    """
    array = torch.empty(shape, dtype=torch.from_numpy(np.empty(0, dtype=dtype)).dtype).numpy()
    if fill is not None:
        array.fill(fill)
    return array


def _masks(
    prompt_lengths: np.ndarray, response_lengths: np.ndarray, p_len: int, r_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """``attention_mask`` (rows, p_len + r_len) and ``response_mask`` (rows, r_len) of the padded layout, from the
    valid lengths of each row's prompt and response."""
    rows = len(prompt_lengths)
    prompt_lengths = np.asarray(prompt_lengths, dtype=np.int64)[:, None]
    response_lengths = np.asarray(response_lengths, dtype=np.int64)[:, None]
    attention = big_array((rows, p_len + r_len), np.int64)
    np.greater_equal(np.arange(p_len), p_len - prompt_lengths, out=attention[:, :p_len])
    np.less(np.arange(r_len), response_lengths, out=attention[:, p_len:])
    response_mask = big_array((rows, r_len), np.int64)
    response_mask[:] = attention[:, p_len:]
    return attention, response_mask


def padded_layout(
    prompts: np.ndarray, prompt_lengths: np.ndarray, responses: np.ndarray, response_lengths: np.ndarray
) -> dict[str, torch.Tensor]:
    """The tensors verl's rollout and ``compute_log_prob`` take, from left-padded ``prompts`` (rows, p_len) and
    right-padded ``responses`` (rows, r_len) whose valid lengths are given: ``prompts``, ``responses``,
    ``input_ids``, ``attention_mask``, ``position_ids`` (0, 1, ... over the valid tokens; padding repeats the nearest
    valid position, as ``clip(cumsum(attention_mask) - 1, 0)`` does) and ``response_mask``."""
    rows, p_len, r_len = len(prompts), prompts.shape[1], responses.shape[1]
    # each written once, part by part: these are the largest arrays of a step's scoring batch
    input_ids = big_array((rows, p_len + r_len), prompts.dtype)
    input_ids[:, :p_len], input_ids[:, p_len:] = prompts, responses
    attention, response_mask = _masks(prompt_lengths, response_lengths, p_len, r_len)
    prompt_lengths = np.asarray(prompt_lengths, dtype=np.int64)[:, None]
    response_lengths = np.asarray(response_lengths, dtype=np.int64)[:, None]
    prompt_columns, response_columns = np.arange(p_len), np.arange(r_len)
    positions = big_array((rows, p_len + r_len), np.int64)
    np.subtract(prompt_columns, p_len - prompt_lengths, out=positions[:, :p_len])
    np.maximum(positions[:, :p_len], 0, out=positions[:, :p_len])
    np.add(response_columns, prompt_lengths, out=positions[:, p_len:])
    np.minimum(positions[:, p_len:], prompt_lengths + response_lengths - 1, out=positions[:, p_len:])
    if (prompt_lengths + response_lengths == 0).any():  # a row without any token: its positions are 0
        np.maximum(positions[:, p_len:], 0, out=positions[:, p_len:])
    return {
        "prompts": torch.from_numpy(prompts),
        "responses": torch.from_numpy(responses),
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention),
        "position_ids": torch.from_numpy(positions),
        "response_mask": torch.from_numpy(response_mask),
    }


def no_padding_layout(
    prompts: np.ndarray,
    prompt_lengths: np.ndarray,
    responses: np.ndarray,
    response_lengths: np.ndarray,
    *,
    rows_multiple_of: int = 1,
    meta_info: dict | None = None,
) -> TensorDict:
    """The ``TensorDict`` a new-engine ``compute_log_prob`` call takes, built straight from the rows.

    Equal, key by key, to what the trainer got before by converting the padded layout:
    ``left_right_2_no_padding(pad_dataproto_to_divisor(DataProto(padded_layout(...), meta_info=meta_info),
    rows_multiple_of)[0].to_tensordict())`` (verl/protocol.py:74-99, verl/workers/utils/padding.py:23-94): rows
    appended as copies of the first rows up to a multiple of ``rows_multiple_of``; padded ``prompts``, ``responses``,
    ``attention_mask`` and ``response_mask`` (``loss_mask`` is the same tensor); ``input_ids`` and ``position_ids``
    as jagged nested tensors of the valid tokens; non-tensor ``max_seq_len``, ``max_response_len``, ``indices`` (the
    valid positions of the flattened attention mask) and the ``meta_info`` entries. The padded ``input_ids`` and
    ``position_ids`` that conversion drops are never built.
    """
    from verl.utils import tensordict_utils as tu

    rows = len(prompts)
    if rows == 0:
        raise ValueError("no_padding_layout needs at least one row")
    if rows_multiple_of < 1:
        raise ValueError(f"rows_multiple_of must be a positive int, got {rows_multiple_of}")
    prompt_lengths = np.asarray(prompt_lengths, dtype=np.int64)
    response_lengths = np.asarray(response_lengths, dtype=np.int64)
    pad = -rows % rows_multiple_of
    if pad:  # verl's pad_dataproto_to_divisor: copies of rows 0, 1, ... (wrapping) after the last row
        take = np.concatenate([np.arange(rows), np.arange(pad) % rows])
        prompts, responses = prompts[take], responses[take]
        prompt_lengths, response_lengths = prompt_lengths[take], response_lengths[take]
        rows += pad
    p_len, r_len = prompts.shape[1], responses.shape[1]
    width = p_len + r_len
    attention, response_mask = _masks(prompt_lengths, response_lengths, p_len, r_len)
    lengths = prompt_lengths + response_lengths
    offsets = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    flat_ids = big_array((total,), prompts.dtype)
    flat_positions = big_array((total,), np.int64)
    indices = big_array((total,), np.int64)
    counting = np.arange(int(lengths.max()), dtype=np.int64)
    # a row's valid tokens are one run of the flattened padded row: the prompt's last tokens, then the response's first
    for i, (start, p, r) in enumerate(zip(offsets[:-1].tolist(), prompt_lengths.tolist(), response_lengths.tolist())):
        flat_ids[start : start + p] = prompts[i, p_len - p :]
        flat_ids[start + p : start + p + r] = responses[i, :r]
        flat_positions[start : start + p + r] = counting[: p + r]
        np.add(counting[: p + r], i * width + p_len - p, out=indices[start : start + p + r])
    response_mask_tensor = torch.from_numpy(response_mask)
    nested_positions = torch.nested.nested_tensor_from_jagged(
        torch.from_numpy(flat_positions),
        offsets=torch.from_numpy(offsets),
        min_seqlen=int(lengths.min()),
        max_seqlen=int(lengths.max()),
    )
    td = tu.get_tensordict(
        tensor_dict={
            "prompts": torch.from_numpy(prompts),
            "responses": torch.from_numpy(responses),
            "attention_mask": torch.from_numpy(attention),
            "position_ids": nested_positions,
            "response_mask": response_mask_tensor,
        },
        non_tensor_dict=dict(meta_info or {}),
    )
    tu.assign_non_tensor_data(td, "max_seq_len", width)
    tu.assign_non_tensor_data(td, "max_response_len", r_len)
    tu.assign_non_tensor_data(td, "indices", torch.from_numpy(indices))
    td["input_ids"] = torch.nested.nested_tensor_from_jagged(
        torch.from_numpy(flat_ids), offsets=torch.from_numpy(offsets.astype(np.int32))
    )
    td["loss_mask"] = response_mask_tensor
    return td


def make_rollout(
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    references: Sequence[str],
    uids: Sequence[str],
    pad_token_id: int,
    data_sources: Sequence[str] | None = None,
) -> DataProto:
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
    p_lengths = np.array([len(p) for p in prompt_ids], dtype=np.int64)
    r_lengths = np.array([len(r) for r in response_ids], dtype=np.int64)
    p_len, r_len = int(p_lengths.max(initial=0)), int(r_lengths.max(initial=0))
    prompts = np.full((n, p_len), pad_token_id, dtype=np.int64)
    responses = np.full((n, r_len), pad_token_id, dtype=np.int64)
    prompts[filled_mask(p_lengths, p_len, left=True)] = np.fromiter((int(t) for p in prompt_ids for t in p), np.int64)
    responses[filled_mask(r_lengths, r_len, left=False)] = np.fromiter(
        (int(t) for r in response_ids for t in r), np.int64
    )
    return DataProto.from_dict(
        tensors=padded_layout(prompts, p_lengths, responses, r_lengths),
        non_tensors={
            "reward_model": np.array([{"ground_truth": ref} for ref in references], dtype=object),
            "uid": np.array(list(uids), dtype=object),
            "data_source": np.array(list(data_sources) if data_sources else ["unknown"] * n, dtype=object),
        },
    )
