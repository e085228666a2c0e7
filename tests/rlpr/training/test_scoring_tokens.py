"""The o' / debias scoring batch on the real Qwen2.5 tokenizer: where tags merge, multi-byte text, odd responses."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlpr.reward.o_prime import parse_response
from rlpr.reward.token_bytes import token_bytes
from rlpr.training.rollout import make_rollout
from rlpr.training.scoring import DebiasConfig, RepetitionConfig, ScoringConfig, build_scoring_batch, compute_rewards

_spec = importlib.util.spec_from_file_location("rlpr_test_helpers", Path(__file__).with_name("helpers.py"))
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)
rollout_from_texts = helpers.rollout_from_texts


def row_ids(scoring, row):
    mask = scoring.data.batch["response_mask"][row].bool()
    return scoring.data.batch["responses"][row][mask].tolist()


def byte_level_mask(tokenizer, ids, span_start_byte, span_end_byte):
    """Second implementation of the answer mask: overlap of each token's BYTE span with y*'s byte span."""
    tb = token_bytes(tokenizer)
    out, pos = [], 0
    for i in ids:
        length = len(tb.table[i])
        out.append(pos < span_end_byte and pos + length > span_start_byte)
        pos += length
    return out


def check_o_prime(tokenizer, scoring, i, response, reference, expected_ws):
    """o' is the sampled ids up to the cut, then the tail; text and answer mask per docs/rlpr.md#scoring-sequence."""
    row = scoring.response_row[i]
    assert row >= 0, scoring.status[i]
    sampled = tokenizer(response, add_special_tokens=False)["input_ids"]
    ids = row_ids(scoring, row)
    cut = response.index("<answer>")
    expected = response[:cut] + "<answer>" + expected_ws + reference + " </answer>" + tokenizer.eos_token
    assert tokenizer.decode(ids) == expected
    # kept: every sampled token that ends before <answer> starts (offsets from the tokenizer, not our byte table)
    offsets = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    keep = sum(1 for _, end in offsets if end <= cut)
    assert ids[:keep] == sampled[:keep]
    assert tokenizer.decode(ids[keep:]).endswith(
        "<answer>" + expected_ws + reference + " </answer>" + tokenizer.eos_token
    )
    mask = scoring.answer_mask[row][: len(ids)].tolist()
    masked = [t for t, m in zip(ids, mask) if m]
    assert tokenizer.decode(masked).strip() == reference
    prefix_bytes = len(expected[: expected.index(reference, cut)].encode())
    assert mask == byte_level_mask(tokenizer, ids, prefix_bytes, prefix_bytes + len(reference.encode()))
    assert not any(scoring.answer_mask[row][len(ids) :])


@pytest.mark.parametrize(
    ("response", "ws"),
    [
        ("<think>France's capital.</think><answer>Paris</answer>", " "),  # `</think><answer>` -> `</ think >< answer >`
        ("<think>\nthe capital\n</think>\n<answer>Paris</answer>", " "),  # `>\n` then `<answer>`
        ("<think>x</think><answer>\nParis\n</answer>", "\n"),  # `<answer>\n` merges `>\n`
        ("<think>x</think> <answer>  Paris </answer>", "  "),
        ("<think>x</think><answer>", " "),  # truncated right after <answer>: still valid for r
        ("<think>x</think><answer>Lyon</answer> I am sure. <answer>", None),  # doubled <answer>: invalid
        ("<think>x</think><answer>Lyon</answer> because reasons", " "),  # text after </answer> dropped
        ("preamble <think>x</think><answer>Lyon", " "),  # text before <think> tolerated
    ],
)
def test_o_prime_on_real_tokens(qwen_tokenizer, response, ws):
    rollout = rollout_from_texts(qwen_tokenizer, "Capital of France?", [response], "Paris")
    scoring = build_scoring_batch(rollout, qwen_tokenizer, ScoringConfig())
    if ws is None:
        assert scoring.status == ["no_answer"] and scoring.response_row == [-1]
        return
    assert scoring.status == ["ok"]
    check_o_prime(qwen_tokenizer, scoring, 0, response, "Paris", ws)


