"""The LLM judge client and validation scoring with a judge, against a canned endpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import pytest

from rlpr.evaluation.judge import (
    JUDGE_SYSTEM_PROMPT,
    PAPER_CHOICE_SYSTEM_PROMPT,
    PAPER_MAX_TOKENS,
    PAPER_SYSTEM_PROMPT,
    JudgeConfig,
    JudgeError,
    LLMJudge,
    parse_paper_verdict,
    parse_verdict,
)
from rlpr.evaluation.validation import compute_score, grade_response


def _candidate(body: dict) -> str:
    """The first line of what is judged: the extracted answer (``answer`` protocol) or the full response (``paper``)."""
    user = body["messages"][-1]["content"]
    marker = "Candidate answer:\n" if "Candidate answer:\n" in user else "Student's response:\n"
    return user.split(marker, 1)[1].split("\n", 1)[0].removeprefix("<answer>")


def body_is_paper(body: dict) -> bool:
    return "Student's response:" in body["messages"][-1]["content"]


class CannedJudge:
    """Answers YES / a boxed Y for 'good...' candidates, NO / N for 'bad...', and fails on cue; counts the requests
    per candidate (``calls``)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def __call__(self, body: dict) -> str | int | bytes:
        cand = _candidate(body)
        with self.lock:
            self.calls[cand] += 1
            n = self.calls[cand]
        if cand.startswith("slow"):
            time.sleep(0.15)
        if cand.startswith("flaky") and n == 1:
            return 503
        if cand.startswith("broken"):
            return 500
        if cand.startswith("forbidden"):
            return 403
        if cand.startswith("notjson"):
            return b"<html>oops</html>"
        if cand.startswith("hang"):
            time.sleep(1.0)
        if body_is_paper(body):
            # a reasoning judge: some thinking (with a stray box), then the verdict in the LAST box
            picked = cand.split("pick ", 1)[1][:1] if "pick " in cand else None
            verdict = {"good": "\\boxed{Y}", "bad": "\\boxed{N}", "maybe": "Perhaps.", "nothing": "\\boxed{none}"}
            box = f"\\boxed{{{picked}}}" if picked else next((v for k, v in verdict.items() if k in cand), "\\boxed{Y}")
            return "Let me check. The reference is \\boxed{?} ... " * 3 + box
        verdict = {"good": "YES", "bad": "NO", "maybe": "Perhaps."}
        return next((v for k, v in verdict.items() if k in cand), "YES")


@pytest.fixture
def server(openai_server):
    """(base_url, the fake server, the canned judge behind it)."""
    judge = CannedJudge()
    fake = openai_server(judge)
    return fake.base_url, fake, judge


def _judge(url: str, **kw) -> LLMJudge:
    kw = {"timeout_s": 1.0, "retries": 2, "retry_delay_s": 0.0, **kw}
    return LLMJudge(JudgeConfig(base_url=url, model="judge-model", **kw))


def _run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("YES", True), ("yes.", True), ("  **Yes**", True), ("NO", False), ("No, it differs", False)],
)
def test_parse_verdict_accepts_yes_and_no(reply, expected):
    assert parse_verdict(reply) is expected


@pytest.mark.parametrize("reply", ["Perhaps", "YESNO", "", "The answer is YES", None])
def test_parse_verdict_rejects_anything_else(reply):
    with pytest.raises(JudgeError):
        parse_verdict(reply)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "localhost:8000"},
        {"model": ""},
        {"concurrency": 0},
        {"timeout_s": 0},
        {"retries": -1},
        {"protocol": "yesno"},
        {"max_tokens": 0},
        {"verdict_rule": "strict"},
    ],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs)).split("_")[0].replace("max", "max_tokens")):
        JudgeConfig(**{"base_url": "http://127.0.0.1:1/v1", "model": "m", **kwargs})


def test_request_carries_model_prompt_and_key(server):
    url, state, _ = server
    assert _run(_judge(url, api_key="sk-test", protocol="answer").judge("What is 1+1?", "2", "good two")) is True
    body = state.bodies[-1]
    assert body["model"] == "judge-model" and body["temperature"] == 0.0 and body["max_tokens"] == 8
    assert body["messages"][0] == {"role": "system", "content": JUDGE_SYSTEM_PROMPT}
    user = body["messages"][1]["content"]
    assert "What is 1+1?" in user and "Reference answer:\n2\n" in user
    assert state.headers[-1]["Authorization"] == "Bearer sk-test"


