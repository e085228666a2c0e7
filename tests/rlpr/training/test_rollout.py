"""``padded_layout`` against verl's own position rule, and ``no_padding_layout`` against verl's own conversion of the
padded layout (``pad_dataproto_to_divisor``, then ``left_right_2_no_padding``)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from verl import DataProto
from verl.utils.model import compute_position_id_with_mask

from rlpr.training.rollout import filled_mask, no_padding_layout, padded_layout

_spec = importlib.util.spec_from_file_location("rlpr_test_helpers", Path(__file__).with_name("helpers.py"))
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)


def test_padded_layout_matches_verls_masks_and_positions():
    rng = np.random.default_rng(7)
    p_lengths = np.array([0, 1, 5, 5, 3, 0])  # rows without a prompt or without a response, or with neither
    r_lengths = np.array([0, 0, 7, 1, 4, 3])
    p_len, r_len = 5, 7
    prompts = rng.integers(10, 99, (6, p_len))
    responses = rng.integers(10, 99, (6, r_len))
    got = padded_layout(prompts.copy(), p_lengths, responses.copy(), r_lengths)

    attention = np.zeros((6, p_len + r_len), dtype=np.int64)
    for i, (p, r) in enumerate(zip(p_lengths, r_lengths)):
        attention[i, p_len - p : p_len + r] = 1
    attention = torch.from_numpy(attention)
    assert torch.equal(got["attention_mask"], attention)
    assert torch.equal(got["response_mask"], attention[:, p_len:])
    assert torch.equal(got["position_ids"], compute_position_id_with_mask(attention))  # verl/utils/model.py:240
    assert torch.equal(got["input_ids"], torch.from_numpy(np.concatenate([prompts, responses], axis=1)))
    assert torch.equal(got["prompts"], torch.from_numpy(prompts))
    assert torch.equal(got["responses"], torch.from_numpy(responses))
    assert all(got[k].dtype == torch.int64 for k in got)


def test_no_padding_layout_equals_verls_conversion_of_the_padded_layout():
    rng = np.random.default_rng(11)
    pads = set()
    for _ in range(150):
        rows, p_len, r_len = int(rng.integers(1, 12)), int(rng.integers(1, 6)), int(rng.integers(1, 7))
        p_lengths, r_lengths = rng.integers(1, p_len + 1, rows), rng.integers(0, r_len + 1, rows)
        prompts = np.full((rows, p_len), 99, dtype=np.int64)
        prompts[filled_mask(p_lengths, p_len, left=True)] = rng.integers(0, 50, int(p_lengths.sum()))
        responses = np.full((rows, r_len), 99, dtype=np.int64)
        responses[filled_mask(r_lengths, r_len, left=False)] = rng.integers(0, 50, int(r_lengths.sum()))
        multiple, meta = int(rng.integers(1, 9)), {"temperature": float(rng.random())}
        padded = DataProto.from_dict(tensors=padded_layout(prompts.copy(), p_lengths, responses.copy(), r_lengths))
        expected = helpers.verl_conversion(padded, multiple, meta)
        got = no_padding_layout(prompts, p_lengths, responses, r_lengths, rows_multiple_of=multiple, meta_info=meta)
        helpers.assert_same_tensordict(got, expected)
        pads.add(-rows % multiple > rows)  # padding longer than the batch wraps around it
    assert pads == {False, True}


def test_no_padding_layout_rejects_an_empty_batch_and_a_bad_multiple():
    one = np.ones((1, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="at least one row"):
        no_padding_layout(one[:0], np.zeros(0), one[:0], np.zeros(0))
    with pytest.raises(ValueError, match="rows_multiple_of must be a positive int, got 0"):
        no_padding_layout(one, np.array([2]), one, np.array([1]), rows_multiple_of=0)
