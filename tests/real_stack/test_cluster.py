"""The local Ray cluster of the real path (``cpu_backend.real_stack.local_cluster``) and its driver's memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cpu_backend.real_stack import release_freed_memory

ROOT = Path(__file__).resolve().parents[2]

# Run in a child process: local_cluster sets the real path's environment and applies the verl plugin in the process
# that calls it (what the smoke's driver needs), which must not leak into the other tests of this session.
COUNT_IDLE_WORKERS = textwrap.dedent(
    """
    import time

    import psutil
    import ray

    from cpu_backend.real_stack import local_cluster


    def idle_workers():
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if cmdline and cmdline[0].startswith("ray::IDLE"):
                found.append(proc.pid)
        return found


    def head_monitors():
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            args = (proc.info["cmdline"] or [])[:3]
            if any(a.endswith(("/ray/autoscaler/_private/monitor.py", "/ray/_private/log_monitor.py")) for a in args):
                found.append(proc.pid)
        return found


    assert not idle_workers() and not head_monitors(), "another Ray cluster is running on this machine"
    with local_cluster(n_gpus=1):
        assert ray.get([ray.remote(lambda i: i * i).remote(i) for i in range(3)]) == [0, 1, 4]
        print("head monitors:", head_monitors())
        deadline = time.monotonic() + 20
        while idle_workers() and time.monotonic() < deadline:
            time.sleep(0.5)
        print("idle workers:", idle_workers())
    """
)


@pytest.mark.slow
@pytest.mark.real_stack
def test_the_local_cluster_keeps_no_process_it_does_not_use():
    """Ray prestarts workers for the first driver and keeps up to num_cpus idle ones (~100 MB each); the real path's
    cluster ends them within its idle threshold, once a task has run and returned. Nor does it start the autoscaler's
    monitor or the log monitor (~85 MB each)."""
    result = subprocess.run(
        [sys.executable, "-c", COUNT_IDLE_WORKERS], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "idle workers: []" in result.stdout, result.stdout[-2000:]
    assert "head monitors: []" in result.stdout, result.stdout[-2000:]


def test_the_driver_hands_freed_heap_back():
    """Many small blocks freed between kept ones fragment glibc's heap: RSS stays up until ``malloc_trim``."""
    keep, drop = [], []
    for _ in range(40_000):
        drop.append(bytearray(4_000))  # below glibc's mmap threshold: from the heap
        keep.append(bytearray(16))
    allocated = 40_000 * 4_000
    del drop
    given_back = release_freed_memory()
    assert given_back >= allocated // 2, f"{given_back} of {allocated} bytes given back"
    assert len(keep) == 40_000