def test_verdicts_and_retry_after_a_server_error(server):
    url, _, canned = server
    judge = _judge(url)
    assert _run(judge.judge("q", "r", "bad one")) is False
    assert _run(judge.judge("q", "r", "flaky good")) is True
    assert canned.calls["flaky good"] == 2  # one 503, then the verdict


@pytest.mark.parametrize(
    ("candidate", "requests"),
    [("broken 1", 3), ("maybe 1", 3), ("notjson 1", 3), ("forbidden 1", 1)],  # 4xx is not retried
)
def test_failures_raise_after_the_retries(server, candidate, requests):
    url, _, canned = server
    with pytest.raises(JudgeError):
        _run(_judge(url).judge("q", "r", candidate))
    assert canned.calls[candidate] == requests


def test_timeout_is_a_failure(server):
    url, _, _ = server
    with pytest.raises(JudgeError, match="gave up after 1 attempts .*(ReadTimeout|TimeoutError)"):
        _run(_judge(url, timeout_s=0.3, retries=0).judge("q", "r", "hang 1"))


def test_unreachable_endpoint_is_a_failure():
    with pytest.raises(JudgeError):
        _run(_judge("http://127.0.0.1:9/v1", retries=1).judge("q", "r", "x"))


def test_concurrency_is_bounded(server):
    url, state, _ = server
    judge = _judge(url, concurrency=2)

    async def many():
        return await asyncio.gather(*(judge.judge("q", "r", f"slow good {i}") for i in range(6)))

    assert _run(many()) == [True] * 6
    assert state.peak == 2


# --- validation scoring with the judge -------------------------------------------------------------------------

EXTRA = {"question": "How fast is it?", "answer_type": "text"}
KEYS = {"score", "acc", "format", "has_answer", "judge_used", "judge_failed", "grade_timeout", "graded"}


def _score(url, response, ground_truth="3 m/s", data_source="WebInstruct-verified", extra=EXTRA, **kw):
    kw = {"judge_base_url": url, "judge_model": "m", "judge_timeout": 1.0, "judge_retries": 1, **kw}
    return _run(compute_score(data_source, response, ground_truth, extra, **kw))


def test_judge_rescues_a_rule_miss(server):
    url, _, _ = server
    out = _score(url, "<think>t</think> <answer>good: three metres per second</answer>")
    assert out == {
        "score": 1.0,
        "acc": 1.0,
        "format": 1.0,
        "has_answer": 1.0,
        "judge_used": 1.0,
        "judge_failed": 0.0,
        "grade_timeout": 0.0,
        "graded": 1.0,
    }


def test_judge_can_confirm_a_miss(server):
    url, _, _ = server
    out = _score(url, "<answer>bad: 5 m/s</answer>")
    assert out["acc"] == 0.0 and out["judge_used"] == 1.0 and out["judge_failed"] == 0.0 and out["format"] == 0.0


def test_rule_hit_never_calls_the_judge_and_the_answer_protocol_skips_multiple_choice(server):
    url, _, canned = server
    before = sum(canned.calls.values())
    assert _score(url, "<answer>3 m/s</answer>")["judge_used"] == 0.0
    out = _score(url, "<answer>good B</answer>", "C", "GPQA-diamond", {"question": "q"}, judge_protocol="answer")
    assert out["acc"] == 0.0 and out["judge_used"] == 0.0
    out = _score(url, "good, but no answer tag", judge_protocol="answer")
    assert out["has_answer"] == 0.0 and out["judge_used"] == 0.0
    assert sum(canned.calls.values()) == before


# --- the paper's protocol (the default) ---------------------------------------------------------------------------

FULL = "good reasoning first: the car covers 6 m in 2 s.\n<think>so 3</think> <answer>three metres per second</answer>"


def test_paper_protocol_sends_the_full_response_and_asks_for_a_boxed_verdict(server):
    url, state, _ = server
    out = _score(url, FULL, "3 m/s", "Math-500_Avg2", {"question": "How fast is it?"})
    assert out["acc"] == 1.0 and out["judge_used"] == 1.0 and out["judge_failed"] == 0.0
    body = state.bodies[-1]
    assert body["max_tokens"] == PAPER_MAX_TOKENS == 12288
    assert body["messages"][0] == {"role": "system", "content": PAPER_SYSTEM_PROMPT}
    user = body["messages"][1]["content"]
    assert "How fast is it?" in user and "Reference answer:\n3 m/s\n" in user
    assert FULL in user  # the response as generated, reasoning and tags included, not the extracted answer


