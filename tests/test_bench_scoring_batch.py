"""scripts/bench_scoring_batch.py on a few short responses: it runs every side, the baselines and the builder find the
same o' rows, and the printed ratios (the single-call one last) come from the measured times."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_scoring_batch", ROOT / "scripts" / "bench_scoring_batch.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_the_ratios_come_from_the_measured_sides_and_the_single_call_one_is_last(monkeypatch, capsys):
    results, times = [], iter([0.5, 0.8, 20.0, 10.0])  # builder, builder + trainer batch, single, batch API
    real = bench.cpu_seconds

    def measured(fn, repeats):
        _, result = real(fn, repeats)
        results.append(result)
        return next(times), result

    monkeypatch.setattr(bench, "cpu_seconds", measured)
    bench.main(["--responses", "16", "--length", "200", "--repeats", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    cores = r"cores available to this process: \d+ \(times are process CPU seconds, the least of 1 runs\)"
    assert re.fullmatch(cores, lines[0])
    assert lines[-4:] == [
        "baseline, tokenizer batch API: 10.000 s",
        "ratio with the trainer's batch: 25.0",
        "batch-API ratio: 20.0",
        "ratio: 40.0",
    ]
    scoring, trainer_batch, single_rows, batched_rows = results
    o_rows = [row for row in scoring.response_row if row >= 0]
    assert 0 < len(o_rows) == len(single_rows) == len(batched_rows)
    assert single_rows == batched_rows
    assert len(trainer_batch) == scoring.num_rows


def test_a_length_that_cuts_every_answer_off_gives_no_rows(qwen_tokenizer):
    rollout = bench.synthetic_rollout(qwen_tokenizer, 8, 20, 0)
    assert bench.baseline(rollout, qwen_tokenizer) == []
    assert bench.baseline_batched(rollout, qwen_tokenizer) == []
