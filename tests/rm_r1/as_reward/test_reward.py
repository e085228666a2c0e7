"""rm_r1.as_reward.reward: a judge as the reward of an RL run, against a local test-controlled chat server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

from rm_r1.as_reward import reward as jr
from rm_r1.judge.instructions import SINGLE_POINTWISE_INSTRUCTIONS
from rm_r1.judge.verdicts import VERDICT_TAGS

POLICY, REFERENCE = "POLICY-REPLY", "REFERENCE-REPLY"


def user_text(body: dict) -> str:
    return body["messages"][-1]["content"]


def policy_side(body: dict) -> str:
    """The side the policy's reply is shown on in a pairwise request."""
    text = user_text(body)
    return "A" if text.index(POLICY) < text.index(REFERENCE) else "B"


def score(server, response: str = POLICY, index: int = 0, **kwargs) -> dict:
    """compute_score's numbers (its detail string is read by ``detail``)."""
    return numbers(scored(server, response, index, **kwargs))


def scored(server, response: str = POLICY, index: int = 0, info: dict | None = None, **kwargs) -> dict:
    kwargs.setdefault("base_url", server.base_url)
    kwargs.setdefault("model", "judge")
    info = {"index": index, jr.CONTEXT_KEY: "Q?"} if info is None else info
    return asyncio.run(jr.compute_score("src", response, REFERENCE, info, **kwargs))


def numbers(result: dict) -> dict:
    assert isinstance(result[jr.DETAIL_KEY], str)
    return {key: value for key, value in result.items() if key != jr.DETAIL_KEY}


def detail(result: dict) -> dict:
    return json.loads(result[jr.DETAIL_KEY])


# ---------------------------------------------------------------------------------------------------------------------
# the pure reward maps, by hand


@pytest.mark.parametrize(
    ("wins", "expected"),
    [
        ([True], (1.0, 1.0)),
        ([False], (-1.0, 1.0)),
        ([True, True, False, None], (1 / 3, 2 / 3)),  # w=2, l=1: (2-1)/3; agreement 2/3; the failure casts no vote
        ([True, False], (0.0, 0.5)),
        ([None, None], (0.25, 0.0)),  # no vote: the neutral reward
        ([], (0.25, 0.0)),
    ],
)
def test_pairwise_reward_by_hand(wins, expected):
    assert jr.pairwise_reward(wins, neutral=0.25) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([10], (1.0, 1.0)),
        ([1], (0.0, 1.0)),
        ([7, 4, None], (0.5, 0.5)),  # mean 5.5 -> (5.5-1)/9; agreement: one of two parsed scores is the mode
        ([3, 3, 9], ((5 - 1) / 9, 2 / 3)),
        ([None], (0.7, 0.0)),
    ],
)
def test_pointwise_reward_by_hand(scores, expected):
    assert jr.pointwise_reward(scores, neutral=0.7) == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------------------------------------------------------------
# through HTTP


def test_pairwise_both_orders_cancels_a_position_biased_judge(openai_server):
    server = openai_server(lambda body: f"thinking... {VERDICT_TAGS['A']}")  # always prefers Chatbot A
    result = score(server, k=2, both_orders=True)
    # per sample index: the policy wins as A and loses as B -> w = l = 2, R = 0, agreement 1/2
    assert result == {
        "score": 0.0,
        "judge_calls": 4.0,
        "judge_votes": 4.0,
        "judge_failed": 0.0,
        "judge_agreement": 0.5,
        "judge_truncated": 0.0,
        "judge_neutral": 0.0,
        "judge_cache_hits": 0.0,
    }
    assert sorted(policy_side(b) for b in server.bodies) == ["A", "A", "B", "B"]
    assert server.paths == ["/v1/chat/completions"] * 4 and {b["model"] for b in server.bodies} == {"judge"}


