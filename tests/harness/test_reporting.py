"""What the smoke commands print and write (harness.reporting): the warning filter, the metrics file, the per-step
table, the curves, and the smoke run itself (table, summary, metrics appended on resume, the finished-run message)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from harness import reporting
from harness.reporting import Column, MetricsFile, StepTable, read_metrics

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------------------------------------------------
# warnings

_IMPORT_VERL = (
    "import logging, warnings\n"
    "logging.basicConfig()\n"
    "from verl.trainer.ppo.ray_trainer import RayPPOTrainer\n"
    "try:\n"
    "    RayPPOTrainer(config=None, tokenizer=None, role_worker_mapping={})\n"
    "except Exception:\n"
    "    pass\n"
    "warnings.warn('an unrelated warning still shows')\n"
)


def _stderr_of(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    return done.stderr


@pytest.mark.slow
def test_known_harmless_warnings_are_silenced_and_others_are_not():
    quiet = "from harness.reporting import quiet_known_warnings\nquiet_known_warnings(on_cpu=True)\n"
    loud, silent = _stderr_of(_IMPORT_VERL), _stderr_of(quiet + _IMPORT_VERL)
    # without the filter verl prints all of them (so this test can fail) ...
    assert len(re.findall(r"UserWarning: \w+ engine is not available", loud)) == 5
    assert "RayPPOTrainer' is deprecated" in loud and "No supported accelerator detected" in loud
    # ... with it none, while an unrelated warning still shows
    assert "engine is not available" not in silent and "is deprecated" not in silent
    assert "No supported accelerator" not in silent and "registered but not available" not in silent
    assert "an unrelated warning still shows" in silent


def test_quiet_known_warnings_is_targeted():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reporting.quiet_known_warnings()
        reporting.quiet_known_warnings()  # twice adds nothing
        warnings.warn_explicit(
            "megatron engine is not available: x", UserWarning, "e.py", 1, module="verl.workers.engine"
        )
        # the same text from elsewhere, or another category, is not the known one
        warnings.warn_explicit("megatron engine is not available: x", UserWarning, "m.py", 1, module="mine")
        warnings.warn(
            "Warning: Class 'verl.trainer.ppo.ray_trainer.RayPPOTrainer' is deprecated.", UserWarning, stacklevel=1
        )
    assert [str(w.message)[:20] for w in caught] == ["megatron engine is n", "Warning: Class 'verl"]


# ---------------------------------------------------------------------------------------------------------------------
# metrics file, table, curves


def test_metrics_file_appends_and_survives_a_cut_line(tmp_path):
    path = tmp_path / "out" / "metrics.jsonl"
    first = MetricsFile(path)
    first.log({"a": 1.0}, step=1)
    first.log({"a": 2.0, "v": float("nan")}, step=2)
    first.finish()
    with open(path, "ab") as f:
        f.write(b'{"step": 3, "data": {"a"')  # killed in the middle of a line
    again = MetricsFile(path)
    again.log({"a": 3.5}, step=3)
    again.log({"a": 4.0}, step=4)
    again.finish()
    steps, bad = read_metrics(path)
    assert bad == 1
    assert {s: m["a"] for s, m in steps.items()} == {1: 1.0, 2: 2.0, 3: 3.5, 4: 4.0}
    assert steps[2]["v"] is None  # non-finite values are written as null, as verl's file backend does
    assert (again.last_step, again.last) == (4, {"a": 4.0})
    # a resumed run repeats the steps after its checkpoint (the later value of a key wins) and logs its start-up
    # metrics at the checkpoint's step (merged with that step's)
    redo = MetricsFile(path)
    redo.log({"r_prime_cache": 20.0}, step=4)
    redo.log({"a": 40.0}, step=4)
    redo.finish()
    assert read_metrics(path)[0][4] == {"a": 40.0, "r_prime_cache": 20.0}
    assert len(path.read_text().splitlines()) == 7


def test_step_table_prints_the_chosen_metrics(capsys):
    table = StepTable([Column("R", "r/mean"), Column("kept", "f/kept", ".2f"), Column("acc", lambda m: m.get("x"))])
    table.log({"other": 1.0}, step=0)  # nothing to show: no row, no header yet
    table.log({"r/mean": 0.123456, "f/kept": 0.5, "noise": 9}, step=1)
    table.log({"r/mean": 0.25, "x": 1}, step=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines] == [
        ["step", "R", "kept", "acc"],
        ["1", "0.123", "0.50", "-"],
        ["2", "0.250", "-", "1.000"],
    ]


def test_tracking_inside_reporting_to_writes_table_and_file_not_verls(tmp_path, monkeypatch, capsys):
    from verl.utils import tracking

    monkeypatch.chdir(tmp_path)
    original = tracking.Tracking
    metrics = MetricsFile(tmp_path / "m.jsonl")
    with reporting.reporting_to(StepTable([Column("R", "r")]), metrics):
        tracker = tracking.Tracking("rlpr", "smoke_cpu", default_backend=["console", "file"], config={})
        tracker.log({"r": 0.5, "long/metric": 1.0}, step=1)
    assert tracking.Tracking is original
    metrics.finish()
    assert capsys.readouterr().out.split() == ["step", "R", "1", "0.500"]
    assert read_metrics(tmp_path / "m.jsonl")[0] == {1: {"r": 0.5, "long/metric": 1.0}}
    assert not (tmp_path / "rlpr").exists()  # verl's file backend would have written ./rlpr/smoke_cpu.jsonl


def test_plot_curves_reads_the_whole_file(tmp_path):
    import matplotlib.image

    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps({"step": s, "data": {"r": s / 10, "t": None}}) for s in (1, 2, 3)) + "\n")
    png = reporting.plot_curves(path, tmp_path / "metrics.png", {"reward": [Column("r", "r")], "t": [Column("t", "t")]})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(png).shape
    assert width > height > 100  # two panels side by side


def test_step_progress_counts_optimizer_steps_and_shows_nothing_without_them(capsys):
    import torch

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    with reporting.step_progress("cached", 5):
        pass
    with reporting.step_progress("fitting", 3):
        for _ in range(3):
            param.grad = torch.ones(1)
            optimizer.step()
    optimizer.step()  # outside: not counted, and the hook is gone
    err = capsys.readouterr().err
    assert "cached" not in err
    assert "fitting: 100%" in err and "3/3" in err


def test_continue_command_replaces_the_step_count():
    argv = ["--output-dir", "my dir", "trainer.total_training_steps=4", "rlpr.filter.beta=0.6"]
    assert reporting.continue_command("python -m rlpr.smoke", argv, 8) == (
        "python -m rlpr.smoke --output-dir 'my dir' rlpr.filter.beta=0.6 trainer.total_training_steps=8"
    )


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
        return reporting.smoke_command(
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
