"""verl's own distributed path on this CPU machine: a local Ray cluster with logical GPUs, verl's vLLM rollout servers
(vLLM's CPU build), weight sync, the FSDP2 actor on gloo, and the recipe's task runner in a Ray actor.

* ``environment()``: the variables every process of the path needs (the plugin ``cpu_backend.verl_plugin`` through
  ``VERL_USE_EXTERNAL_MODULES``, ``VERL_PLATFORM=cpu``, vLLM's CPU settings); ``use_environment()`` sets them here.
* ``local_cluster(n_gpus)``: starts a local Ray cluster, and stops it on exit, on Ctrl-C and on errors.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from harness.reporting import Column

PLUGIN = "cpu_backend.verl_plugin"
# Logical CPUs of the local cluster: verl's bundles ask for 3 CPUs per worker (max_colocate_count,
# verl/single_controller/ray/base.py:144-151) plus 1 for the task runner, the agent loop and reward workers; the
# machine's 2 real cores are shared by all of them.
LOGICAL_CPUS = 16


def environment() -> dict[str, str]:
    """The environment of every process on this path (set before Ray starts: its workers inherit it)."""
    return {
        "VERL_USE_EXTERNAL_MODULES": PLUGIN,
        "VERL_PLATFORM": "cpu",
        "VLLM_TARGET_DEVICE": "cpu",
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # 2 shared cores: no pinning of OpenMP threads
        "MALLOC_ARENA_MAX": "2",  # fewer glibc malloc arenas in the many-threaded Ray and vLLM processes
        "TOKENIZERS_PARALLELISM": "false",
        "RAY_DEDUP_LOGS": "0",
    }


def use_environment() -> None:
    """Set ``environment()`` in this process and apply the plugin here too (the driver may have imported verl)."""
    from cpu_backend import verl_plugin

    os.environ.update(environment())
    verl_plugin.activate()


# No idle worker processes kept around on a 2-core machine: Ray would prestart workers for the first driver and keep
# up to num_cpus (16 logical here) idle ones; each holds ~80-130 MB. With a soft limit of 0 an idle worker is ended
# after Ray's idle threshold (1 s); verl's roles are actors, which are never idle workers.
RAY_SYSTEM_CONFIG = {
    "prestart_worker_first_driver": False,
    "enable_worker_prestart": False,
    "num_workers_soft_limit": 0,
}


@contextmanager
def _without_unused_head_processes() -> Iterator[None]:
    """``ray.init`` without the two head processes this path never uses (~170 MB): the autoscaler's monitor (nothing
    to scale on one machine) and the log monitor (it forwards the workers' logs to the driver, which
    ``log_to_driver=False`` turns away). ``ray.init`` has no switch for them: it builds ``RayParams`` without
    ``no_monitor`` and ``include_log_monitor`` (ray/_private/worker.py:1894-1921), which the head node reads
    (ray/_private/node.py:1654, 1765; ``include_log_monitor`` defaults to True at node.py:155-156). The plugin's
    version check holds this to ray 2.60.0."""
    import ray._private.parameter as parameter

    original = parameter.RayParams

    class LeanHeadParams(original):
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs.setdefault("no_monitor", True)
            kwargs.setdefault("include_log_monitor", False)
            super().__init__(*args, **kwargs)

    parameter.RayParams = LeanHeadParams
    try:
        yield
    finally:
        parameter.RayParams = original


@contextmanager
def local_cluster(n_gpus: int = 1, extra_env: dict[str, str] | None = None) -> Iterator[None]:
    """A local Ray cluster with ``n_gpus`` logical GPUs for the duration of the block (verl's ``run_ppo`` joins it).

    Stopped on the way out whatever happens (an error, Ctrl-C): ``ray.shutdown()`` ends the processes ``ray.init``
    started here, workers and vLLM servers included.
    """
    import ray

    use_environment()
    with _without_unused_head_processes():
        ray.init(
            num_cpus=LOGICAL_CPUS,
            num_gpus=n_gpus,
            include_dashboard=False,
            runtime_env={"env_vars": {**environment(), **(extra_env or {})}},
            log_to_driver=False,  # the workers' logs stay in Ray's session folder; the table stays readable
            _system_config=RAY_SYSTEM_CONFIG,
        )
    try:
        yield
    finally:
        ray.shutdown()


# Phases of a step on this path, by the metric that times them (verl's ``timing_s/*`` and the RLPR trainer's own).
PHASES: tuple[tuple[str, str], ...] = (
    ("generation", "timing_s/gen"),
    ("old log-probs", "timing_s/old_log_prob"),
    ("RLPR scoring forward", "timing_s/rlpr_scoring"),
    ("r' pass (initial policy)", "timing_s/rlpr_r_prime_initial"),
    ("update", "timing_s/update_actor"),
    ("weight sync", "timing_s/update_weights"),
    ("checkpoint", "timing_s/save_checkpoint"),
    ("validation", "timing_s/testing"),
    ("whole step", "timing_s/step"),
)
WITNESS = "training/rollout_probs_diff_max"
WITNESS_BOUND = 1e-3


def phase_table(steps: dict[int, dict]) -> list[str]:
    """One line per phase that ran: its seconds at each step (``-`` where it did not run)."""
    shown = [(name, key) for name, key in PHASES if any(key in m for m in steps.values())]
    if not shown:
        return []
    header = f"{'phase (s)':<26}" + "".join(f"{'step ' + str(s):>10}" for s in steps)
    rows = [
        f"{name:<26}" + "".join(f"{float(m[key]):>10.2f}" if key in m else f"{'-':>10}" for m in steps.values())
        for name, key in shown
    ]
    return [header, *rows]


def witness_problems(steps: dict[int, dict]) -> list[str]:
    """The weight-sync witness: after step 1, vLLM's log-probs of the sampled tokens must match the actor's
    (verl's ``training/rollout_probs_diff_max`` below ``WITNESS_BOUND``). An empty list: it held."""
    late = {s: float(m[WITNESS]) for s, m in steps.items() if s > 1 and WITNESS in m}
    bad = [f"step {s}: {WITNESS}={v:.3g} (bound {WITNESS_BOUND:g})" for s, v in late.items() if not v < WITNESS_BOUND]
    if not late and any(s > 1 for s in steps):
        bad.append(f"no step after step 1 logged {WITNESS}: the weight sync was not witnessed")
    return bad


class _Tail:
    """Follows the metrics file that verl's ``file`` logger writes inside Ray (one JSON line per step) and hands each
    complete line to ``on_record(step, data)`` in this process."""

    def __init__(self, path: Path, on_record: Callable[[int, dict], None]) -> None:
        import threading

        self.path, self.on_record, self._offset = path, on_record, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> _Tail:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def _follow(self) -> None:
        while not self._stop.wait(0.5):
            self._read()

    def _read(self) -> None:
        import json

        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            if line.strip():
                record = json.loads(line)
                self.on_record(int(record["step"]), dict(record["data"]))


def describe_failure(error: BaseException) -> str:
    """What stopped a run on this path, in one paragraph: which Ray actor or process died, or the error."""
    import ray.exceptions as rex

    cause = error
    while isinstance(cause, rex.RayTaskError) and cause.cause is not None and cause.cause is not cause:
        cause = cause.cause
    if isinstance(cause, rex.ActorDiedError | rex.RayActorError | rex.WorkerCrashedError):
        return f"a Ray worker process died: {str(cause).strip().splitlines()[0]} ({' '.join(str(cause).split())[:600]})"
    text = " ".join(str(cause).split())
    return f"{type(cause).__name__}: {text[:1500]}"


def release_freed_memory() -> int:
    """Hand the heap this process freed back to the OS (glibc's ``malloc_trim``); returns the bytes of RSS it gave back.

    The driver of a real-path smoke trains the tiny warm-start model before Ray starts and then only waits; without
    this, ~150 MB it no longer uses stay resident (and counted) for the whole run. A no-op where glibc is absent."""
    import ctypes
    import ctypes.util
    import gc

    import psutil

    gc.collect()
    before = psutil.Process().memory_info().rss
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to trim
        return 0
    return max(0, before - psutil.Process().memory_info().rss)


def run_real_smoke(
    config: DictConfig,
    task_runner_cls: type,
    *,
    prog: str,
    argv: Sequence[str],
    output_dir: Path,
    columns: Sequence[Column],
    panels: dict[str, Sequence[Column]],
    n_gpus: int = 1,
    witness: bool = True,
    extra_env: dict[str, str] | None = None,
    cluster_gpus: int | None = None,
) -> int:
    """Train ``config`` through verl's ``run_ppo`` with ``task_runner_cls`` on a local Ray cluster of ``n_gpus``
    logical GPUs, and report it as the in-process smoke does (table, metrics file, curves, summary), plus where each
    step's time went (``PHASES``) and the weight-sync witness (``witness_problems``; ``witness=False`` skips it).

    The trainer runs inside Ray, so its metrics come back through verl's own ``file`` logger: a file of this run only
    (verl truncates it at start), followed while the run goes and appended, step by step, to
    ``<output_dir>/metrics.jsonl``. Returns the exit status: 1 when the run failed (the cause is named) or the witness
    did not hold. ``extra_env``: more environment variables of the Ray processes (a judge's API key: never in the
    config). ``cluster_gpus``: the cluster's logical GPUs when more than the actor's (a reward model's own pool).
    """
    from harness.reporting import MetricsFile, StepTable, already_complete, plot_curves, summary_lines
    from harness.task_runner import run_classic

    checkpoints = Path(config.trainer.default_local_dir)
    total = int(config.trainer.total_training_steps)
    done = already_complete(checkpoints, total, config.trainer.resume_mode, prog, argv)
    if done is not None and done >= total:
        return 0
    release_freed_memory()
    output_dir.mkdir(parents=True, exist_ok=True)
    run_file = output_dir / "metrics.run.jsonl"  # this run's steps as verl's file logger writes them
    run_file.unlink(missing_ok=True)
    config.trainer.logger = [b for b in config.trainer.logger if b not in ("console", "file")] + ["file"]
    table, metrics, steps = StepTable(columns), MetricsFile(output_dir / "metrics.jsonl"), {}

    def on_record(step: int, data: dict) -> None:
        steps.setdefault(step, {}).update(data)
        metrics.log(data, step)
        table.log(data, step)

    print(f"backend: verl's Ray + vLLM path on CPU ({n_gpus} logical GPU(s): FSDP2 actor ranks and vLLM replicas)")
    failure = None
    try:
        cluster_env = {**(extra_env or {}), "VERL_FILE_LOGGER_PATH": str(run_file)}
        with local_cluster(cluster_gpus or n_gpus, cluster_env), _Tail(run_file, on_record):
            run_classic(config, task_runner_cls)
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted; the local Ray cluster was stopped. Run the same command to resume.")
        return 130
    except Exception as error:  # a Ray task or actor error: named, then a non-zero exit
        failure = describe_failure(error)
    finally:
        metrics.finish()
    if metrics.path.exists():
        plot_curves(metrics.path, output_dir / "metrics.png", panels)
    lines = []
    phases = phase_table(steps)
    if phases:
        lines += ["\nWhere each step's time went (also in the metrics file, timing_s/*):", *phases]
    problems = witness_problems(steps) if witness and failure is None else []
    late = {s: m[WITNESS] for s, m in steps.items() if s > 1 and WITNESS in m}
    if witness and late:
        lines.append(f"weight-sync witness {WITNESS}: " + ", ".join(f"step {s}: {v:.2e}" for s, v in late.items()))
    print("\n".join(lines + summary_lines(metrics, done, total, checkpoints, output_dir, prog, argv)))
    if failure is not None:
        print(f"{prog}: the run stopped: {failure}", file=sys.stderr)
        return 1
    if problems:
        print(f"{prog}: the weight sync into vLLM failed its witness: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


def compose_real_config(
    config_dir: str | os.PathLike, name: str, overrides: Sequence[str] = (), n_gpus: int = 1
) -> DictConfig:
    """A recipe composed for this path: ``REAL_STACK_OVERRIDES``, one actor rank per logical GPU of the local cluster
    (``local_cluster`` starts Ray itself, so ``ray_kwargs.ray_init`` is not read), the rollout's own log-probs (verl's
    weight-sync witness needs them), then ``overrides`` (which win)."""
    from hydra import compose, initialize_config_dir

    from cpu_backend.verl_plugin import REAL_STACK_OVERRIDES

    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(
            config_name=name,
            overrides=[
                *REAL_STACK_OVERRIDES,
                f"trainer.n_gpus_per_node={n_gpus}",
                "actor_rollout_ref.rollout.calculate_log_probs=true",
                *overrides,
            ],
        )