def test_pairwise_seeded_order_and_a_judge_that_knows_the_policy(openai_server):
    server = openai_server(lambda body: VERDICT_TAGS[policy_side(body)])
    result = score(server, k=6, seed=3, temperature=0.7)
    assert (result["score"], result["judge_calls"], result["judge_agreement"]) == (1.0, 6.0, 1.0)
    sides = [policy_side(b) for b in server.bodies]
    expected = ["B" if jr.policy_shown_as_b(3, "src/0", j) else "A" for j in range(6)]
    assert sorted(sides) == sorted(expected) and {"A", "B"} <= set(expected)  # the order is the seeded coin's
    assert {b["temperature"] for b in server.bodies} == {0.7} and len({b["seed"] for b in server.bodies}) == 6


def test_pairwise_prefers_the_reference_three_to_one(openai_server):
    # calls 0..3 (by seed in the body): the reference wins three times, the policy once -> R = (1 - 3) / 4
    order: list[int] = []

    def answer(body):
        with threading.Lock():
            order.append(body["seed"])
        winner_is_policy = len(order) == 1
        side = policy_side(body) if winner_is_policy else ("B" if policy_side(body) == "A" else "A")
        return VERDICT_TAGS[side]

    result = score(server := openai_server(answer), k=4, concurrency=1)
    assert result["score"] == pytest.approx(-0.5, abs=1e-12) and result["judge_agreement"] == 0.75
    assert len(server.bodies) == 4


def test_failures_are_counted_and_get_the_neutral_reward(openai_server):
    server = openai_server(lambda body: 503)
    result = score(server, k=3, retries=1, backoff=0.0, neutral_reward=0.125)
    assert len(server.bodies) == 6  # 3 calls, each tried twice
    assert result == {
        "score": 0.125,
        "judge_calls": 3.0,
        "judge_votes": 0.0,
        "judge_failed": 3.0,
        "judge_agreement": 0.0,
        "judge_truncated": 0.0,
        "judge_neutral": 1.0,
        "judge_cache_hits": 0.0,
    }

    server = openai_server(lambda body: 400)  # refused: not retried
    result = score(server, k=2, retries=3)
    assert len(server.bodies) == 2 and result["judge_failed"] == 2.0 and result["score"] == 0.0  # pairwise neutral


def test_a_malformed_reply_is_retried_like_a_busy_server(openai_server):
    answers = iter([b"<html>proxy error</html>"])
    server = openai_server(lambda body: next(answers, VERDICT_TAGS[policy_side(body)]))
    result = score(server, retries=1, backoff=0.0)
    assert len(server.bodies) == 2 and (result["judge_failed"], result["score"]) == (0.0, 1.0)


def test_unparsable_verdicts_are_failures_that_cast_no_vote(openai_server):
    answers = iter([VERDICT_TAGS["A"] + VERDICT_TAGS["B"], "no verdict", None])

    def answer(body):
        text = next(answers)
        return VERDICT_TAGS[policy_side(body)] if text is None else text

    result = score(openai_server(answer), k=3, concurrency=1)
    assert (result["judge_votes"], result["judge_failed"], result["score"], result["judge_neutral"]) == (
        1.0,
        2.0,
        1.0,
        0.0,
    )


def test_pointwise_scores_the_single_reply(openai_server):
    scores = iter(["Score: \\boxed{8}", "Score: \\boxed{5}", "Score: \\boxed{11}", "\\boxed{8} then \\boxed{8}"])
    server = openai_server(lambda body: next(scores))
    result = score(server, mode="pointwise", k=4, concurrency=1)
    # parsed 8, 5, 8 (11 is out of range: a failure) -> mean 7 -> (7 - 1) / 9; agreement 2/3
    assert result["score"] == pytest.approx(6 / 9, abs=1e-12)
    assert (result["judge_votes"], result["judge_failed"]) == (3.0, 1.0)
    assert result["judge_agreement"] == pytest.approx(2 / 3, abs=1e-12)
    body = server.bodies[0]
    assert body["messages"][0] == {"role": "system", "content": SINGLE_POINTWISE_INSTRUCTIONS}
    assert POLICY in user_text(body) and REFERENCE not in user_text(body)

    server = openai_server(lambda body: "nothing")
    assert score(server, mode="pointwise")["score"] == 0.5  # pointwise neutral: the middle of [0, 1]


