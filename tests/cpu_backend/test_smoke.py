"""The CPU smoke command (cpu_backend.smoke): the RLPR smoke run end to end on the in-process backend (table,
summary, metrics appended on resume, the finished-run message), and what the real path is handed."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from cpu_backend.smoke import smoke_command
from harness.reporting import read_metrics

# ---------------------------------------------------------------------------------------------------------------------
# the RLPR smoke command, end to end (small: a short warm start, two steps, then one more)


@pytest.mark.slow
def test_smoke_prints_a_table_appends_metrics_and_knows_when_it_is_done(tmp_path, monkeypatch, capsys, restore_threads):
    from rlpr import smoke

    monkeypatch.chdir(tmp_path)  # verl's file backend would write ./rlpr/smoke_cpu.jsonl here
    out = tmp_path / "smoke"
    args = ["--backend", "inprocess", "--output-dir", str(out), "--warm-steps", "3", "trainer.val_before_train=false",
            "trainer.save_freq=1",
            "trainer.test_freq=2", "rlpr.filter.start_step=10"]  # fmt: skip
    assert smoke.main([*args, "trainer.total_training_steps=2"]) == 0
    printed, progress = capsys.readouterr()
    assert "warm start (once, then cached)" in progress and "3/3" in progress
    assert "generation:" in progress and "/16 [" in progress  # 4 prompts x 4 responses per round
    header = next(line for line in printed.splitlines() if line.split()[:2] == ["step", "R"])
    assert header.split() == ["step", "R", "r", "r'", "r_hat", "valid", "theta", "kept", "rounds", "step_s", "val_acc"]
    rows = [line.split() for line in printed.splitlines() if line.split() and line.split()[0] in ("1", "2")]
    assert [r[0] for r in rows] == ["1", "2"] and all(len(r) == 11 for r in rows)
    assert max(len(line) for line in printed.splitlines()) < 1000  # no 4,000-character metric dumps
    assert "np.float64" not in printed and "Final validation metrics:" not in printed
    assert "Done: step 2 of 2." in printed and "Final validation (step 2):" in printed
    assert f"Checkpoints: {out / 'checkpoints'} (global_step_1, global_step_2)" in printed
    assert "To go further: python -m rlpr.smoke" in printed and printed.rstrip().endswith(
        "trainer.total_training_steps=4"
    )
    steps, bad = read_metrics(out / "metrics.jsonl")
    assert bad == 0 and {1, 2} <= set(steps) and len(steps[1]) > 50  # verl's full metrics, not the table's
    first_run = (out / "metrics.jsonl").read_text()
    assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "rlpr").exists() and not (Path(smoke.__file__).parent / "smoke_cpu.jsonl").exists()
    # a row printed in the table holds the logged numbers
    assert float(rows[0][1]) == pytest.approx(steps[1]["rlpr/reward_mean"], abs=5e-4)

    # run again: nothing to do, and it says so
    assert smoke.main([*args, "trainer.total_training_steps=2"]) == 0
    printed = capsys.readouterr().out
    assert "The run is complete at step 2 of 2" in printed
    assert printed.rstrip().endswith(f"python -m rlpr.smoke {shlex.join(args)} trainer.total_training_steps=4")

    # go one step further: resumes, and the metrics file grows (the first run's lines kept)
    assert smoke.main([*args, "trainer.total_training_steps=3"]) == 0
    printed = capsys.readouterr().out
    assert "Resuming from step 2 of 3" in printed and "Done: step 3 of 3." in printed
    text = (out / "metrics.jsonl").read_text()
    assert text.startswith(first_run) and set(read_metrics(out / "metrics.jsonl")[0]) >= {1, 2, 3}


def test_the_real_smoke_hands_a_validation_judge_key_to_the_ray_processes_only(monkeypatch, tmp_path):
    import cpu_backend.real_stack
    from rlpr.main import compose_recipe, validation_judge_secrets

    monkeypatch.setenv("RLPR_SMOKE_KEY_FOR_TEST", "sk-smoke-secret")
    kwargs = "reward.custom_reward_function.reward_kwargs"
    config = compose_recipe("smoke_cpu", [f"{kwargs}.judge_api_key_env=RLPR_SMOKE_KEY_FOR_TEST"])
    runs = []
    monkeypatch.setattr(cpu_backend.real_stack, "use_environment", lambda: None)
    monkeypatch.setattr(cpu_backend.real_stack, "run_real_smoke", lambda config, runner, **kw: runs.append(kw) or 0)

    def smoke(**secrets):
        return smoke_command(
            ["--output-dir", str(tmp_path)],
            prog="smoke",
            description="",
            recipe="smoke_cpu",
            default_output_dir=str(tmp_path),
            warm_steps=0,
            build_trainer=None,
            build_real=lambda out_dir, overrides, warm_steps, gpus: (config, object),
            columns=[],
            panels={},
            **secrets,
        )

    assert smoke(secrets=validation_judge_secrets) == 0
    assert runs[0]["extra_env"] == {"RLPR_SMOKE_KEY_FOR_TEST": "sk-smoke-secret"}
    assert "sk-smoke-secret" not in str(config)
    assert smoke() == 0 and runs[1]["extra_env"] == {}  # a command without secrets hands none