def test_merged_tag_token_is_split_by_bytes(qwen_tokenizer):
    response = "<think>a</think><answer>Paris</answer>"
    sampled = qwen_tokenizer(response, add_special_tokens=False)["input_ids"]
    # `><` holds the end of </think> and the start of <answer>: the cut lands before it and `>` is re-tokenized
    assert "><" in qwen_tokenizer.convert_ids_to_tokens(sampled)
    rollout = rollout_from_texts(qwen_tokenizer, "q", [response], "Paris")
    scoring = build_scoring_batch(rollout, qwen_tokenizer, ScoringConfig())
    ids = row_ids(scoring, 0)
    k = qwen_tokenizer.convert_ids_to_tokens(sampled).index("><")
    assert ids[:k] == sampled[:k]
    assert qwen_tokenizer.decode(ids[k:]) == "><answer> Paris </answer><|im_end|>"


def test_multibyte_reasoning_and_reference(qwen_tokenizer):
    reference = "巴黎 🗼 (Paris)"
    response = "<think>法国的首都是巴黎。🙂🚀 Ça va.</think>\n<answer>巴黎 🗼</answer>"
    rollout = rollout_from_texts(qwen_tokenizer, "法国的首都？", [response], reference)
    scoring = build_scoring_batch(rollout, qwen_tokenizer, ScoringConfig())
    check_o_prime(qwen_tokenizer, scoring, 0, response, reference, " ")
    debias = row_ids(scoring, scoring.prompt_row["q0"])
    assert qwen_tokenizer.decode(debias) == " " + reference + " <|im_end|>"


def test_debias_rows_once_per_prompt(qwen_tokenizer):
    responses = ["<think>a</think><answer>4</answer>", "<think>b</think><answer>5</answer>", "no tags"]
    rollout = rollout_from_texts(qwen_tokenizer, "2+2?", responses * 2, "4", uids=["a"] * 3 + ["b"] * 3)
    scoring = build_scoring_batch(rollout, qwen_tokenizer, ScoringConfig())
    assert scoring.num_rows == 4 + 2
    assert scoring.response_row == [0, 1, -1, 2, 3, -1]
    assert set(scoring.prompt_row) == {"a", "b"}
    for uid in ("a", "b"):
        row = scoring.prompt_row[uid]
        ids = row_ids(scoring, row)
        assert qwen_tokenizer.decode(ids) == " 4 <|im_end|>"
        assert qwen_tokenizer.decode([t for t, m in zip(ids, scoring.answer_mask[row].tolist()) if m]).strip() == "4"
    tagged = build_scoring_batch(rollout, qwen_tokenizer, ScoringConfig(debias=DebiasConfig(tagged=True)))
    assert qwen_tokenizer.decode(row_ids(tagged, tagged.prompt_row["a"])) == "<answer> 4 </answer><|im_end|>"
    no_debias = build_scoring_batch(rollout, qwen_tokenizer, ScoringConfig(), debias_rows=False)
    assert no_debias.num_rows == 4 and no_debias.prompt_row == {}


def test_layout_matches_compute_log_prob(qwen_tokenizer):
    responses = ["<think>a long reasoning here</think><answer>4</answer>", "<think>b</think><answer>5</answer>"]
    rollout = rollout_from_texts(qwen_tokenizer, "2+2?", responses, "4")
    batch = build_scoring_batch(rollout, qwen_tokenizer, ScoringConfig()).data.batch
    p_len = batch["prompts"].shape[1]
    assert torch.equal(batch["input_ids"], torch.cat([batch["prompts"], batch["responses"]], 1))
    assert torch.equal(batch["response_mask"], batch["attention_mask"][:, p_len:])
    for row in range(len(batch["input_ids"])):
        attn = batch["attention_mask"][row]
        first = int(attn.nonzero()[0])
        assert attn[first:].tolist() == sorted(attn[first:].tolist(), reverse=True)  # left pad, then right pad
        assert batch["position_ids"][row][first:].tolist()[: int(attn.sum())] == list(range(int(attn.sum())))
    from verl.workers.utils.padding import left_right_2_no_padding

    td = left_right_2_no_padding(build_scoring_batch(rollout, qwen_tokenizer, ScoringConfig()).data.to_tensordict())
    assert td["input_ids"].is_nested