def test_paper_protocol_judges_a_response_without_an_extracted_answer(server):
    url, _, _ = server
    out = _score(url, "good: I get three metres per second")
    assert out["has_answer"] == 0.0 and out["judge_used"] == 1.0 and out["acc"] == 1.0
    out = _score(url, "bad: I get five")
    assert out["has_answer"] == 0.0 and out["judge_used"] == 1.0 and out["acc"] == 0.0


@pytest.mark.parametrize(
    ("source", "response", "reference", "acc"),
    [
        ("gpqa_diamond_Avg4", "I pick B, the photon.\n<answer>the photon</answer>", "B", 1.0),
        ("GPQA-diamond", "I pick B, the photon.\n<answer>the photon</answer>", "C", 0.0),
        ("MMLUPro-1000_Avg2", "I pick J after all.\n<answer>the last one</answer>", "J", 1.0),
        ("WebInstruct-verified-val_Avg2", "nothing fits.\n<answer>none of them</answer>", "A", 0.0),
    ],
)
def test_paper_protocol_grades_multiple_choice_by_the_letter_the_judge_finds(server, source, response, reference, acc):
    url, state, _ = server
    out = _score(url, response, reference, source, {"question": "Which particle carries light?"})
    assert out["acc"] == acc and out["judge_used"] == 1.0 and out["judge_failed"] == 0.0
    assert state.bodies[-1]["messages"][0]["content"] == PAPER_CHOICE_SYSTEM_PROMPT


def test_paper_protocol_unboxed_reply_is_a_counted_failure(server):
    url, _, canned = server
    out = _score(url, "maybe three")  # the server replies "Perhaps." with no box: retried, then counted
    assert out["judge_failed"] == 1.0 and out["acc"] == 0.0
    assert canned.calls["maybe three"] == 2


@pytest.mark.parametrize(
    ("reply", "reference", "multiple_choice", "expected"),
    [
        ("thinking \\boxed{N} ... final: \\boxed{Y}", "3", False, True),
        ("\\boxed{ n }", "3", False, False),
        ("\\boxed{YES}", "3", False, True),
        ("so \\boxed{(b)}", "B", True, True),
        ("\\boxed{C}", "B", True, False),
        ("\\boxed{none}", "B", True, False),
    ],
)
def test_parse_paper_verdict_lenient(reply, reference, multiple_choice, expected):
    assert parse_paper_verdict(reply, reference, multiple_choice, "lenient") is expected


@pytest.mark.parametrize(
    ("reply", "multiple_choice"),
    [("Y", False), ("\\boxed{maybe}", False), ("\\boxed{Y", False), ("\\boxed{BC}", True), ("B", True)],
)
def test_parse_paper_verdict_rejects_anything_else(reply, multiple_choice):
    for rule in ("official", "lenient"):
        with pytest.raises(JudgeError, match="boxed"):
            parse_paper_verdict(reply, "B", multiple_choice, rule)


def test_per_benchmark_judge_endpoints(server, openai_server):
    url, state, _ = server
    with openai_server(CannedJudge()) as strong_state:
        strong_url = strong_state.base_url
        endpoints = {"TheoremQA": {"base_url": strong_url, "model": "strong"}, "minerva": {"model": "strong-too"}}
        out = _score(url, "good: 7", "12", "TheoremQA_Avg2", {"question": "q"}, judge_endpoints=endpoints)
        assert out["judge_used"] == 1.0 and strong_state.bodies[-1]["model"] == "strong"
        _score(url, "good: 8", "12", "Minerva", {"question": "q"}, judge_endpoints=endpoints)
        _score(url, "good: 9", "12", "MATH-500", {"question": "q"}, judge_endpoints=endpoints)
    assert [b["model"] for b in state.bodies[-2:]] == ["strong-too", "m"]
    assert len(strong_state.bodies) == 1
    with pytest.raises(ValueError, match="judge_endpoints key 'Theorems'"):
        _score(url, "good: 7", "12", "TheoremQA", {"question": "q"}, judge_endpoints={"Theorems": {"model": "x"}})


