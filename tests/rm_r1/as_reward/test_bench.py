"""scripts/bench_judge_reward.py: the fake judge answers after its delay, and the measured rate is bounded by the
ideal one (responses/s = in flight / (2 calls x delay))."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "bench_judge_reward.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_judge_reward", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fake_judge_and_a_measured_level(bench):
    import httpx

    child, url = bench.start_fake_judge(0.1)
    try:
        started = time.monotonic()
        reply = httpx.post(url + "/chat/completions", json={"messages": []}, timeout=10)
        assert (
            time.monotonic() - started >= 0.1
            and reply.json()["choices"][0]["message"]["content"] == "<answer>[[A]]</answer>"
        )
        result = bench.measure(4, url, 0.1, seconds=0.5)
    finally:
        child.terminate()
        child.wait(timeout=10)
    # 4 calls in flight, 2 calls per response, 0.1 s per call: at most 20 responses/s
    assert result["ideal_per_s"] == pytest.approx(20.0) and result["responses"] == 16
    assert 0.3 < result["ratio"] <= 1.0 and result["per_s"] == pytest.approx(result["ratio"] * 20.0)
