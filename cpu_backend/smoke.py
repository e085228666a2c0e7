"""The command of every CPU smoke run (``python -m rlpr.smoke``, ``rm_r1.smoke``, ``rm_r1.judge_smoke``), on either
CPU backend, reported with ``harness.reporting``.

* ``smoke_command(...)``: the command line (``--backend``, ``--gpus``, ``--output-dir``, ``--warm-steps``, Hydra
  overrides) and the run: verl's real path (``cpu_backend.real_stack.run_real_smoke``) or the in-process backend
  (``run_smoke``).
* ``run_smoke(...)``: fit an in-process smoke trainer with progress bars (``generation_progress``), the per-step
  table, the metrics file, the curves, and a closing summary.
* ``add_backend_arguments(parser)``, ``BACKENDS``, ``INPROCESS_BANNER``: what every smoke command shares.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.reporting import (
    Column,
    MetricsFile,
    StepTable,
    already_complete,
    plot_curves,
    quiet_known_warnings,
    reporting_to,
    summary_lines,
)


@contextmanager
def generation_progress(manager: Any) -> Iterator[None]:
    """A progress bar over the responses of every ``generate_sequences`` call of a CPU backend rollout manager
    (``cpu_backend.InProcessAgentLoopManager``): training rounds and validation."""
    from tqdm import tqdm

    client = manager.client
    generate_sequences, generate = manager.generate_sequences, client.generate
    bar = None

    def counted_generate_sequences(prompts: Any) -> Any:
        nonlocal bar
        what = "validation" if prompts.meta_info.get("validate", False) else "generation"
        bar = tqdm(total=len(prompts), desc=what, unit="response", leave=False)
        try:
            return generate_sequences(prompts)
        finally:
            bar.close()

    async def counted_generate(*args: Any, **kwargs: Any) -> Any:
        output = await generate(*args, **kwargs)
        if bar is not None:
            bar.update(1)
        return output

    manager.generate_sequences, client.generate = counted_generate_sequences, counted_generate
    try:
        yield
    finally:
        del manager.generate_sequences, client.generate  # back to the class methods


def run_smoke(
    trainer: Any,
    *,
    prog: str,
    argv: Sequence[str],
    output_dir: str | os.PathLike,
    columns: Sequence[Column],
    panels: dict[str, Sequence[Column]],
) -> int:
    """Fit a CPU smoke ``trainer`` (built by ``cpu_backend.build_cpu_trainer``) in this process and report it.

    Already complete (the latest checkpoint is at the last step): say so and how to go further, train nothing.
    Otherwise: progress bars for generation, the per-step table of ``columns``, verl's full metrics appended to
    ``<output_dir>/metrics.jsonl``, ``<output_dir>/metrics.png`` (``panels``) redrawn from the whole file, and a closing
    summary (steps done, final validation, checkpoints, how to continue). Returns the exit status.
    """
    output_dir = Path(output_dir)
    checkpoints = Path(trainer.config.trainer.default_local_dir)
    total = int(trainer.total_training_steps)
    done = already_complete(checkpoints, total, trainer.config.trainer.resume_mode, prog, argv)
    if done is not None and done >= total:
        return 0
    metrics = MetricsFile(output_dir / "metrics.jsonl")
    try:
        with reporting_to(StepTable(columns), metrics), generation_progress(trainer.async_rollout_manager):
            trainer.fit()
    finally:
        metrics.finish()
    plot_curves(output_dir / "metrics.jsonl", output_dir / "metrics.png", panels)
    print("\n".join(summary_lines(metrics, done, total, checkpoints, output_dir, prog, argv)))
    return 0


BACKENDS = ("real", "inprocess")
INPROCESS_BANNER = (
    "backend: in-process (one process: verl's FSDP engine worker, HF generate() in place of vLLM, no Ray)"
)


def _logical_gpus(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend {real,inprocess}`` (default real) and ``--gpus N`` of every CPU smoke command."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="real",
        help="real: verl's Ray + vLLM rollout + FSDP2 actor path on this CPU; inprocess: one process, HF generate() "
        "in place of vLLM, no Ray (default: %(default)s)",
    )
    parser.add_argument(
        "--gpus",
        type=_logical_gpus,
        default=1,
        help="logical GPUs of the local Ray cluster: actor ranks = vLLM replicas (real; default: %(default)s)",
    )


def smoke_command(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    recipe: str,
    default_output_dir: str,
    warm_steps: int,
    build_trainer: Callable[[Path, list[str], int], Any],
    build_real: Callable[[Path, list[str], int, int], tuple[Any, type]],
    columns: Sequence[Column],
    panels: dict[str, Sequence[Column]],
    witness: bool = True,
    secrets: Callable[[Any], dict[str, str]] | None = None,
) -> int:
    """The command line of a CPU smoke run: ``--backend``, ``--gpus``, ``--output-dir``, ``--warm-steps`` and Hydra
    overrides of ``recipe`` (the YAML file, named in the help). ``argv``: the arguments, ``sys.argv[1:]`` when None.

    ``--backend real`` (the default): verl's own Ray + vLLM + FSDP2 path on this CPU
    (``cpu_backend.real_stack.run_real_smoke`` with the config and task runner class of
    ``build_real(output_dir, overrides, warm_steps, gpus)``). ``--backend inprocess``: the in-process backend
    (``run_smoke`` of ``build_trainer(output_dir, overrides, warm_steps)``), in ``<output-dir>_inprocess`` by default.
    ``secrets(config)``: {variable: value} of API keys the real path's Ray workers need (e.g. RLPR's validation judge),
    put in their environment, never in the config. Returns the exit status."""
    quiet_known_warnings(on_cpu=True)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_backend_arguments(parser)
    parser.add_argument(
        "--output-dir",
        default=None,
        help=f"data, models, checkpoints, metrics (default: {default_output_dir}, {default_output_dir}_inprocess)",
    )
    parser.add_argument(
        "--warm-steps", type=int, default=warm_steps, help="supervised steps of the warm start (default: %(default)s)"
    )
    parser.add_argument("overrides", nargs="*", help=f"Hydra overrides of {recipe}")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # a tiny model on 2 cores: threading overhead costs 10x
    suffix = "_inprocess" if args.backend == "inprocess" else ""
    out_dir = Path(args.output_dir or default_output_dir + suffix).resolve()
    argv = sys.argv[1:] if argv is None else list(argv)
    if args.backend == "inprocess":
        print(INPROCESS_BANNER)
        trainer = build_trainer(out_dir, list(args.overrides), args.warm_steps)
        return run_smoke(trainer, prog=prog, argv=argv, output_dir=out_dir, columns=columns, panels=panels)
    from cpu_backend.real_stack import run_real_smoke, use_environment

    use_environment()
    config, runner = build_real(out_dir, list(args.overrides), args.warm_steps, args.gpus)
    return run_real_smoke(
        config,
        runner,
        prog=prog,
        argv=argv,
        output_dir=out_dir,
        columns=columns,
        panels=panels,
        n_gpus=args.gpus,
        witness=witness,
        extra_env=secrets(config) if secrets is not None else {},  # API keys the workers need, never in the config
    )