def test_judge_failure_is_counted_not_hidden(server):
    url, _, _ = server
    out = _score(url, "<answer>broken reply</answer>")
    assert set(out) == KEYS
    assert out["judge_failed"] == 1.0 and out["judge_used"] == 1.0 and out["acc"] == 0.0


def test_judge_sources_limit_where_the_judge_runs(server):
    url, _, _ = server
    out = _score(url, "<answer>good but other words</answer>", judge_sources=["TheoremQA"])
    assert out["judge_used"] == 0.0 and out["acc"] == 0.0
    out = _score(url, "<answer>good words</answer>", data_source="TheoremQA_Avg2", judge_sources=["TheoremQA"])
    assert out["judge_used"] == 1.0 and out["acc"] == 1.0


def test_judge_needs_the_question(server):
    url, _, _ = server
    with pytest.raises(ValueError, match="question"):
        _score(url, "<answer>good x</answer>", extra={"answer_type": "text"})


def test_grade_response_reports_the_prediction(server):
    url, _, _ = server
    grade = _run(grade_response("WebInstruct-verified", "<answer>good 3</answer>", "3 m/s", EXTRA, judge=_judge(url)))
    assert grade.prediction == "good 3" and grade.acc == 1.0


def test_a_literal_judge_api_key_is_refused_and_the_environment_one_is_sent(server, monkeypatch):
    url, state, _ = server
    with pytest.raises(ValueError, match="judge_api_key: a literal API key .*set reward_kwargs.judge_api_key_env") as e:
        _score(url, "<answer>good: 7</answer>", "12", judge_api_key="sk-literal-123")
    assert "sk-literal-123" not in str(e.value) and state.bodies == []  # refused before any call
    monkeypatch.delenv("RLPR_JUDGE_KEY_FOR_TEST", raising=False)
    with pytest.raises(ValueError, match="judge_api_key_env=RLPR_JUDGE_KEY_FOR_TEST: that environment variable is not"):
        _score(url, "<answer>good: 7</answer>", "12", judge_api_key_env="RLPR_JUDGE_KEY_FOR_TEST")
    monkeypatch.setenv("RLPR_JUDGE_KEY_FOR_TEST", "sk-from-env-456")
    out = _score(url, "<answer>good: 7</answer>", "12", judge_api_key_env="RLPR_JUDGE_KEY_FOR_TEST")
    assert out["judge_used"] == 1.0 and out["acc"] == 1.0
    assert [h["Authorization"] for h in state.headers] == ["Bearer sk-from-env-456"]
    assert "sk-from-env-456" not in repr(out)


def test_each_judge_endpoint_takes_its_key_from_its_own_variable(server, openai_server, monkeypatch):
    url, state, _ = server
    refused = r"judge_endpoints\[Minerva\].api_key: a literal .*\[Minerva\].api_key_env"
    with pytest.raises(ValueError, match=refused) as e:
        _score(url, "good: 7", "12", "Minerva", {"question": "q"}, judge_endpoints={"Minerva": {"api_key": "sk-lit"}})
    assert "sk-lit" not in str(e.value)
    monkeypatch.setenv("RLPR_DEFAULT_KEY", "sk-default")
    monkeypatch.setenv("RLPR_STRONG_KEY", "sk-strong")
    with openai_server(CannedJudge()) as strong_state:
        endpoints = {"TheoremQA": {"base_url": strong_state.base_url, "api_key_env": "RLPR_STRONG_KEY"}}
        kw = {"judge_api_key_env": "RLPR_DEFAULT_KEY", "judge_endpoints": endpoints}
        _score(url, "good: 7", "12", "TheoremQA_Avg2", {"question": "q"}, **kw)
        _score(url, "good: 8", "12", "Minerva", {"question": "q"}, **kw)
        monkeypatch.delenv("RLPR_STRONG_KEY")
        with pytest.raises(ValueError, match=r"judge_endpoints\[TheoremQA\].api_key_env=RLPR_STRONG_KEY: that envir"):
            _score(url, "good: 9", "12", "TheoremQA", {"question": "q"}, **kw)
    assert [h["Authorization"] for h in strong_state.headers] == ["Bearer sk-strong"]
    assert [h["Authorization"] for h in state.headers] == ["Bearer sk-default"]
