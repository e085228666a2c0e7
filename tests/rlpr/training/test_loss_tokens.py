"""rlpr.policy_loss_tokens: the reasoning-only loss mask on the real Qwen2.5 tokenizer, hand-computed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rlpr.training.loss_tokens import check_policy_loss_tokens, reasoning_loss_mask, reasoning_token_count


def test_tags_are_not_single_tokens_here(qwen_tokenizer):
    """The premise of the byte-offset search: </think> spans several tokens and merges with its neighbours."""
    ids = qwen_tokenizer.encode("<think> 3+4=7 </think><answer> 12 </answer>")
    assert qwen_tokenizer.convert_ids_to_tokens(ids) == [
        "<th", "ink", ">", "Ġ", "3", "+", "4", "=", "7", "Ġ</", "think", "><", "answer", ">", "Ġ", "1", "2", "Ġ</",
        "answer", ">",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "count"),
    [
        # '<th' 'ink' '>' 'Ġ' '3' '+' '4' '=' '7' 'Ġ</' 'think' '><' ...: the tag's last byte '>' is in '><' (index 11)
        ("<think> 3+4=7 </think><answer> 12 </answer>", 12),
        # '<th' 'ink' '>a' '</' 'think' '>Ċ' '<' 'answer' ...: it is in '>Ċ' (index 5)
        ("<think>a</think>\n<answer>b</answer>", 6),
        # text before <think> is allowed; '</answer>' missing is allowed (valid for a probability reward)
        ("ok <think>z</think> <answer> y", None),
    ],
)
def test_reasoning_token_count(qwen_tokenizer, text, count):
    ids = qwen_tokenizer.encode(text)
    if count is None:  # the third case: computed from its tokens by hand below
        tokens = qwen_tokenizer.convert_ids_to_tokens(ids)
        assert tokens[:7] == ["ok", "Ġ<", "think", ">", "z", "</", "think"]
        assert tokens[7].startswith(">")  # the token holding the tag's last byte
        count = 8
    assert reasoning_token_count(ids, qwen_tokenizer) == count


@pytest.mark.parametrize(
    "text",
    [
        "<think> 3+4=7 </think> 12",  # no <answer>
        "<answer> 12 </answer>",  # no reasoning block
        "<think> a </think> <think> b </think> <answer> 12 </answer>",  # two reasoning blocks
        "<answer> 12 </answer> <think> a </think>",  # out of order
    ],
)
def test_invalid_responses_have_no_reasoning_count(qwen_tokenizer, text):
    assert reasoning_token_count(qwen_tokenizer.encode(text), qwen_tokenizer) is None


def test_reasoning_loss_mask_on_a_padded_batch(qwen_tokenizer):
    texts = ["<think> 3+4=7 </think><answer> 12 </answer>", "<answer> 12 </answer>"]
    rows = [qwen_tokenizer.encode(t) + [qwen_tokenizer.eos_token_id] for t in texts]
    width = max(map(len, rows)) + 2
    pad = qwen_tokenizer.pad_token_id
    responses = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    out, whole = reasoning_loss_mask(responses, mask, qwen_tokenizer)
    assert whole == 1  # the direct answer keeps all its tokens
    assert out[0].tolist() == [1] * 12 + [0] * (width - 12)
    assert out[1].tolist() == mask[1].tolist()
    assert mask[0].sum() == 21  # the input is not modified


def test_option_values_and_refusal():
    assert check_policy_loss_tokens("response", "R1_nothink") == "response"
    assert check_policy_loss_tokens("reasoning", "R1") == "reasoning"
    with pytest.raises(ValueError, match="R1_nothink has no reasoning block|format_mode 'R1_nothink'"):
        check_policy_loss_tokens("reasoning", "R1_nothink")
    with pytest.raises(ValueError, match="must be one of"):
        check_policy_loss_tokens("answer", "R1")


def test_config_check_refuses_reasoning_loss_without_reasoning(tmp_path):
    """rlpr.main's check of the rlpr: section names the setting before Ray starts (RLPRTrainer's constructor runs the
    same check_policy_loss_tokens)."""
    from omegaconf import OmegaConf

    from harness import config_check
    from rlpr.main import _check_rlpr_values

    base = OmegaConf.load(Path(__file__).parents[3] / "configs" / "rlpr" / "_base.yaml")
    config = OmegaConf.create(
        {"rlpr": OmegaConf.to_container(base.rlpr, resolve=False), "data": {"max_response_length": 16}}
    )
    config.rlpr.scoring_temperature = 1.0
    config.rlpr.debias.cache_path = str(tmp_path / "c.json")
    assert config.rlpr.policy_loss_tokens == "response"
    _check_rlpr_values(config)
    config.rlpr.policy_loss_tokens = "reasoning"
    config.rlpr.format_mode = "R1_nothink"
    with pytest.raises(config_check.ConfigError, match="rlpr.policy_loss_tokens: .*format_mode 'R1_nothink'"):
        _check_rlpr_values(config)