def test_r1_nothink_mode(qwen_tokenizer):
    response = "Step by step: 2+2 is 4.\n<answer>4</answer>"
    rollout = rollout_from_texts(qwen_tokenizer, "2+2?", [response, "<think>a</think>4"], "4")
    scoring = build_scoring_batch(rollout, qwen_tokenizer, ScoringConfig(format_mode="R1_nothink"))
    assert scoring.status == ["ok", "no_answer"]
    check_o_prime(qwen_tokenizer, scoring, 0, response, "4", " ")
    lp = torch.zeros(scoring.answer_mask.shape)
    assert compute_rewards(scoring, lp, ScoringConfig(format_mode="R1_nothink")).format_scores.tolist() == [1.0, 0.0]


def test_empty_reference_and_overlength_are_per_sample(qwen_tokenizer):
    long = "<think>" + "very long reasoning " * 40 + "</think><answer>4</answer>"
    responses = ["<think>a</think><answer>4</answer>", long, "<think>b</think><answer>4</answer>"]
    rollout = rollout_from_texts(qwen_tokenizer, "2+2?", responses, ["4", "4", "   "], uids=["a", "a", "b"])
    scoring = build_scoring_batch(rollout, qwen_tokenizer, ScoringConfig(max_scoring_length=30))
    assert scoring.status == ["ok", "overlength", "empty_reference"]
    assert scoring.response_row == [0, -1, -1]
    assert set(scoring.prompt_row) == {"a"}  # no debias row for an empty reference
    lp = torch.full(scoring.answer_mask.shape, math.log(0.5))
    rewards = compute_rewards(scoring, lp, ScoringConfig(max_scoring_length=30))
    assert rewards.metrics["rlpr/overlength"] == 1.0
    assert rewards.metrics["rlpr/empty_reference"] == 1.0
    assert rewards.metrics["rlpr/valid_frac"] == pytest.approx(1 / 3)
    assert rewards.r.tolist() == pytest.approx([0.5, 0.0, 0.0])


def test_sampled_segmentation_is_kept(qwen_tokenizer):
    """The reasoning keeps the token ids the policy sampled, even when they are not the canonical tokenization."""
    pieces = ["<think>", "Hel", "lo wor", "ld", "</think>", "<answer>", "4", "</answer>"]
    ids = [t for p in pieces for t in qwen_tokenizer(p, add_special_tokens=False)["input_ids"]]
    canonical = qwen_tokenizer("".join(pieces), add_special_tokens=False)["input_ids"]
    assert ids != canonical
    prompt = helpers.chat_prompt_ids(qwen_tokenizer, "q")
    rollout = make_rollout([prompt], [ids], ["4"], ["u"], qwen_tokenizer.pad_token_id)
    scoring = build_scoring_batch(rollout, qwen_tokenizer, ScoringConfig())
    n_reasoning = sum(len(qwen_tokenizer(p, add_special_tokens=False)["input_ids"]) for p in pieces[:5])
    assert row_ids(scoring, 0)[:n_reasoning] == ids[:n_reasoning]


class _FakeTokenBytes:
    """A vocabulary where one token starts in the middle of a character and also holds `<answer>`."""

    def __init__(self, table):
        self.table = table
        self.lengths = np.array([len(b) for b in table], dtype=np.int64)
        self.special_ids = frozenset()
        self.skipped = np.zeros(len(table), dtype=bool)

    def join(self, ids):
        return b"".join(self.table[i] for i in ids)


def test_cut_steps_back_to_a_character_boundary():
    smile = "🙂".encode()
    table = [b"<think>x</think>", smile[:2], smile[2:] + b"<answer> 7"]
    parsed = parse_response([0, 1, 2], _FakeTokenBytes(table), "7", "R1", "</s>")
    assert parsed.keep == 1  # token 2 starts mid-character: the cut moves back to token 1
    assert parsed.tail == "🙂<answer> 7 </answer></s>"
    assert parsed.tail[parsed.ref_span[0] : parsed.ref_span[1]] == "7"


