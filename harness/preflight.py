"""What a launcher checks before it starts a run: the config, the GPUs it asks for, and the logger's credentials.

``python -m rlpr.main --preflight ...`` and ``python -m rm_r1.main --preflight ...`` run ``preflight_command`` on the
same config the run would use: check it, make its paths absolute, then check that the GPUs are there and that a
``wandb`` logger has a key, and print the layout the launcher needs (nodes, GPUs per node, output folder), one value a
line. Every problem is named with what to do, in seconds, instead of a run that waits forever for GPUs Ray does not
have (verl's resource pool asks Ray for ``trainer.n_gpus_per_node`` GPUs on each of ``trainer.nnodes`` nodes,
verl/trainer/main_ppo_v0.py: init_resource_pool_mgr), dies in NCCL, or dies at its first log line in wandb.
"""

from __future__ import annotations

import contextlib
import netrc
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from harness import config_check

# The host wandb writes into ~/.netrc on `wandb login`.
WANDB_HOST = "api.wandb.ai"
# wandb modes that need no key.
WANDB_KEYLESS_MODES = ("offline", "disabled", "dryrun")


class PreflightError(RuntimeError):
    """The run cannot start here; the message says what is missing and what to do."""


def local_gpu_count() -> int:
    """GPUs on this machine: ``nvidia-smi -L`` (one ``GPU i: ...`` line each), 0 without a driver."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))


def ray_gpu_count(address: str) -> int:
    """GPUs of the running Ray cluster at ``address`` (what verl's resource pool draws from)."""
    import ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        return int(ray.cluster_resources().get("GPU", 0))
    finally:
        ray.shutdown()


def gpu_problem(
    nnodes: int,
    gpus_per_node: int,
    *,
    ray_address: str | None,
    per_node: bool,
    local_count: Callable[[], int] = local_gpu_count,
    cluster_count: Callable[[str], int] = ray_gpu_count,
) -> str | None:
    """Why ``nnodes`` x ``gpus_per_node`` GPUs are not there, or None.

    ``ray_address``: a running Ray cluster the run joins (its GPUs count); None: a run on this machine alone.
    ``per_node``: each node runs its own processes (torchrun), so this machine needs ``gpus_per_node``.
    """
    if per_node:
        found = local_count()
        if found < gpus_per_node:
            return (
                f"this node needs {gpus_per_node} GPUs (GPUS_PER_NODE / trainer.n_gpus_per_node), nvidia-smi shows "
                f"{found}"
            )
        return None
    needed = nnodes * gpus_per_node
    if ray_address is None:
        if nnodes > 1:
            return f"{nnodes} nodes need a running Ray cluster: start it first (ray start), see the README"
        found = local_count()
        where = "nvidia-smi shows"
    else:
        found = cluster_count(ray_address)
        where = f"the Ray cluster at {ray_address} has"
    if found < needed:
        return (
            f"the run needs {needed} GPUs ({nnodes} node(s) x {gpus_per_node}: NNODES / GPUS_PER_NODE, trainer.nnodes "
            f"/ trainer.n_gpus_per_node), {where} {found}"
        )
    return None


def wandb_problem(loggers: Sequence[str], env: Mapping[str, str], home: Path) -> str | None:
    """Why a ``wandb`` logger would fail at its first log line (no key), or None."""
    if "wandb" not in loggers or env.get("WANDB_API_KEY") or env.get("WANDB_MODE") in WANDB_KEYLESS_MODES:
        return None
    path = Path(env.get("NETRC") or home / ".netrc")
    try:
        if path.is_file() and netrc.netrc(path).authenticators(WANDB_HOST):
            return None
    except (netrc.NetrcParseError, OSError):
        pass
    return (
        "the wandb logger needs a key: run `wandb login` (or set WANDB_API_KEY), or log elsewhere with "
        "LOGGER='[console,tensorboard]' (trainer.logger=[console,tensorboard])"
    )


def _loggers(config: DictConfig) -> list[str]:
    value = OmegaConf.select(config, "trainer.logger", default=None)
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, ListConfig) else [str(value)]


def preflight(config: DictConfig, *, ray_address: str | None, per_node: bool) -> list[str]:
    """The layout lines (nodes, GPUs per node, output folder) of a checked, path-resolved config; raises
    ``PreflightError`` naming every missing resource."""
    nnodes, gpus = int(config.trainer.nnodes), int(config.trainer.n_gpus_per_node)
    problems = [
        p
        for p in (
            wandb_problem(_loggers(config), os.environ, Path.home()),
            gpu_problem(nnodes, gpus, ray_address=ray_address, per_node=per_node),
        )
        if p
    ]
    if problems:
        raise PreflightError("cannot start:\n  " + "\n  ".join(problems))
    return [str(nnodes), str(gpus), str(config.trainer.default_local_dir)]


def compose_checked(
    config_dir: Path,
    name: str,
    overrides: Sequence[str],
    check: Callable[[DictConfig, Mapping[str, str | None]], None],
) -> DictConfig:
    """The config ``--config-name name overrides`` composes to, checked by ``check`` and with absolute paths."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        composed = compose(config_name=name, overrides=list(overrides), return_hydra_config=True)
    choices = dict(composed.hydra.runtime.choices)
    with open_dict(composed):
        del composed["hydra"]
    check(composed, choices)
    config_check.resolve_paths(composed)
    return composed


def split_command_line(argv: Sequence[str], default_name: str) -> tuple[str, list[str]]:
    """(recipe name, overrides) of an entry point's command line (``--config-name``/``-cn`` and key=value only)."""
    name, overrides, rest = default_name, [], list(argv)
    while rest:
        arg = rest.pop(0)
        if arg in ("--config-name", "-cn") and rest:
            name = rest.pop(0)
        elif arg.startswith("--config-name="):
            name = arg.split("=", 1)[1]
        elif arg.startswith("-"):
            raise PreflightError(f"--preflight takes --config-name and key=value overrides only, not {arg}")
        else:
            overrides.append(arg)
    return name, overrides


def preflight_command(
    argv: Sequence[str],
    config_dir: Path,
    default_name: str,
    check: Callable[[DictConfig, Mapping[str, str | None]], None],
    per_node: Callable[[str], bool] = lambda name: False,
) -> None:
    """``<entry> --preflight [--config-name NAME] [key=value ...]``: print the layout lines, or exit naming what is
    wrong (the config, the GPUs, the logger's key). ``per_node(name)``: the recipe runs under torchrun."""
    from hydra.errors import HydraException

    name = default_name
    try:
        name, overrides = split_command_line(argv, default_name)
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the layout lines only
            config = compose_checked(config_dir, name, overrides, check)
        lines = preflight(config, ray_address=os.environ.get("RAY_ADDRESS") or None, per_node=per_node(name))
    except (PreflightError, config_check.ConfigError, HydraException) as err:
        raise SystemExit(f"{name}: {err}") from None
    print("\n".join(lines))
