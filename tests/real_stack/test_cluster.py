"""The local Ray cluster of the real path (``cpu_backend.real_stack.local_cluster``) and its driver's memory."""

from __future__ import annotations

import time

import psutil
import pytest

from cpu_backend.real_stack import local_cluster, release_freed_memory


def _idle_workers() -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if cmdline and cmdline[0].startswith("ray::IDLE"):
            found.append(proc.pid)
    return found


@pytest.mark.slow
@pytest.mark.real_stack
def test_the_local_cluster_keeps_no_idle_worker_processes():
    """Ray prestarts workers for the first driver and keeps up to num_cpus idle ones (~100 MB each); the real path's
    cluster ends them within its idle threshold, once a task has run and returned."""
    import ray

    assert not _idle_workers(), "another Ray cluster is running on this machine"
    with local_cluster(n_gpus=1):
        assert ray.get([ray.remote(lambda i: i * i).remote(i) for i in range(3)]) == [0, 1, 4]
        deadline = time.monotonic() + 20
        while _idle_workers() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _idle_workers() == []


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
