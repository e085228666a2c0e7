"""Building rollouts from strings with a real tokenizer, and comparing no-padding batches with verl's conversion, for
the RLPR scoring tests."""

import torch
from verl import DataProto
from verl.protocol import pad_dataproto_to_divisor
from verl.workers.utils.padding import left_right_2_no_padding

from rlpr.training.rollout import make_rollout


def chat_prompt_ids(tokenizer, question: str) -> list[int]:
    return tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)[
        "input_ids"
    ]


def rollout_from_texts(tokenizer, question, responses, references, uids=None, eos=True):
    """Prompt ids from the chat template; each response tokenized on its own (plus eos, as a policy ends it)."""
    prompt = chat_prompt_ids(tokenizer, question)
    if isinstance(references, str):
        references = [references] * len(responses)
    response_ids = [
        tokenizer(r, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if eos else [])
        for r in responses
    ]
    uids = uids or ["q0"] * len(responses)
    return make_rollout([prompt] * len(responses), response_ids, references, uids, tokenizer.pad_token_id)


def assert_same_entry(a, b, key):
    """Equal dtype, shape and values; for nested tensors the same layout, values, offsets and cached seqlen bounds;
    for non-tensor data the same type and value."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.is_nested == b.is_nested, key
        if a.is_nested:
            assert a.layout == b.layout == torch.jagged and a._ragged_idx == b._ragged_idx, key
            for part in ("values", "offsets"):
                x, y = getattr(a, part)(), getattr(b, part)()
                assert x.dtype == y.dtype and torch.equal(x, y), (key, part)
            cached = {k: tuple(v.shape) for k, v in a._metadata_cache.items()}  # torch keeps the ints as shapes
            assert cached == {k: tuple(v.shape) for k, v in b._metadata_cache.items()}, key
        else:
            assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), key
        return
    assert type(a) is type(b), (key, type(a), type(b))
    if isinstance(a.data, torch.Tensor):
        assert_same_entry(a.data, b.data, key)
    else:
        assert type(a.data) is type(b.data) and a.data == b.data, key


def assert_same_tensordict(got, expected):
    assert list(got.keys()) == list(expected.keys())
    assert got.batch_size == expected.batch_size
    for key in expected.keys():
        assert_same_entry(got.get(key), expected.get(key), key)
    assert got["loss_mask"] is got["response_mask"]  # as left_right_2_no_padding leaves them


def verl_conversion(data: DataProto, rows_multiple_of: int, meta_info: dict):
    """What the trainer sent before: the padded batch padded to the divisor by verl, then converted by verl."""
    data = DataProto(batch=data.batch, meta_info=dict(meta_info))
    return left_right_2_no_padding(pad_dataproto_to_divisor(data, rows_multiple_of)[0].to_tensordict())
