"""What this project's commands print and write about a run (both recipes use it).

* ``quiet_known_warnings()``: the one place that silences verl's known harmless import-time warnings; every entry
  point calls it first, before verl is imported.
* ``MetricsFile``: verl's full metrics of every logged step, appended to a jsonl file (a resumed run adds to it).
* ``StepTable``: a short per-step table of the metrics that matter, instead of verl's one-line dump of every metric.
* ``reporting_to(...)``: routes a trainer's ``Tracking`` (verl's logger) to a ``StepTable`` and a ``MetricsFile``
  (through ``harness.verl_patches``, the one module that patches verl for it).
* ``plot_curves(...)``: a PNG of chosen metrics over steps, read back from the whole metrics file.
* ``step_progress(...)``: a progress bar for a warm start (``WARM_START_PROGRESS``).
* ``already_complete(...)`` / ``summary_lines(...)``: what a run says at its start (already done, resuming) and end
  (steps done, final validation, checkpoints, how to continue).

The CPU smoke commands built on these are ``cpu_backend.smoke``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import verl_patches
from harness.files import write_atomically

# (message regex, category, module regex) of warnings verl 0.9.1 raises on every import of its trainer, none of which
# concerns this project:
# * verl/workers/engine/__init__.py:28-72 tries to import five optional training engines (torchtitan, veomni,
#   automodel, mindspeed, megatron) and warns for each one that is not installed; the recipes use the FSDP engine.
# * verl/trainer/ppo/ray_trainer.py:285 marks the classic RayPPOTrainer deprecated ("wil be removed in v0.9.0"),
#   through verl/utils/import_utils.py:227 (a FutureWarning at every construction). It is still in 0.9.1, which is
#   the pinned version, and RLPR needs it: it scores responses with an actor forward in the driver, between
#   generation and filtering, which only the classic trainer's driver-side batch allows.
# * verl/trainer/ppo/utils.py:103 (need_critic) warns at every call that GRPO (adv_estimator != gae) has no critic: the
#   recipes use GRPO on purpose.
# * torchdata's StatefulDataLoader (verl's dataloader) calls torch.set_vital, which torch 2.13 deprecates.
_HARMLESS_WARNINGS: tuple[tuple[str, type[Warning], str], ...] = (
    (
        r"(torchtitan|veomni|automodel|mindspeed|megatron) engine is not available",
        UserWarning,
        r"verl\.workers\.engine",
    ),
    (r"Warning: Class 'verl\.trainer\.ppo\.ray_trainer\.RayPPOTrainer' is deprecated", FutureWarning, ""),
    (r"Disabled critic as algorithm\.adv_estimator != gae", UserWarning, ""),
    (r"'set_vital' is deprecated", UserWarning, r"torchdata\."),
)
# (logger, message prefix) of log records that are harmless where they are silenced:
# verl/trainer/main_ppo.py:188 repeats the trainer deprecation above when the classic trainer is chosen.
_HARMLESS_LOGS: tuple[tuple[str, str], ...] = (("verl.trainer.main_ppo", "Legacy trainer `main_ppo_v0.py`"),)
# On a machine without accelerators (the CPU smoke runs), verl/plugin/platform/platform_manager.py:113 and :131
# say that no GPU was found; on a GPU run the same lines point at a real problem, so only CPU commands drop them.
_CPU_HARMLESS_LOGS: tuple[tuple[str, str], ...] = (
    ("verl.plugin.platform.platform_manager", "No supported accelerator detected"),
    ("verl.plugin.platform.platform_manager", "Platform '%s' (%s) is registered but not available"),
)


class _DropMessages(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_known_warnings(on_cpu: bool = False) -> None:
    """Silence verl's known harmless warnings (listed above, with the verl lines that raise them) in this process.

    Targeted filters by message, category and module, so any other warning still shows. Call it at the start of an
    entry point, before verl is imported (some of the warnings are raised at import). ``on_cpu``: also drop verl's
    "no accelerator found" log lines, for commands that run on CPU on purpose. Calling it twice adds nothing.
    """
    for message, category, module in _HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name, prefix in _HARMLESS_LOGS + (_CPU_HARMLESS_LOGS if on_cpu else ()):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropMessages(prefix))


# ---------------------------------------------------------------------------------------------------------------------
# metrics file


class MetricsFile:
    """A verl ``Tracking`` backend that appends ``{"step": s, "data": {...}}`` lines (verl's ``file`` backend format)
    to ``path``, one unbuffered write per step, so a resumed run adds to what the earlier runs wrote.

    It also remembers the last logged step and its metrics (``last_step``, ``last``) for the closing summary.
    """

    def __init__(self, path: str | os.PathLike):
        import orjson

        self._dumps = lambda record: orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fp = open(self.path, "ab", buffering=0)
        if self._fp.tell() and not _ends_with_newline(self.path):  # a run killed in the middle of a line
            self._fp.write(b"\n")
        self.last_step: int | None = None
        self.last: dict[str, Any] = {}

    def log(self, data: dict, step: int) -> None:
        self._fp.write(self._dumps({"step": step, "data": data}) + b"\n")
        self.last_step, self.last = step, dict(data)

    def finish(self) -> None:
        self._fp.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read_metrics(path: str | os.PathLike) -> tuple[dict[int, dict[str, Any]], int]:
    """The metrics of every step in a metrics file, and the number of unreadable lines skipped (a line cut by a kill).

    Records of the same step are merged, a later value winning: a resumed run repeats the steps after its checkpoint,
    and logs what it computes before its first step (the r' cache) at the checkpoint's step."""
    steps: dict[int, dict[str, Any]] = {}
    bad = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                steps.setdefault(int(record["step"]), {}).update(record["data"])
            except (ValueError, KeyError, TypeError):
                bad += 1
    return dict(sorted(steps.items())), bad


# ---------------------------------------------------------------------------------------------------------------------
# the per-step table


Value = Callable[[dict[str, Any]], "float | None"]


@dataclass(frozen=True)
class Column:
    """One column of a ``StepTable`` or one curve of ``plot_curves``: a header and the metric it shows (a metric name,
    or a function of a step's metrics returning None where it does not apply)."""

    header: str
    metric: str | Value
    fmt: str = ".3f"

    def value(self, metrics: dict[str, Any]) -> float | None:
        value = self.metric(metrics) if callable(self.metric) else metrics.get(self.metric)
        if value is None:
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            return None


class StepTable:
    """A verl ``Tracking`` backend that prints one short row per step (a header first); a step none of whose columns
    has a value (e.g. start-up bookkeeping) prints nothing."""

    def __init__(self, columns: Sequence[Column], width: int = 8):
        self.columns = list(columns)
        self.widths = [max(width, len(c.header)) for c in self.columns]
        self._header_done = False

    def header(self) -> str:
        return "  ".join([f"{'step':>5}", *(f"{c.header:>{w}}" for c, w in zip(self.columns, self.widths))])

    def row(self, step: int, metrics: dict[str, Any]) -> str | None:
        values = [c.value(metrics) for c in self.columns]
        if all(v is None for v in values):
            return None
        cells = [
            f"{'-':>{w}}" if v is None else f"{v:>{w}{c.fmt}}" for v, c, w in zip(values, self.columns, self.widths)
        ]
        return "  ".join([f"{step:>5}", *cells])

    def log(self, data: dict, step: int) -> None:
        from tqdm import tqdm

        row = self.row(step, data)
        if row is None:
            return
        if not self._header_done:
            tqdm.write(self.header())
            self._header_done = True
        tqdm.write(row)  # above any progress bar, not through it

    def finish(self) -> None:
        pass


@contextmanager
def reporting_to(table: StepTable, metrics: MetricsFile) -> Iterator[None]:
    """While inside, every verl ``Tracking`` a trainer builds logs to ``metrics`` always, prints ``table`` in place
    of verl's ``console`` backend (when the config asks for ``console``), replaces the ``file`` backend and keeps any
    other configured backend (tensorboard, wandb, ...); verl's raw-dict prints of the validation metrics
    (``Initial/Final validation metrics: {...}``) are left out, since the table and the closing summary show them.
    The patches of verl this takes are ``harness.verl_patches``'."""
    with verl_patches.tracking_to(table, metrics), verl_patches.no_validation_dict_prints():
        yield


# ---------------------------------------------------------------------------------------------------------------------
# curves


def plot_curves(
    metrics_path: str | os.PathLike, png_path: str | os.PathLike, panels: dict[str, Sequence[Column]]
) -> Path:
    """Write a PNG with one panel per entry of ``panels`` (title -> curves), each curve a metric over the steps of the
    whole metrics file; steps where a curve has no finite value are left out of it. Returns the PNG path."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    steps, _ = read_metrics(metrics_path)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for curve in curves:
            points = [(s, curve.value(m)) for s, m in steps.items()]
            points = [(s, v) for s, v in points if v is not None and math.isfinite(v)]
            if points:
                ax.plot(*zip(*points), marker="o", label=curve.header)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.tight_layout()
    png_path = Path(png_path)
    try:
        write_atomically(png_path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)
    return png_path


# ---------------------------------------------------------------------------------------------------------------------
# progress bars


@contextmanager
def step_progress(description: str, total: int) -> Iterator[None]:
    """A progress bar advanced by every ``torch`` optimizer step taken inside (e.g. a warm start's training loop);
    shown only once a step is taken, so a cached result prints nothing."""
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from tqdm import tqdm

    bar = None

    def advance(optimizer: object, args: tuple, kwargs: dict) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=description, unit="step")
        bar.update(1)

    handle = register_optimizer_step_post_hook(advance)
    try:
        yield
    finally:
        handle.remove()
        if bar is not None:
            bar.close()


# ---------------------------------------------------------------------------------------------------------------------
# the closing summary of a run


def latest_checkpoint_step(checkpoint_dir: str | os.PathLike) -> int | None:
    """The step of verl's latest checkpoint in ``checkpoint_dir`` (its tracker file), None when there is none."""
    from verl.utils.checkpoint.checkpoint_manager import get_checkpoint_tracker_filename

    tracker = Path(get_checkpoint_tracker_filename(str(checkpoint_dir)))
    if not tracker.exists():
        return None
    return int(tracker.read_text().strip())


def continue_command(prog: str, argv: Sequence[str], total_steps: int) -> str:
    """``prog`` with the user's arguments and ``trainer.total_training_steps=<total_steps>`` in place of theirs."""
    kept = [a for a in argv if not a.lstrip("+").startswith("trainer.total_training_steps=")]
    return shlex.join([*prog.split(), *kept, f"trainer.total_training_steps={total_steps}"])


_VAL_ACCURACY = re.compile(r"val-core/(.+)/acc/mean@\d+")
_VAL_AVERAGE = re.compile(r"val/[^/]+/avg")


def validation_accuracy(metrics: dict[str, Any]) -> float | None:
    """Validation accuracy of a step: verl's per-source ``val-core/<source>/acc/mean@<n>``, averaged over sources
    (None at a step without validation)."""
    accs = [float(v) for k, v in metrics.items() if _VAL_ACCURACY.fullmatch(k) and v is not None]
    return sum(accs) / len(accs) if accs else None


def _validation_lines(metrics: dict[str, Any]) -> list[str]:
    accuracy = validation_accuracy(metrics)
    if accuracy is None:
        return []
    sources = sum(1 for k in metrics if _VAL_ACCURACY.fullmatch(k))
    lines = [f"  accuracy, mean over {sources} data source(s): {accuracy:.4f} (per source in the metrics file)"]
    lines += [
        f"  {k}: {float(v):.4f}" for k, v in sorted(metrics.items()) if _VAL_AVERAGE.fullmatch(k) and v is not None
    ]
    return lines


def already_complete(checkpoints: Path, total: int, resume_mode: str, prog: str, argv: Sequence[str]) -> int | None:
    """The latest checkpointed step (None: none, or resuming is off); prints how to go further when it is ``total``."""
    done = latest_checkpoint_step(checkpoints) if resume_mode != "disable" else None
    if done is not None and done >= total:
        print(
            f"The run is complete at step {done} of {total} (checkpoints in {checkpoints}).\n"
            f"To go further: {continue_command(prog, argv, 2 * total)}"
        )
    elif done:
        print(f"Resuming from step {done} of {total} ({checkpoints / f'global_step_{done}'})")
    return done


def summary_lines(
    metrics: MetricsFile,
    done: int | None,
    total: int,
    checkpoints: Path,
    output_dir: Path,
    prog: str,
    argv: Sequence[str],
) -> list[str]:
    metrics_path, png_path = output_dir / "metrics.jsonl", output_dir / "metrics.png"
    last = metrics.last_step if metrics.last_step is not None else done or 0
    saved = sorted(p.name for p in checkpoints.glob("global_step_*")) if checkpoints.exists() else []
    lines = [f"\nDone: step {last} of {total}."]
    final_val = _validation_lines(metrics.last)
    if final_val:
        lines += [f"Final validation (step {last}):", *final_val]
    lines += [
        f"Checkpoints: {checkpoints} ({', '.join(saved) or 'none saved'})",
        f"Metrics: {metrics_path} (every metric of every step); curves: {png_path}",
        f"To go further: {continue_command(prog, argv, 2 * total)}",
    ]
    return lines


WARM_START_PROGRESS = "warm start (once, then cached)"
