"""RM-R1 training entry point: ``python -m rm_r1.main --config-name <setting> [key=value ...]`` (Hydra).

The settings are the YAML files of ``configs/rm_r1/`` (``--help`` lists them): ``grpo_*`` (stage 2, GRPO) and
``sft_*`` (stage 1, distillation SFT, run under ``torchrun``). This module only checks: it composes the setting,
refuses unknown keys, bad values and legacy reward keys (``harness.config_check``), requires verl's classic
trainer for GRPO (``trainer.use_v1=false``, the trainer the CPU smoke test drives), makes the paths absolute, all before
Ray starts or any data is read; then GRPO trains through verl's ``run_ppo`` with verl's classic task runner
(``harness.task_runner``: verl's ``RayPPOTrainer``, and this check run again on the resolved config inside Ray),
and SFT through ``verl.trainer.sft_trainer.main``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping

import hydra
from omegaconf import DictConfig

from harness import config_check
from harness.config_paths import recipe_config_dir
from harness.reporting import quiet_known_warnings

CONFIG_DIR = recipe_config_dir("rm_r1")
DEFAULT_SETTING = "grpo_instruct_7b"
SMOKE_SETTING = "smoke_cpu"


def setting_names() -> list[str]:
    """The settings ``--config-name`` accepts: the shared bases ``grpo`` and ``sft`` are not run by themselves, and
    ``smoke_cpu`` runs through ``python -m rm_r1.smoke`` (a local Ray cluster on CPU)."""
    not_settings = {"grpo", "sft", SMOKE_SETTING}
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem not in not_settings)


def is_sft(name: str) -> bool:
    """Whether a setting builds on verl's SFT trainer (run under torchrun) rather than its PPO trainer."""
    return config_check.verl_base(CONFIG_DIR / f"{name}.yaml") in config_check.sft_bases()


def check_config(config: DictConfig, choices: Mapping[str, str | None] | None = None, name: str = "") -> None:
    """Refuse a config before anything starts (``ConfigError``): see the module doc."""
    base = config_check.verl_base(CONFIG_DIR / f"{name}.yaml") if name else "ppo_trainer"
    if base in config_check.ppo_bases() and config.trainer.use_v1:
        raise config_check.ConfigError(
            "RM-R1 GRPO runs on verl's classic RayPPOTrainer (the one its CPU smoke test drives): set "
            "trainer.use_v1=false"
        )
    config_check.check(config, base, choices or {}, source=f"the RM-R1 config {name}".rstrip())


def usage() -> str:
    settings = "\n".join(f"  {name}{'   (torchrun)' if is_sft(name) else ''}" for name in setting_names())
    return f"""usage: python -m rm_r1.main --config-name SETTING [key=value ...] [--cfg job]
       torchrun [torchrun options] -m rm_r1.main --config-name sft_... [key=value ...]
       python -m rm_r1.main --preflight --config-name SETTING [key=value ...]

Trains an RM-R1 judge with verl's own trainers. SETTING (default {DEFAULT_SETTING}) is a file of {CONFIG_DIR}:
{settings}

  --cfg job      print the composed config and exit (train nothing)
  --preflight    check the config, the GPUs and the logger's key, print nodes, GPUs per node and the output folder
                 (the launchers in recipes/rm_r1 run this first)

Paths may use ~ and $VARIABLES (quote them for Hydra); relative paths are taken from the current folder (the
launchers run from the repository root) and made absolute before anything starts. On several nodes the package must
be installed at the same path on every node (Ray ships no code), see the README, "Running on a cluster".
"""


@hydra.main(config_path=str(CONFIG_DIR), config_name=DEFAULT_SETTING, version_base=None)
def _hydra_main(config: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    hydra_config = HydraConfig.get()
    name = hydra_config.job.config_name
    try:
        check_config(config, dict(hydra_config.runtime.choices), name)
    except config_check.ConfigError as err:  # the message alone, not Hydra's "Error executing job" and a traceback
        raise SystemExit(f"python -m rm_r1.main --config-name {name}: {err}") from None
    config_check.resolve_paths(config)
    print(f"RM-R1 {name}: checkpoints in {config.trainer.default_local_dir}")
    if is_sft(name):
        if "LOCAL_RANK" not in os.environ:
            raise SystemExit(
                f"{name} runs under torchrun: bash recipes/rm_r1/run_{name}.sh, or torchrun ... -m rm_r1.main"
            )
        from verl.trainer.sft_trainer import main as verl_sft_main

        verl_sft_main(config)  # Hydra hands a config given directly to the function (no second parse)
    else:
        from harness.task_runner import run_classic

        run_classic(config, grpo_task_runner_class(name))


def grpo_task_runner_class(name: str = DEFAULT_SETTING) -> type:
    """verl's classic task runner (``harness.task_runner``) with verl's ``RayPPOTrainer``, running this entry
    point's ``check_config`` again inside Ray on the resolved config (what verl's own runner does with its check)."""
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    from harness.task_runner import classic_task_runner_class

    return classic_task_runner_class(RayPPOTrainer, functools.partial(check_config, name=name), name="RMR1TaskRunner")


def main() -> None:
    """The command line: our own ``--help``, setting-name check and ``--preflight``, then Hydra."""
    quiet_known_warnings()
    argv = sys.argv[1:]
    if "--help" in argv or "-h" in argv:
        print(usage())
        return
    if argv[:1] == ["--preflight"]:
        from harness.preflight import preflight_command

        preflight_command(
            argv[1:], CONFIG_DIR, DEFAULT_SETTING, lambda c, ch: check_config(c, ch, _name(argv[1:])), is_sft
        )
        return
    name = config_check.config_name_argument(argv)
    custom_path = config_check.config_path_given(argv)
    if name == SMOKE_SETTING and not custom_path:
        raise SystemExit(
            f"python -m rm_r1.main: the {SMOKE_SETTING} setting runs with its CPU settings: "
            "use python -m rm_r1.smoke [key=value ...]"
        )
    if name is not None and not custom_path and name not in setting_names():
        raise SystemExit(f"python -m rm_r1.main: {config_check.nearest_recipe(name, setting_names())}")
    _hydra_main()


def _name(argv: list[str]) -> str:
    return config_check.config_name_argument(argv) or DEFAULT_SETTING


if __name__ == "__main__":
    main()