def test_every_sample_returns_the_same_keys(openai_server):
    server = openai_server(lambda body: VERDICT_TAGS["A"] if "ok" in user_text(body) else 500)
    results = [
        scored(server, response=f"{POLICY} {r}", retries=0, max_response_chars=20)
        for r in ("ok", "fails", "ok" + "x" * 40)
    ]
    keys = {tuple(r) for r in results}
    assert keys == {("score", *jr.EXTRA_KEYS, jr.DETAIL_KEY)}
    assert [r["judge_failed"] for r in results] == [0.0, 1.0, 0.0]
    assert [r["judge_truncated"] for r in results] == [0.0, 0.0, 1.0]


def test_a_long_reply_is_truncated_and_counted(openai_server, small_tokenizer):
    server = openai_server(lambda body: VERDICT_TAGS["A"])
    long_reply = POLICY + " word" * 300
    result = score(server, response=long_reply, max_response_chars=100)
    shown = user_text(server.bodies[0])
    assert result["judge_truncated"] == 1.0 and long_reply[:100] + jr.TRUNCATION_MARK in shown
    assert long_reply[:101] not in shown

    text, cut = jr.truncate_reply(long_reply, small_tokenizer, max_tokens=50, max_chars=10)
    ids = small_tokenizer.encode(long_reply, add_special_tokens=False)
    assert cut and text == small_tokenizer.decode(ids[:50]) + jr.TRUNCATION_MARK
    assert jr.truncate_reply("short", small_tokenizer, 50, 1) == ("short", False)  # tokens, not characters


def test_verls_router_address_and_tokenizer_name(openai_server, small_tokenizer):
    server = openai_server(lambda body: VERDICT_TAGS[policy_side(body)])
    result = asyncio.run(
        jr.compute_score(
            "src",
            POLICY,
            REFERENCE,
            {"index": 1, jr.CONTEXT_KEY: "Q?"},
            reward_router_address=server.address,
            reward_model_tokenizer=small_tokenizer,
            base_url="http://unused:1/v1",
        )
    )
    assert result["score"] == 1.0
    assert server.paths == ["/v1/chat/completions"] and server.bodies[0]["model"] == small_tokenizer.name_or_path