def test_bad_rollouts_are_named(qwen_tokenizer):
    rollout = rollout_from_texts(qwen_tokenizer, "q", ["<think>a</think><answer>4"], "4")
    rollout.non_tensor_batch["reward_model"][0] = {"ground_truth": 4}
    with pytest.raises(ValueError, match="row 0.*ground_truth"):
        build_scoring_batch(rollout, qwen_tokenizer, ScoringConfig())
    rollout = rollout_from_texts(qwen_tokenizer, "q", ["<think>a</think><answer>4"], "4")
    rollout.batch["responses"][0, 0] = len(qwen_tokenizer) + 5
    with pytest.raises(ValueError, match="outside the tokenizer's vocabulary"):
        build_scoring_batch(rollout, qwen_tokenizer, ScoringConfig())
    with pytest.raises(ValueError, match="format mode"):
        ScoringConfig(format_mode="R3")


def test_rewards_from_log_probs(qwen_tokenizer):
    responses = [
        "<think>a</think><answer>4</answer>",  # valid, F = 1
        "<think>b</think><answer>5",  # valid for r, F = 0
        "4",  # invalid
        "<think>" + "the same ten words repeated over and over in this text " * 12 + "</think><answer>4</answer>",
    ]
    rollout = rollout_from_texts(qwen_tokenizer, "2+2?", responses, "4")
    config = ScoringConfig()
    scoring = build_scoring_batch(rollout, qwen_tokenizer, config)
    # hand-made log-probs: o' rows score 0.8, 0.3, 0.6; the debias row 0.5
    values = [0.8, 0.3, 0.6, 0.5]
    lp = torch.log(torch.tensor(values)).unsqueeze(1).expand(scoring.answer_mask.shape).clone()
    out = compute_rewards(scoring, lp, config)
    assert out.r.tolist() == pytest.approx([0.8, 0.3, 0.0, 0.6])
    assert out.r_prime.tolist() == pytest.approx([0.5] * 4)
    assert out.r_hat.tolist() == pytest.approx([0.3, 0.0, 0.0, 0.1])
    assert out.reward.tolist() == pytest.approx([0.9 * 0.3 + 0.1, 0.0, 0.0, 0.9 * 0.1 + 0.1 - 1.0])
    m = out.metrics
    assert m["rlpr/valid_frac"] == 0.75 and m["rlpr/no_answer"] == 1.0
    assert m["rlpr/r_mean"] == pytest.approx((0.8 + 0.3 + 0.6) / 3)
    assert m["rlpr/r_prime_mean"] == pytest.approx(0.5)
    assert m["rlpr/clipped_frac"] == pytest.approx(1 / 3)
    assert m["rlpr/repetition_frac"] == 0.25 and m["rlpr/format_mean"] == 0.5
    # the reference implementation's behaviour: P only where the reward is non-zero
    ref = ScoringConfig(repetition=RepetitionConfig(apply_to_all=False))
    assert compute_rewards(scoring, lp, ref).reward.tolist() == pytest.approx(out.reward.tolist())
    rollout_rep = rollout_from_texts(qwen_tokenizer, "2+2?", [responses[3].replace("</answer>", "")], "4")
    rep = build_scoring_batch(rollout_rep, qwen_tokenizer, config)
    low = torch.full(rep.answer_mask.shape, math.log(0.2))
    assert compute_rewards(rep, low, config).reward.tolist() == [-1.0]  # r̂ = 0, F = 0, P = -1
    assert compute_rewards(rep, low, ref).reward.tolist() == [0.0]
    with pytest.raises(ValueError, match="shape"):
        compute_rewards(scoring, lp[:, :2], config)


def test_r_prime_from_cache(qwen_tokenizer):
    rollout = rollout_from_texts(qwen_tokenizer, "2+2?", ["<think>a</think><answer>4</answer>"], "4", uids=["u7"])
    config = ScoringConfig()
    scoring = build_scoring_batch(rollout, qwen_tokenizer, config, debias_rows=False)
    lp = torch.full(scoring.answer_mask.shape, math.log(0.9))
    with pytest.raises(KeyError, match="u7"):
        compute_rewards(scoring, lp, config)
    out = compute_rewards(scoring, lp, config, r_prime={scoring.prompt_keys[0]: 0.25})
    assert out.r_hat.tolist() == pytest.approx([0.65])
    assert compute_rewards(scoring, lp, ScoringConfig(shaping="none")).r_hat.tolist() == pytest.approx([0.9])


