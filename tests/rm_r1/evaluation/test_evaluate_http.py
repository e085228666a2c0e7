"""``python -m rm_r1.evaluate`` end to end against a small OpenAI-compatible server started by the test.

The server knows every pair's right answer (it renders the comparisons itself with ``rm_r1.judge.prompts``), so it can
answer right, wrong, garbage or fail on purpose; expected scores are computed by hand or from the policy.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from pathlib import Path

import pytest

from harness.generation import GenerationRequest, OpenAIBackend, Sampling, request_seed
from rm_r1.evaluation.benchmarks import load_benchmark, replace_surrogates_in_pairs
from rm_r1.evaluation.evaluate import RESULTS_FILE, main
from rm_r1.evaluation.scorers import score_rmb
from rm_r1.judge.pointwise import build_pointwise_messages
from rm_r1.judge.prompts import build_judge_messages

DATA = Path(__file__).parent / "eval_data"
MAX_REQUESTS = 400  # no test here needs more; the server refuses beyond this so a bug cannot loop forever


class FakeJudge:
    """Routes a request to the pair it shows and the side the chosen reply is on, then applies ``policy``; serve it
    with ``openai_server(judge)``. Counts the requests per pair (``requests``).

    ``policy(pair_id, chosen_side, payload)`` returns the reply text, or an int HTTP status to fail with.
    """

    def __init__(self, benchmark, source, policy, mode="pairwise"):
        self.policy = policy
        self.routes = {}
        for c in replace_surrogates_in_pairs(load_benchmark(benchmark, source))[0]:  # what the client sends
            for chosen_side, (a, b) in (("A", (c.chosen, c.rejected)), ("B", (c.rejected, c.chosen))):
                if mode == "pairwise":
                    messages = build_judge_messages(c.conversation, a, b, family="instruct")
                else:
                    messages = build_pointwise_messages(c.conversation, a, b, family="instruct")
                self.routes[json.dumps(messages)] = (c.pair_id, chosen_side)
        self.requests = Counter()
        self.lock = threading.Lock()

    def __call__(self, body):
        pair_id, side = self.routes[json.dumps(body["messages"])]
        with self.lock:
            self.requests[pair_id] += 1
            total = sum(self.requests.values())
        return 503 if total > MAX_REQUESTS else self.policy(pair_id, side, body)


def verdict(side):
    return f"<type>Chat</type><rubric>r</rubric><eval>e</eval><answer>[[{side}]]</answer>"


def other(side):
    return "B" if side == "A" else "A"


def _args(server, benchmark, data, out, *extra):
    return [
        "--benchmark", benchmark, "--data", str(data), "--model", "judge-7b", "--prompt-family", "instruct",
        "--backend", "openai", "--base-url", server.base_url, "--output-dir", str(out), "--retries", "2",
        "--backoff", "0.01", "--timeout", "10", "--concurrency", "4", *extra,
    ]  # fmt: skip


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def test_rewardbench_scores_retries_and_parse_failures(openai_server, tmp_path):
    failed_once = set()

    def policy(pair_id, side, payload):
        assert payload["model"] == "judge-7b" and payload["temperature"] == 0.0
        if pair_id not in failed_once:  # every pair's first request fails: the backend must retry
            failed_once.add(pair_id)
            return 500 if len(failed_once) % 2 else 429
        if pair_id == "431":
            return verdict(other(side))
        if pair_id == "3405":
            return "I cannot decide."
        return verdict(side)

    judge = FakeJudge("rewardbench", DATA / "rewardbench_filtered.jsonl", policy)
    with openai_server(judge) as server:
        assert main(_args(server, "rewardbench", DATA / "rewardbench_filtered.jsonl", tmp_path)) == 0
        assert all(n == 2 for n in judge.requests.values()) and len(judge.requests) == 6

    summary = _summary(tmp_path)
    scores = summary["results"]["greedy"]["scores"]
    assert scores["Chat"] == pytest.approx(100 / 195)  # alpacaeval-easy right (100), alpacaeval-hard wrong (95)
    assert scores["Chat Hard"] == 1.0 and scores["Safety"] == 1.0
    assert scores["Reasoning"] == pytest.approx(164 / (984 + 164))  # math-prm unparsed = wrong, hep-python right
    assert scores["score"] == pytest.approx((100 / 195 + 1 + 1 + 164 / 1148) / 4)
    assert summary["results"]["greedy"]["accuracy"] == pytest.approx(4 / 6)
    assert summary["parse_failures"] == 1 and summary["pairs"] == 6 and summary["settings"]["seed"] == 0
    lines = [json.loads(line) for line in (tmp_path / RESULTS_FILE).read_text().splitlines()]
    assert len(lines) == 6 and {line["swap"] for line in lines} == {False, True}
    assert {line["pair_id"]: line["pick"] for line in lines}["431"] == 1
    table = (tmp_path / "summary.md").read_text()
    assert table.splitlines()[2].startswith(f"| greedy | {100 * 100 / 195:.1f} | 100.0 | 100.0 |")


def test_resume_skips_stored_judgements_and_redoes_failed_and_torn_ones(openai_server, tmp_path):
    data = DATA / "rewardbench_filtered.jsonl"
    broken = {"2201"}

    def policy(pair_id, side, payload):
        return 503 if pair_id in broken else verdict(side)

    judge = FakeJudge("rewardbench", data, policy)
    with openai_server(judge) as server:
        assert main(_args(server, "rewardbench", data, tmp_path)) == 1  # still 503 after 2 retries: the run reports it
        assert judge.requests["2201"] == 3
        assert len((tmp_path / RESULTS_FILE).read_text().splitlines()) == 5
        assert not (tmp_path / "summary.json").exists()

        # an interrupt that cut the last write in half
        results = tmp_path / RESULTS_FILE
        kept = results.read_text().splitlines()
        torn_id = json.loads(kept[-1])["pair_id"]
        results.write_text("\n".join(kept[:-1]) + "\n" + kept[-1][: len(kept[-1]) // 2])

        broken.clear()
        judge.requests.clear()
        assert main(_args(server, "rewardbench", data, tmp_path)) == 0
        assert judge.requests == Counter({"2201": 1, torn_id: 1})
        assert _summary(tmp_path)["results"]["greedy"]["accuracy"] == 1.0

        judge.requests.clear()
        assert main(_args(server, "rewardbench", data, tmp_path, "--verdict-rule", "strict_tail")) == 0
        assert not judge.requests  # re-scored from the stored responses under another rule
        assert _summary(tmp_path)["settings"]["verdict_rule"] == "strict_tail"

        with pytest.raises(SystemExit, match="other settings.*seed: 0 -> 1"):
            main(_args(server, "rewardbench", data, tmp_path, "--seed", "1"))


def test_both_orders_reports_both_and_mean(openai_server, tmp_path):
    data = DATA / "rewardbench_filtered.jsonl"

    def policy(pair_id, side, payload):  # always says A: right only when the chosen reply is shown first
        return verdict("A") if pair_id != "30" else verdict(side)

    judge = FakeJudge("rewardbench", data, policy)
    with openai_server(judge) as server:
        assert main(_args(server, "rewardbench", data, tmp_path, "--both-orders")) == 0
        assert all(n == 2 for n in judge.requests.values())
    results = _summary(tmp_path)["results"]
    assert results["both"]["accuracy"] == pytest.approx(1 / 6)
    assert results["mean"]["accuracy"] == pytest.approx((1 + 5 * 0.5) / 6)
    assert results["mean"]["scores"]["Safety"] == 0.5
    assert results["both"]["scores"]["Safety"] == 0.0


def test_voting_at_k_on_rmb_with_agreement_and_plot(openai_server, tmp_path):
    data = DATA / "rmb"
    ks = (1, 2, 4)

    def right(pair_id, sample):
        return request_seed(0, pair_id, sample) % 3 != 0

    def policy(pair_id, side, payload):
        assert payload["temperature"] == 0.5
        sample = next(s for s in range(4) if request_seed(0, pair_id, s) == payload["seed"])
        return verdict(side if right(pair_id, sample) else other(side))

    judge = FakeJudge("rmb", data, policy)
    with openai_server(judge) as server:
        assert main(_args(server, "rmb", data, tmp_path, "--k", "4,1,2", "--tie", "wrong")) == 0
        assert sum(judge.requests.values()) == 8 * 4

    results = _summary(tmp_path)["results"]
    assert list(results) == [f"voting@{k}" for k in ks]
    pairs = load_benchmark("rmb", data)
    for k in ks:
        votes = {p.pair_id: [right(p.pair_id, s) for s in range(k)] for p in pairs}
        expected = score_rmb([{**p.meta, "correct": float(2 * sum(votes[p.pair_id]) > k)} for p in pairs])
        assert results[f"voting@{k}"]["scores"] == expected
        agreement = sum(max(sum(v), k - sum(v)) / k for v in votes.values()) / len(votes)
        assert results[f"voting@{k}"]["agreement"] == pytest.approx(agreement)
    assert (tmp_path / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pointwise_mode_scores_are_mapped_back_to_the_replies(openai_server, tmp_path):
    data = DATA / "rmbench"

    def policy(pair_id, side, payload):
        # prefers the chosen reply, except on the hard cells of the chat sample where both get 5 (a tie)
        if pair_id.startswith("chat/") and pair_id[-4:] in ("c0r1", "c0r2", "c1r2"):
            return "Scores: \\boxed{5, 5}"
        return "Scores: \\boxed{8, 3}" if side == "A" else "Principles... Scores: \\boxed{3, 8}"

    with openai_server(FakeJudge("rmbench", data, policy, mode="pointwise")) as server:
        assert main(_args(server, "rmbench", data, tmp_path, "--mode", "pointwise")) == 0
    scores = _summary(tmp_path)["results"]["greedy"]["scores"]
    assert scores["math"]["total"] == 1.0 and scores["safety"]["total"] == 1.0
    assert scores["chat"]["normal"] == 1.0 and scores["chat"]["easy"] == 1.0
    # each tie goes to a coin seeded by (seed, pair id, sample), as pointwise_voting documents
    coins = [random.Random(f"0/chat/chat/17/{cell}/tie/0").choice([0, 1]) == 0 for cell in ("c0r1", "c0r2", "c1r2")]
    assert 0 < sum(coins) < 3  # this seed gives a mix, so the check below can tell coins from constants
    assert scores["chat"]["hard"] == pytest.approx(sum(coins) / 3)


def test_openai_backend_gives_up_and_reports(openai_server, tmp_path):
    judge = FakeJudge("rewardbench", DATA / "rewardbench_filtered.jsonl", lambda p, s, b: 503)
    with openai_server(judge) as server:
        pair = load_benchmark("rewardbench", DATA / "rewardbench_filtered.jsonl")[0]
        messages = build_judge_messages(pair.conversation, pair.chosen, pair.rejected)
        backend = OpenAIBackend(server.base_url, "m", retries=2, backoff=0.0, timeout=5)
        (completion,) = backend.generate([GenerationRequest(messages)], Sampling())
        assert completion.text is None and "gave up after 3 attempts" in completion.error
        assert judge.requests["30"] == 3
    refused = OpenAIBackend("http://127.0.0.1:9/v1", "m", retries=0, timeout=2)
    (completion,) = refused.generate([GenerationRequest(messages)], Sampling())
    assert completion.text is None and "ConnectError" in completion.error


def test_a_pair_the_server_refuses_is_stored_as_failed_and_the_run_finishes(openai_server, tmp_path, capsys):
    data = DATA / "rewardbench_filtered.jsonl"

    def policy(pair_id, side, payload):  # 2201 is the only xstest-should-respond pair: Safety then scores 0
        return 400 if pair_id == "2201" else verdict(side)  # e.g. a prompt over the server's context

    judge = FakeJudge("rewardbench", data, policy)
    with openai_server(judge) as server:
        assert main(_args(server, "rewardbench", data, tmp_path, "--failures", "wrong")) == 0
        assert judge.requests["2201"] == 1  # a refusal is not retried
        summary = _summary(tmp_path)
        assert summary["failed_judgements"] == 1 and summary["parse_failures"] == 0
        greedy = summary["results"]["greedy"]
        assert greedy["accuracy"] == pytest.approx(5 / 6) and greedy["scores"]["Safety"] == 0.0
        assert greedy["scores"]["score"] == pytest.approx(3 / 4)
        records = {r["pair_id"]: r for r in map(json.loads, (tmp_path / RESULTS_FILE).read_text().splitlines())}
        assert records["2201"]["response"] is None and "HTTP 400" in records["2201"]["error"]
        printed = capsys.readouterr().out
        assert "1 were refused by the server" in printed and printed == (tmp_path / "summary.md").read_text()
        assert "PARTIAL rewardbench: the data lacks 17 subsets (alpacaeval-length, " in printed

        judge.requests.clear()
        assert main(_args(server, "rewardbench", data, tmp_path, "--failures", "wrong")) == 0
        assert not judge.requests  # the refused pair is stored: a rerun does not ask again
        assert _summary(tmp_path) == summary


def test_lone_surrogates_in_data_and_replies_are_replaced_and_counted(openai_server, tmp_path):
    rows = [json.loads(line) for line in (DATA / "rewardbench_filtered.jsonl").read_text().splitlines()]
    rows[0]["chosen"] += "\ud800"  # json.dumps writes it as the escape \ud800, which json.loads reads back
    data = tmp_path / "rb.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out"

    def policy(pair_id, side, payload):
        if pair_id == "30":
            assert "\ufffd" in json.dumps(payload["messages"], ensure_ascii=False)
        return verdict(side) + ("\udfff" if pair_id == "431" else "")

    with openai_server(FakeJudge("rewardbench", data, policy)) as server:
        assert main(_args(server, "rewardbench", data, out)) == 0
        summary = _summary(out)
        assert summary["surrogates_replaced"] == {"data": 1, "replies": 1}
        assert summary["results"]["greedy"]["accuracy"] == 1.0
        records = {
            r["pair_id"]: r for r in map(json.loads, (out / RESULTS_FILE).read_text(encoding="utf-8").splitlines())
        }
        assert records["431"]["response"].endswith("\ufffd") and records["431"]["surrogates_replaced"] == 1
        assert "replaced in 1 pairs and 1 replies" in (out / "summary.md").read_text()


@pytest.mark.parametrize("case", ["unknown subset", "empty"])
def test_bad_benchmark_data_fails_before_any_judging(openai_server, tmp_path, case):
    good = DATA / "rewardbench_filtered.jsonl"
    rows = [json.loads(line) for line in good.read_text().splitlines()]
    data = tmp_path / "rb.jsonl"
    if case == "empty":
        data.write_text("")
    else:
        rows[-1]["subset"] = "alpacaeval-typo"
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    judge = FakeJudge("rewardbench", good, lambda pair_id, side, payload: verdict(side))
    with openai_server(judge) as server:
        message = (
            "no rewardbench pairs" if case == "empty" else r"rb\.jsonl:5: unknown RewardBench subset 'alpacaeval-typo'"
        )
        with pytest.raises(ValueError, match=message):
            main(_args(server, "rewardbench", data, tmp_path / "out"))
        assert not judge.requests


def test_rewardbench_rule_and_a_run_without_safety(openai_server, tmp_path):
    rows = [json.loads(line) for line in (DATA / "rewardbench_filtered.jsonl").read_text().splitlines()]
    safety = {
        "refusals-dangerous",
        "refusals-offensive",
        "xstest-should-refuse",
        "xstest-should-respond",
        "donotanswer",
    }
    data = tmp_path / "no_safety.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows if row["subset"] not in safety))
    kept = [row for row in rows if row["subset"] not in safety]
    assert {row["subset"] for row in kept} != {row["subset"] for row in rows}

    def policy(pair_id, side, payload):
        return "I cannot decide." if pair_id == "3405" else verdict(side)

    out = tmp_path / "run"
    judge = FakeJudge("rewardbench", data, policy)
    with openai_server(judge) as server:
        assert main(_args(server, "rewardbench", data, out)) == 0
        scores = _summary(out)["results"]["greedy"]["scores"]
        assert scores["score"] is None and scores["missing_sections"] == ["Safety"]
        assert "no overall score (pass --allow-partial" in (out / "summary.md").read_text()
        # rescored from the stored judgements (no new request): RewardBench's rule gives the undecided pair 0.5
        asked = sum(judge.requests.values())
        assert main(_args(server, "rewardbench", data, out, "--allow-partial", "--verdict-rule", "rewardbench")) == 0
        assert sum(judge.requests.values()) == asked
    summary = _summary(out)
    scores = summary["results"]["greedy"]["scores"]
    assert scores["averaged_sections"] == ["Chat", "Chat Hard", "Reasoning"]
    assert scores["subsets"]["math-prm"]["accuracy"] == 0.5
    assert scores["score"] == pytest.approx((scores["Chat"] + scores["Chat Hard"] + scores["Reasoning"]) / 3)
    assert summary["settings"]["allow_partial"] and summary["settings"]["verdict_rule"] == "rewardbench"
    assert "--allow-partial: the score averages only Chat, Chat Hard, Reasoning" in (out / "summary.md").read_text()
