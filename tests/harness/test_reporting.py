"""What the commands print and write (harness.reporting): the warning filter, the metrics file, the per-step table,
the curves, the progress bar, the continue command. The smoke runs built on them: tests/cpu_backend/test_smoke.py."""

from __future__ import annotations

import json
import re
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