def test_requests_in_flight_are_bounded(openai_server):
    def answer(body):
        time.sleep(0.05)
        return VERDICT_TAGS["A"]

    server = openai_server(answer)

    async def batch():
        info = {jr.CONTEXT_KEY: "Q?"}
        return await asyncio.gather(
            *(
                jr.compute_score(
                    "src",
                    POLICY,
                    REFERENCE,
                    {**info, "index": i},
                    k=4,
                    concurrency=3,
                    base_url=server.base_url,
                    model="m",
                )
                for i in range(4)
            )
        )

    results = asyncio.run(batch())
    assert len(server.bodies) == 16 and all(r["judge_calls"] == 4.0 for r in results)
    assert 1 < server.peak <= 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "listwise"}, "mode"),
        ({"k": 0}, "k must be > 0"),
        ({"verdict_rule": "tail"}, "verdict rule"),
        ({"family": "chat"}, "prompt family"),
        ({"temprature": 0.5}, "temprature"),
        ({"base_url": None}, "needs an endpoint"),
        ({"base_url": "127.0.0.1:9/v1"}, "base_url must be an http"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    kwargs = {"base_url": "http://127.0.0.1:9/v1", "model": "m", **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        asyncio.run(jr.compute_score("src", POLICY, REFERENCE, {"index": 0, jr.CONTEXT_KEY: "Q?"}, **kwargs))


def test_missing_context_or_reference_is_named():
    kwargs = {"base_url": "http://127.0.0.1:9/v1", "model": "m"}
    with pytest.raises(ValueError, match="judge_context"):
        asyncio.run(jr.compute_score("src", POLICY, REFERENCE, {"index": 0}, **kwargs))
    with pytest.raises(ValueError, match="ground_truth"):
        asyncio.run(jr.compute_score("src", POLICY, "", {"index": 0, jr.CONTEXT_KEY: "Q?"}, **kwargs))


def test_context_from_a_parquet_round_trip(tmp_path):
    import pandas as pd

    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": "and?"},
    ]
    pd.DataFrame({"extra_info": [{jr.CONTEXT_KEY: messages}]}).to_parquet(tmp_path / "x.parquet")
    info = pd.read_parquet(tmp_path / "x.parquet")["extra_info"][0]
    assert jr.judge_context(info) == messages
    shown = jr.single_reply_messages(jr.judge_context(info), "R", "reasoning")
    assert len(shown) == 1 and "User: and?\n\nChatbot: R" in shown[0]["content"]


# ---------------------------------------------------------------------------------------------------------------------
# failures by kind, deadlines, verl's router, verl's data convention, one pool and identical requests once


def test_failures_are_counted_by_kind_with_an_example(openai_server):
    answers = iter([400, "no verdict here", b"<html>proxy</html>", 503])
    server = openai_server(lambda body: next(answers))
    result = scored(server, k=4, concurrency=1, retries=0)
    assert numbers(result)["judge_failed"] == 4.0
    failures = detail(result)["failures"]
    assert sorted(failures) == ["http_400", "http_503", "malformed", "no_verdict"]
    assert all(count == 1 for count, _ in failures.values())
    assert "HTTP 400 from " + server.base_url in failures["http_400"][1]
    assert (
        "no verdict under rule 'anywhere'" in failures["no_verdict"][1]
        and "no verdict here" in failures["no_verdict"][1]
    )
    assert detail(result)["endpoint"] == server.base_url + "/chat/completions"
    assert len(detail(result)["latencies"]) == 4  # every call was sent

    pointwise = scored(openai_server(lambda body: "no score"), mode="pointwise", k=2)
    assert detail(pointwise)["failures"] == {"no_score": [2, detail(pointwise)["failures"]["no_score"][1]]}


def test_a_refusal_wrapped_by_verls_router_is_sent_once(openai_server):
    server = openai_server(lambda body: (500, b"Internal Server Error"))
    result = asyncio.run(
        jr.compute_score(
            "src", POLICY, REFERENCE, {"index": 0, jr.CONTEXT_KEY: "Q?"},
            reward_router_address=server.address, model="judge", k=2, retries=3, backoff=0.0,
        )
    )  # fmt: skip
    assert len(server.bodies) == 2  # before: 2 x (retries + 1) = 8
    assert list(detail(result)["failures"]) == ["router_error"] and result["judge_failed"] == 2.0


def test_a_hung_judge_is_bounded_by_the_call_deadline(openai_server):
    def hang(body):
        time.sleep(3)
        return VERDICT_TAGS["A"]

    started = time.monotonic()
    result = scored(openai_server(hang), k=2, timeout=30.0, retries=3, deadline=0.5)
    assert time.monotonic() - started < 2.0
    assert detail(result)["failures"]["deadline"][0] == 2 and result["score"] == 0.0


@pytest.mark.parametrize(
    ("info", "shown"),
    [
        ({"question": "What is 2+2?"}, "What is 2+2?"),  # verl's example data
        ({"raw_prompt": [{"role": "user", "content": "Name a prime."}]}, "Name a prime."),  # verl's agent loop
        ({"question": "the question", jr.CONTEXT_KEY: "the context"}, "the context"),  # ours first
    ],
)
def test_the_context_from_verls_conventions(openai_server, info, shown):
    server = openai_server(lambda body: VERDICT_TAGS[policy_side(body)])
    result = scored(server, info={"index": 0, **info})
    assert result["score"] == 1.0 and shown in user_text(server.bodies[0])


def test_no_context_at_all_is_named():
    with pytest.raises(
        ValueError, match=r"none of \['judge_context', 'question', 'raw_prompt'\].*keys present: \['index'\]"
    ):
        jr.judge_context({"index": 3})
    with pytest.raises(ValueError, match="extra_info\\['question'\\] must hold"):
        jr.judge_context({"question": ""})


def test_identical_requests_are_sent_once_over_one_kept_alive_pool(openai_server):
    server = openai_server(lambda body: VERDICT_TAGS[policy_side(body)])

    async def group():
        # a GRPO group of 8 replies to prompt 0: replies 0-3 identical, 4-7 distinct; k=1 in both orders
        replies = [POLICY] * 4 + [f"{POLICY} {i}" for i in range(4)]
        info = {"index": 0, jr.CONTEXT_KEY: "Q?"}
        kwargs = {"base_url": server.base_url, "model": "m", "both_orders": True, "concurrency": 4}
        return await asyncio.gather(*(jr.compute_score("src", r, REFERENCE, info, **kwargs) for r in replies))

    results = asyncio.run(group())
    assert len(server.bodies) == 2 * 5  # 5 distinct replies x 2 orders; before: 16
    assert sum(r["judge_cache_hits"] for r in results) == 6.0
    assert all(r["score"] == 1.0 and r["judge_votes"] == 2.0 for r in results)
    assert len(set(server.ports)) <= 4  # one pool for every sample; before: a pool per sample


def test_a_literal_api_key_is_refused_and_the_environment_one_is_sent(openai_server, monkeypatch):
    server = openai_server(lambda body: VERDICT_TAGS["A"])
    with pytest.raises(ValueError, match="literal API key.*api_key_env") as error:
        score(server, api_key="sk-secret-123")
    assert "sk-secret-123" not in str(error.value)
    with pytest.raises(ValueError, match="'JUDGE_TEST_KEY', which is not set"):
        score(server, api_key_env="JUDGE_TEST_KEY")
    monkeypatch.setenv("JUDGE_TEST_KEY", "sk-from-env")
    result = scored(server, api_key_env="JUDGE_TEST_KEY")
    assert server.headers[-1]["Authorization"] == "Bearer sk-from-env"
    assert "sk-from-env" not in json.dumps(result) and "sk-from-env" not in repr(jr.JudgeSettings(api_key_env="X"))


def test_the_prompt_is_bounded_by_the_judges_context(openai_server, small_tokenizer):
    server = openai_server(lambda body: VERDICT_TAGS[policy_side(body)])
    long_reply = POLICY + " word" * 400
    kwargs = {"reward_model_tokenizer": small_tokenizer, "both_orders": True, "max_new_tokens": 64}

    def prompt_tokens(body) -> int:
        return len(
            small_tokenizer.apply_chat_template(
                body["messages"], add_generation_prompt=True, tokenize=True, return_dict=False
            )
        )

    full = scored(server, response=long_reply, **kwargs)
    longest = max(prompt_tokens(b) for b in server.bodies)
    assert full["judge_truncated"] == 0.0 and longest > 1000
    server.bodies.clear()
    result = scored(server, response=long_reply, max_model_len=900, **kwargs)
    assert result["judge_truncated"] == 1.0 and result["judge_votes"] == 2.0
    sizes = [prompt_tokens(b) for b in server.bodies]
    assert all(900 - 64 - 40 <= n <= 900 - 64 for n in sizes), sizes  # cut to fit, not far below the bound
    assert all(jr.TRUNCATION_MARK in user_text(b) for b in server.bodies)
    server.bodies.clear()
    result = scored(server, response=long_reply, max_model_len=600, **kwargs)  # the instructions alone do not fit
    assert server.bodies == [] and list(detail(result)["failures"]) == ["too_long"] and result["judge_failed"] == 2.0


def test_the_rl_recipes_read_a_reasoning_judges_verdict_after_its_thinking(openai_server):
    import yaml

    from rm_r1.judge.verdicts import VERDICT_MARKS

    recipe = yaml.safe_load((Path(__file__).parents[3] / "configs/judge_reward/grpo.yaml").read_text())
    rule = recipe["reward"]["custom_reward_function"]["reward_kwargs"]["verdict_rule"]

    def reasoning_judge(body):  # weighs both marks while thinking, then names the policy's side
        side = policy_side(body)
        other = "A" if side == "B" else "B"
        return (
            f"<think>Is it {VERDICT_MARKS[other]}? Or {VERDICT_MARKS[side]}? Let me check.</think>\n"
            f"{VERDICT_TAGS[side]}"
        )

    result = score(openai_server(reasoning_judge), k=2, both_orders=True, verdict_rule=rule)
    assert (result["score"], result["judge_votes"]) == (1.0, 4.0)  # before ("anywhere"): no vote, neutral 0
