"""Running the project's commands on verl's real Ray + vLLM + FSDP2 path on this CPU, as a user runs them: a child
process per command, its output captured, the summed resident memory of its whole process tree sampled, and every
process it started checked to be gone once it exits."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

# Summed RSS of a run's process tree (double-counts shared pages: an upper bound), the budget of one run.
RSS_BUDGET_GIB = 12.0
# How long a run's processes may take to exit after the command did (Ray's workers notice their raylet's end).
LEFTOVER_GRACE_S = 30


@dataclass
class Run:
    returncode: int
    out: str
    err: str
    seconds: float
    peak_rss_gib: float
    leftovers: list[str] = field(default_factory=list)  # processes of the run still alive after it exited

    @property
    def text(self) -> str:
        return self.out + self.err


class TreeWatch:
    """Samples a process tree: every descendant seen (pid, create time, command) and the peak summed RSS."""

    def __init__(self, root: psutil.Process) -> None:
        self.root, self.seen, self.peak = root, {}, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                tree = []
            total = 0
            for proc in tree:
                try:
                    total += proc.memory_info().rss
                    self.seen.setdefault((proc.pid, proc.create_time()), " ".join(proc.cmdline())[:120])
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def alive(self) -> list[str]:
        left = []
        for (pid, created), command in self.seen.items():
            try:
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    left.append(f"{pid} {command}")
            except psutil.Error:
                pass
        return left


def command_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    env.pop("VERL_USE_EXTERNAL_MODULES", None)  # the command sets up its own environment
    return env


def start(args: list[str], cwd: Path) -> tuple[subprocess.Popen, TreeWatch]:
    proc = subprocess.Popen(
        [sys.executable, *args], cwd=cwd, env=command_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return proc, TreeWatch(psutil.Process(proc.pid))


def finish(proc: subprocess.Popen, watch: TreeWatch, started: float, timeout: float = 600) -> Run:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        watch.stop()
        pytest.fail(f"{proc.args} did not finish within {timeout} s:\n{out[-3000:]}\n{err[-3000:]}")
    seconds = time.monotonic() - started
    watch.stop()
    deadline = time.monotonic() + LEFTOVER_GRACE_S  # the cluster's processes exit once their raylet is gone
    while watch.alive() and time.monotonic() < deadline:
        time.sleep(1)
    return Run(proc.returncode, out, err, seconds, watch.peak / 2**30, watch.alive())


def run(args: list[str], cwd: Path, timeout: float = 600) -> Run:
    """``python <args>`` in ``cwd``; fails the test if it outlives ``timeout``."""
    started = time.monotonic()
    proc, watch = start(args, cwd)
    result = finish(proc, watch, started, timeout)
    print(f"{' '.join(args)}: exit {result.returncode}, {result.seconds:.0f} s, peak {result.peak_rss_gib:.2f} GiB")
    return result


def assert_clean_success(result: Run) -> None:
    assert result.returncode == 0, result.text[-6000:]
    assert result.leftovers == [], f"processes left running: {result.leftovers}"
    assert result.peak_rss_gib <= RSS_BUDGET_GIB, f"summed RSS peaked at {result.peak_rss_gib:.2f} GiB"
