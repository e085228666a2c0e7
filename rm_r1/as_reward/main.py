"""Entry point of the judge-as-reward recipes: ``python -m rm_r1.judge_main --config-name <setting> [key=value ...]``.

The settings are the YAML files of ``configs/judge_reward/`` (``served_judge_7b``: verl serves the judge;
``external_judge``: any OpenAI-compatible judge server). Before anything starts it checks the config (unknown keys,
bad values, legacy reward keys, verl's ``validate_config``: ``harness.config_check``; verl's classic trainer,
``trainer.use_v1=false``) and makes the paths absolute; then it trains through verl's ``run_ppo`` with verl's classic
task runner (``harness.task_runner``), which builds ``rm_r1.as_reward.trainer.JudgeRewardTrainer``
(``RayPPOTrainer`` plus the judge's ``judge/*`` step metrics) in place of ``RayPPOTrainer``.
``--preflight`` is what the launchers in ``recipes/judge_reward/`` run first.

Secrets: an external judge's API key is read from the environment variable named by ``reward_kwargs.api_key_env``
(checked to be set before anything starts) and handed to the Ray workers in Ray's runtime environment, never through
the config (which verl prints and hands to its loggers); a literal ``reward_kwargs.api_key`` is refused. A judge that
keeps failing stops the run (``rm_r1.as_reward.trainer.JudgeFailure``) with a non-zero exit and its message.
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
from harness.task_runner import run_classic

CONFIG_DIR = recipe_config_dir("judge_reward")
DEFAULT_SETTING = "served_judge_7b"
NOT_SETTINGS = {"grpo", "smoke_cpu"}  # the shared base, and the CPU smoke of the tests


def setting_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem not in NOT_SETTINGS)


def check_config(config: DictConfig, choices: Mapping[str, str | None] | None = None, name: str = "") -> None:
    """Refuse a config before anything starts (``config_check.ConfigError``)."""
    if config.trainer.use_v1:
        raise config_check.ConfigError(
            "the judge-reward recipes run on verl's classic RayPPOTrainer: set trainer.use_v1=false"
        )
    judge_secrets(config)
    config_check.check(config, "ppo_trainer", choices or {}, source=f"the judge-reward config {name}".rstrip())


def judge_secrets(config: DictConfig) -> dict[str, str]:
    """{variable: value} of the judge's API key (``reward_kwargs.api_key_env``; {} without one). A literal
    ``reward_kwargs.api_key``, or a named variable that is not set, is a ``config_check.ConfigError`` (that never
    shows the key)."""
    kwargs = config.reward.custom_reward_function.get("reward_kwargs") or {}
    if kwargs.get("api_key") is not None:
        raise config_check.ConfigError(
            "reward.custom_reward_function.reward_kwargs.api_key: a literal API key in the config is refused (verl "
            "prints the config and hands it to its loggers); export the key in an environment variable and set "
            "reward_kwargs.api_key_env to that variable's name"
        )
    name = kwargs.get("api_key_env")
    if not name:
        return {}
    value = os.environ.get(name)
    if not value:
        raise config_check.ConfigError(
            f"reward.custom_reward_function.reward_kwargs.api_key_env={name}: that environment variable is not set"
        )
    return {name: value}


def judge_failure(error: BaseException) -> BaseException | None:
    """The ``JudgeFailure`` behind ``error`` (raised in the trainer, or wrapped by Ray), else None."""
    from rm_r1.as_reward.trainer import JudgeFailure

    seen: BaseException | None = error
    while seen is not None:
        cause = getattr(seen, "cause", None)  # Ray's RayTaskError: the actor's own exception
        if isinstance(cause, JudgeFailure):
            return cause
        if isinstance(seen, JudgeFailure):
            return seen
        seen = cause or seen.__cause__
    return None


def resolve_judge_paths(config: DictConfig) -> None:
    """Make the judge's local paths absolute (Ray workers run in other folders): ``reward.reward_model.model_path``
    when it exists here (else a hub id), and ``reward_kwargs.prompt_file``."""
    rm = config.reward.reward_model
    if rm.model_path and os.path.exists(os.path.expanduser(rm.model_path)):
        rm.model_path = os.path.abspath(os.path.expanduser(rm.model_path))
    kwargs = config.reward.custom_reward_function.get("reward_kwargs") or {}
    if kwargs.get("prompt_file"):
        kwargs["prompt_file"] = os.path.abspath(os.path.expanduser(kwargs["prompt_file"]))


def judge_task_runner_class(name: str = "") -> type:
    """verl's classic task runner (``harness.task_runner``) building ``JudgeRewardTrainer``
    (``rm_r1.as_reward.trainer``: the judge's work as step metrics), with this entry point's ``check_config`` run again
    inside Ray on the resolved config."""
    from harness.task_runner import classic_task_runner_class
    from rm_r1.as_reward.trainer import JudgeRewardTrainer

    return classic_task_runner_class(
        JudgeRewardTrainer, functools.partial(check_config, name=name), name="JudgeRewardTaskRunner"
    )


@hydra.main(config_path=str(CONFIG_DIR), config_name=DEFAULT_SETTING, version_base=None)
def _hydra_main(config: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    hydra_config = HydraConfig.get()
    name = hydra_config.job.config_name
    try:
        check_config(config, dict(hydra_config.runtime.choices), name)
    except config_check.ConfigError as err:
        raise SystemExit(f"python -m rm_r1.judge_main --config-name {name}: {err}") from None
    config_check.resolve_paths(config)
    resolve_judge_paths(config)
    print(f"judge reward {name}: checkpoints in {config.trainer.default_local_dir}")
    try:
        run_classic(config, judge_task_runner_class(name), judge_secrets(config))
    except Exception as err:
        stopped = judge_failure(err)
        if stopped is None:
            raise
        raise SystemExit(f"python -m rm_r1.judge_main --config-name {name}: {stopped}") from None


def main() -> None:
    quiet_known_warnings()
    argv = sys.argv[1:]
    if "--help" in argv or "-h" in argv:
        print(
            f"usage: python -m rm_r1.judge_main [--preflight] --config-name SETTING [key=value ...]\n\n"
            f"GRPO of a policy rewarded by an RM-R1 judge. SETTING (default {DEFAULT_SETTING}) is a file of "
            f"{CONFIG_DIR}: {', '.join(setting_names())}"
        )
        return
    if argv[:1] == ["--preflight"]:
        from harness.preflight import preflight_command

        name = config_check.config_name_argument(argv[1:]) or DEFAULT_SETTING
        preflight_command(argv[1:], CONFIG_DIR, DEFAULT_SETTING, lambda c, ch: check_config(c, ch, name))
        return
    name = config_check.config_name_argument(argv)
    if name is not None and name not in setting_names():
        raise SystemExit(f"python -m rm_r1.judge_main: {config_check.nearest_recipe(name, setting_names())}")
    _hydra_main()


if __name__ == "__main__":
    main()
