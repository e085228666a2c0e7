"""``padded_layout``: verl's padded batch layout, checked against verl's own position rule."""

import numpy as np
import torch
from verl.utils.model import compute_position_id_with_mask

from rlpr.training.rollout import padded_layout


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