FRAGMENTS = st.sampled_from(
    ["<think>", "</think>", "<answer>", "</answer>", "<", ">", "answer", "\n", " ", "  ", "巴黎", "🙂", "é", "x", "42",
     "</", "><", "Paris", "\t", "<|im_end|>"]
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.lists(FRAGMENTS, max_size=12).map("".join), min_size=1, max_size=4),
    raw=st.lists(st.integers(min_value=0, max_value=151664), max_size=12),
    reference=st.sampled_from(["Paris", "巴黎 🗼", " 4 ", "", "a<answer>b"]),
    mode=st.sampled_from(["R1", "R1_nothink"]),
)
def test_fuzzed_responses_never_crash(qwen_tokenizer, texts, raw, reference, mode):
    prompt = helpers.chat_prompt_ids(qwen_tokenizer, "q")
    ids = [qwen_tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts] + [raw]
    rollout = make_rollout([prompt] * len(ids), ids, [reference] * len(ids), ["u"] * len(ids), 151643)
    config = ScoringConfig(format_mode=mode, max_scoring_length=40)
    scoring = build_scoring_batch(rollout, qwen_tokenizer, config)
    lp = torch.zeros(scoring.answer_mask.shape)
    out = compute_rewards(scoring, lp, config)
    assert torch.isfinite(out.reward).all()
    for row in scoring.response_row:
        if row >= 0:
            masked = scoring.data.batch["responses"][row][scoring.answer_mask[row]].tolist()
            assert qwen_tokenizer.decode(masked).strip() == reference.strip()


def test_debias_row_over_the_cap_is_a_counted_skip(qwen_tokenizer):
    """A reference longer than max_scoring_length: no debias row (no giant padded batch), its prompt's responses get
    r = 0 and r' = 0 (status overlength), the prompt is counted, and other prompts are scored as usual."""
    huge = "word " * 2000  # ~2,000 tokens of y*, against a cap of 40
    responses = ["<think>a</think><answer>4</answer>", "<think>b</think><answer>x</answer>"]
    rollout = rollout_from_texts(
        qwen_tokenizer, "2+2?", responses * 2, ["4", "4", huge, huge], uids=["a", "a", "b", "b"]
    )
    config = ScoringConfig(max_scoring_length=40)
    scoring = build_scoring_batch(rollout, qwen_tokenizer, config)
    assert scoring.status == ["ok", "ok", "overlength", "overlength"]
    assert set(scoring.prompt_row) == {"a"} and scoring.debias_overlength == ["b"]
    assert scoring.answer_mask.shape[1] <= 40  # no row holds the long reference
    lp = torch.full(scoring.answer_mask.shape, math.log(0.5))
    rewards = compute_rewards(scoring, lp, config)
    assert rewards.r.tolist() == pytest.approx([0.5, 0.5, 0.0, 0.0])
    assert rewards.r_prime.tolist() == pytest.approx([0.5, 0.5, 0.0, 0.0])
    assert rewards.reward.tolist() == pytest.approx([0.1, 0.1, 0.1, 0.1])  # r̂ = 0 everywhere; F = 1
    assert rewards.metrics["rlpr/debias_overlength"] == 1.0 and rewards.metrics["rlpr/overlength"] == 2.0
    # r' from the cache is not asked for the skipped prompt either
    no_rows = build_scoring_batch(rollout, qwen_tokenizer, config, debias_rows=False)
    assert set(no_rows.r_prime_wanted().values()) == {"uid a", "uid b"}
    assert scoring.r_prime_wanted() == {}


@pytest.mark.parametrize("answer_words", [1, 150])  # a short answer, and one longer than the suffix searched first
def test_kept_tokens_stop_at_the_token_holding_the_answer_tag(qwen_tokenizer, answer_words):
    head = "<think>\nsome reasoning here\n</think>"
    ids = qwen_tokenizer(head + "<answer>" + " word" * answer_words + "</answer>", add_special_tokens=False)[
        "input_ids"
    ]
    # independently: the last token whose decoded prefix (ASCII, so characters are bytes) starts at or before the tag
    want = max(k for k in range(len(ids)) if len(qwen_tokenizer.decode(ids[:k])) <= len(head))
    parsed = parse_response(ids, token_bytes(qwen_tokenizer), "4", "R1", qwen_tokenizer.eos_token)
    assert parsed.keep == want
    assert qwen_tokenizer.decode(ids[:want]) + parsed.tail == head + "<answer> 4 </answer>" + qwen_tokenizer.eos_token
