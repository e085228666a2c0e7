"""The phases of ``build_scoring_batch``, each on its own, against expectations computed here: token ids, offsets and
keys from the real Qwen2.5 tokenizer and ``prompt_key`` called directly, budgets and row choices worked out by hand."""

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from rlpr.reward.token_bytes import token_bytes
from rlpr.training.debias_cache import prompt_key
from rlpr.training.rollout import make_rollout
from rlpr.training.scoring import (
    Candidates,
    RowPlan,
    ScoringConfig,
    assemble_rows,
    build_scoring_batch,
    debias_candidates,
    index_prompts,
    parse_responses,
    plan_rows,
    read_rollout,
    tokenize_tails,
)

_spec = importlib.util.spec_from_file_location("rlpr_test_helpers", Path(__file__).with_name("helpers.py"))
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)

EOS = "<|im_end|>"  # the eos token of the Qwen2.5 tokenizer the fixture loads (checked in each test that uses it)


def encode(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def offsets_of(tokenizer, text):
    return [tuple(o) for o in tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]


# 1. Read the rollout


def test_read_rollout_gives_the_unpadded_ids_stripped_references_and_uids(qwen_tokenizer):
    prompts = [encode(qwen_tokenizer, "a short prompt"), encode(qwen_tokenizer, "a much longer prompt than the other")]
    responses = [encode(qwen_tokenizer, "one two three"), encode(qwen_tokenizer, "four")]
    rollout = make_rollout(prompts, responses, ["  Paris ", "Lyon"], ["u0", "u1"], qwen_tokenizer.pad_token_id)
    tokens = read_rollout(rollout, len(qwen_tokenizer))
    assert [tokens.prompts[i][tokens.prompt_mask[i]].tolist() for i in range(2)] == prompts
    assert tokens.response_len.tolist() == [len(r) for r in responses]
    assert [tokens.responses[i, : len(r)].tolist() for i, r in enumerate(responses)] == responses
    assert tokens.references == ["Paris", "Lyon"] and tokens.uids == ["u0", "u1"]


def test_read_rollout_refuses_ids_outside_the_vocabulary_and_a_reference_that_is_no_str(qwen_tokenizer):
    vocab = len(qwen_tokenizer)
    prompt = encode(qwen_tokenizer, "q")
    rollout = make_rollout([prompt] * 3, [[1, 2], [3, vocab], [4]], ["a"] * 3, ["u"] * 3, qwen_tokenizer.pad_token_id)
    with pytest.raises(ValueError, match=rf"rollout rows \[1\] hold token ids outside .* 0\.\.{vocab - 1}"):
        read_rollout(rollout, vocab)
    rollout = make_rollout([prompt] * 2, [[1], [2]], ["a", "b"], ["u"] * 2, qwen_tokenizer.pad_token_id)
    rollout.non_tensor_batch["reward_model"][1] = {"ground_truth": 7}
    with pytest.raises(ValueError, match="rollout row 1: reward_model.ground_truth must be .* a str, got 7"):
        read_rollout(rollout, vocab)


# 2. Parse the responses

RESPONSES = [
    ("<think>France's capital.</think><answer>Paris</answer>", "Paris", "ok", " "),
    ("no tags at all", "Paris", "no_answer", None),
    ("<think>b</think> <answer>  Lyon", "", "empty_reference", None),
    ("<think>c</think>\n<answer>\nParis\n</answer>", "Paris", "ok", "\n"),
]


def test_parse_responses_cuts_each_valid_response_before_the_token_holding_answer(qwen_tokenizer):
    texts = [text for text, *_ in RESPONSES]
    rollout = helpers.rollout_from_texts(qwen_tokenizer, "Capital?", texts, [ref for _, ref, *_ in RESPONSES])
    assert qwen_tokenizer.eos_token == EOS
    parsed = parse_responses(read_rollout(rollout, len(qwen_tokenizer)), token_bytes(qwen_tokenizer), "R1", EOS)
    assert parsed.status == [status for *_, status, _ in RESPONSES]
    assert parsed.texts == parsed.plain_texts == texts  # the eos each response ends with is not text
    assert parsed.o_prime.source == [0, 3]
    for j, i in enumerate(parsed.o_prime.source):
        text, reference, _, ws = RESPONSES[i]
        cut = text.index("<answer>")
        offsets = offsets_of(qwen_tokenizer, text)
        keep = sum(1 for _, end in offsets if end <= cut)  # the tokens that end before <answer> starts
        head = text[offsets[keep][0] : cut] + "<answer>" + ws
        assert parsed.o_prime.keep[j] == keep
        assert parsed.o_prime.tails[j] == head + reference + " </answer>" + EOS
        assert parsed.o_prime.spans[j] == (len(head), len(head) + len(reference))
    assert RESPONSES[0][0][offsets_of(qwen_tokenizer, RESPONSES[0][0])[parsed.o_prime.keep[0]][0]] == ">"  # merged


# 3. Index the prompts


def test_index_prompts_reads_each_prompt_once_per_uid_and_keys_every_response(qwen_tokenizer):
    a, b, c = (encode(qwen_tokenizer, q) for q in ("question A", "question B is longer", "question C"))
    # uid "a" holds two different prompts (its last response's): that one is its own group
    rollout = make_rollout(
        [a, a, b, c], [[1], [2], [3], [4]], ["x", "y", "x", "x"], ["a", "a", "b", "a"], qwen_tokenizer.pad_token_id
    )
    index = index_prompts(read_rollout(rollout, len(qwen_tokenizer)))
    assert index.group.tolist() == [0, 0, 2, 3]
    assert {g: ids.tolist() for g, ids in index.ids.items()} == {0: a, 2: b, 3: c}
    assert index.keys == [prompt_key(a, "x"), prompt_key(a, "y"), prompt_key(b, "x"), prompt_key(c, "x")]
    assert len(set(index.keys)) == 4


# 4. Debias candidates


def test_debias_candidates_one_per_uid_from_its_first_response_with_a_reference():
    uids, refs = ["a", "a", "b", "c", "c"], ["", "x", "", "yy", "z"]
    plain = debias_candidates(uids, refs, "<eos>", tagged=False)
    assert plain == Candidates(source=[1, 3], keep=[0, 0], tails=[" x <eos>", " yy <eos>"], spans=[(1, 2), (1, 3)])
    tagged = debias_candidates(uids, refs, "<eos>", tagged=True)
    assert tagged.tails == ["<answer> x </answer><eos>", "<answer> yy </answer><eos>"]
    assert tagged.spans == [(9, 10), (9, 11)] and tagged.source == [1, 3]
    assert len(debias_candidates([], [], "<eos>", tagged=False)) == 0


def test_candidates_concatenate_in_order():
    first = Candidates([0], [3], ["t0"], [(0, 1)])
    second = Candidates([2, 1], [0, 0], ["t1", "t2"], [(1, 2), (2, 3)])
    assert first + second == Candidates([0, 2, 1], [3, 0, 0], ["t0", "t1", "t2"], [(0, 1), (1, 2), (2, 3)])
    assert first.source == [0]  # the operands are left as they were


# 5. Tokenize the tails


def test_tokenize_tails_equals_one_tokenizer_call_per_text(qwen_tokenizer):
    tails = [">< answer> Paris </answer>" + EOS, " 能量 🙂 " + EOS, ">< answer> Paris </answer>" + EOS, " x "]
    got = tokenize_tails(qwen_tokenizer, tails)
    assert got.ids == [encode(qwen_tokenizer, t) for t in tails]
    assert [[tuple(o) for o in offsets] for offsets in got.offsets] == [offsets_of(qwen_tokenizer, t) for t in tails]
    assert got.lengths.tolist() == [len(encode(qwen_tokenizer, t)) for t in tails] and got.lengths.dtype == np.int64
    empty = tokenize_tails(qwen_tokenizer, [])
    assert empty.ids == [] and empty.offsets == [] and empty.lengths.tolist() == []


# 6. The length budget

# uids of responses 0..4; o' candidates of responses 0, 1, 2, 4 (3 is invalid); debias candidates of uids a and b
UIDS = ["a", "a", "b", "b", "c"]
O_PRIME = Candidates(source=[0, 1, 2, 4], keep=[5, 8, 2, 3], tails=[""] * 4, spans=[(0, 0)] * 4)
DEBIAS = Candidates(source=[0, 2], keep=[0, 0], tails=[""] * 2, spans=[(0, 0)] * 2)
TAIL_LENGTHS = np.array([3, 3, 4, 2, 4, 11])  # o' rows of 8, 11, 6, 5 tokens; debias rows of 4 and 11


def test_the_budget_drops_long_rows_and_the_responses_of_a_prompt_without_r_prime():
    plan = plan_rows(O_PRIME, DEBIAS, TAIL_LENGTHS, UIDS, limit=10)
    # response 1: 11 > 10; response 2 fits but uid b's debias row (11) does not; response 4 (uid c, no debias) fits
    assert plan.selected.tolist() == [0, 3, 4] and plan.o_prime_rows == 2
    assert plan.response_row == [0, -1, -1, -1, 1]
    assert plan.prompt_row == {"a": 2}
    assert plan.overlength == {1, 2} and plan.debias_overlength == ["b"]


def test_without_a_budget_every_candidate_is_a_row():
    plan = plan_rows(O_PRIME, DEBIAS, TAIL_LENGTHS, UIDS, limit=None)
    assert plan.selected.tolist() == [0, 1, 2, 3, 4, 5] and plan.o_prime_rows == 4
    assert plan.response_row == [0, 1, 2, -1, 3] and plan.prompt_row == {"a": 4, "b": 5}
    assert plan.overlength == frozenset() and plan.debias_overlength == []


def test_a_row_exactly_at_the_budget_fits():
    plan = plan_rows(O_PRIME, DEBIAS, TAIL_LENGTHS, UIDS, limit=11)
    assert plan.selected.tolist() == [0, 1, 2, 3, 4, 5] and plan.overlength == frozenset()


# 7. Assemble the rows


def test_assemble_rows_writes_prompt_kept_tokens_tail_and_mask_of_each_chosen_candidate(qwen_tokenizer):
    texts = ["<think>x</think><answer>Paris</answer>", "<think>a longer one</think> <answer>  Lyon </answer>"]
    prompts = [helpers.chat_prompt_ids(qwen_tokenizer, q) for q in ("Capital?", "Capital of France, please?")]
    responses = [encode(qwen_tokenizer, t) + [qwen_tokenizer.eos_token_id] for t in texts]
    rollout = make_rollout(prompts, responses, ["Paris", "Paris"], ["p", "q"], qwen_tokenizer.pad_token_id)
    tokens = read_rollout(rollout, len(qwen_tokenizer))
    assert qwen_tokenizer.eos_token == EOS
    parsed = parse_responses(tokens, token_bytes(qwen_tokenizer), "R1", EOS)
    candidates = parsed.o_prime + debias_candidates(tokens.uids, tokens.references, EOS, tagged=False)
    tails = tokenize_tails(qwen_tokenizer, candidates.tails)
    # rows: the o' candidate of response 1, then the debias candidate of uid "p" (candidates 0 and 3 left out)
    plan = RowPlan(np.array([1, 2]), 1, [-1, 0], {"p": 1}, frozenset(), [])
    rows, mask = assemble_rows(tokens, index_prompts(tokens), candidates, tails, plan, pad_id=-7)

    def expected(prompt, kept, tail, span):
        ids = kept + encode(qwen_tokenizer, tail)
        overlap = [0] * len(kept) + [s < span[1] and e > span[0] and e > s for s, e in offsets_of(qwen_tokenizer, tail)]
        return prompt, ids, overlap

    want = [
        expected(prompts[1], responses[1][: parsed.o_prime.keep[1]], candidates.tails[1], candidates.spans[1]),
        expected(prompts[0], [], " Paris " + EOS, (1, 6)),
    ]
    p_len, r_len = max(len(p) for p, _, _ in want), max(len(r) for _, r, _ in want)
    assert rows.prompts.tolist() == [[-7] * (p_len - len(p)) + p for p, _, _ in want]
    assert rows.responses.tolist() == [r + [-7] * (r_len - len(r)) for _, r, _ in want]
    assert mask.tolist() == [[bool(x) for x in m] + [False] * (r_len - len(m)) for _, _, m in want]
    assert rows.prompt_lengths.tolist() == [len(p) for p, _, _ in want]
    assert rows.response_lengths.tolist() == [len(r) for _, r, _ in want]
    masked = [t for t, m in zip(rows.responses[0].tolist(), mask[0].tolist()) if m]
    assert qwen_tokenizer.decode(masked).strip() == "Paris"
    nothing = dataclasses.replace(plan, selected=np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="at least one"):
        assemble_rows(tokens, index_prompts(tokens), candidates, tails, nothing, 0)


def test_the_batch_is_built_once_and_stays_as_built(qwen_tokenizer):
    rollout = helpers.rollout_from_texts(qwen_tokenizer, "Capital?", ["<think>x</think><answer>Paris"], "Paris")
    scoring = build_scoring_batch(rollout, qwen_tokenizer, ScoringConfig())
    for field in ("rows", "answer_mask", "status", "prompt_row"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(scoring, field, None)
    assert scoring.data is scoring.data  # the padded layout is still built once, on first read
