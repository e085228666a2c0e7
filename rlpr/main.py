"""RLPR training entry point: ``python -m rlpr.main --config-name <recipe> key=value ...`` (Hydra).

The recipes are the YAML files of ``configs/rlpr/`` (``python -m rlpr.main --help`` lists them); each lists
``_base.yaml`` (not a recipe: verl's ``ppo_trainer`` plus what every RLPR recipe shares, the whole ``rlpr:`` section
included) in its defaults and holds only what differs. ``--cfg job`` prints the composed config without
training. ``smoke_cpu`` runs through ``python -m rlpr.smoke`` (a local Ray cluster on CPU), not here.

The flow follows verl's ``main_ppo`` with the classic trainer: check the composed config (``check_config``: unknown
keys with the nearest valid one, value types, verl's ``validate_config``, the RLPR rules) and make its paths absolute
(``harness.config_check.resolve_paths``), all before Ray starts or any data is read; then start or join Ray and
run ``RLPRTaskRunner`` in a Ray actor. The runner checks the training rows (``rlpr.data.checks``, policy
``rlpr.bad_prompt_policy``), builds the datasets and runs ``rlpr.training.trainer.RLPRTrainer``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from harness import config_check
from harness.config_paths import recipe_config_dir
from harness.reporting import quiet_known_warnings

logger = logging.getLogger(__name__)

CONFIG_DIR = recipe_config_dir("rlpr")
DEFAULT_RECIPE = "qwen2.5-7b-base"
BASE_CONFIG = "_base"  # shared by the recipes, not one itself
SMOKE_RECIPE = "smoke_cpu"
CHECKED_DATA_FILE = "rlpr_data/train_checked.parquet"


def recipe_names() -> list[str]:
    """The RLPR recipes that ``--config-name`` accepts (every YAML of the folder but the shared base)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != BASE_CONFIG)


def compose_recipe(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The config that ``python -m rlpr.main --config-name <name> <overrides>`` trains with (not validated)."""
    if name not in recipe_names():
        raise ValueError(f"unknown RLPR recipe {name!r}; expected one of {recipe_names()} (in {CONFIG_DIR})")
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name=name, overrides=list(overrides))


def rlpr_section_schema() -> DictConfig:
    """The keys an ``rlpr:`` section may hold: those of the shared base's (free-form where it has ``{}``)."""
    return OmegaConf.load(CONFIG_DIR / f"{BASE_CONFIG}.yaml").rlpr


def _check_rlpr_values(config: DictConfig) -> None:
    """Build what the trainer builds from the ``rlpr:`` section, so a bad value fails here rather than in Ray."""
    from rlpr.answer import repetition_penalty
    from rlpr.training.loss_tokens import check_policy_loss_tokens
    from rlpr.training.trainer import DEBIAS_MODES, scoring_config_from, std_filter_from

    rl = config.rlpr
    if rl.debias.mode not in DEBIAS_MODES:
        raise config_check.ConfigError(f"rlpr.debias.mode must be one of {DEBIAS_MODES}, got {rl.debias.mode!r}")
    checks = {
        "rlpr": lambda: scoring_config_from(config),
        "rlpr.filter": lambda: std_filter_from(config),
        "rlpr.repetition": lambda: repetition_penalty(
            "a b", rl.repetition.window, rl.repetition.limit, rl.repetition.split_rule
        ),
        "rlpr.policy_loss_tokens": lambda: check_policy_loss_tokens(str(rl.policy_loss_tokens), str(rl.format_mode)),
    }
    for section, build in checks.items():
        try:
            build()
        except (TypeError, ValueError) as err:
            raise config_check.ConfigError(f"{section}: {err}") from err


def check_config(config: DictConfig, choices: Mapping[str, str | None] | None = None) -> None:
    """Reject configs the RLPR trainer cannot honour, before Ray starts (``ConfigError``, a ``ValueError``).

    RLPR needs the classic trainer (``trainer.use_v1=false``), an ``rlpr:`` section, the validation judge's API keys
    named by environment variables that are set (``validation_judge_secrets``) and no setting its ``fit`` cannot
    honour (``check_trainer_supports``); then ``harness.config_check.check`` (unknown keys, value types, legacy
    reward keys, verl's ``validate_config``, the ``_target_`` sections) and the ``rlpr:`` values. ``choices``: Hydra's
    defaults-list choices of the recipe.
    """
    from rlpr.training.trainer import check_trainer_supports

    if config.trainer.use_v1:
        raise config_check.ConfigError("RLPR runs on verl's classic RayPPOTrainer: set trainer.use_v1=false")
    if "rlpr" not in config:
        raise config_check.ConfigError("the config has no rlpr: section; start from a recipe in configs/rlpr/")
    validation_judge_secrets(config)
    try:  # first: verl's own checks would try to build a critic (and load its model) for a critic estimator
        check_trainer_supports(config)
    except ValueError as err:
        raise config_check.ConfigError(str(err)) from err
    config_check.check(
        config, "ppo_trainer", choices or {}, own_sections={"rlpr": rlpr_section_schema()}, source="the RLPR config"
    )
    _check_rlpr_values(config)


def validation_judge_secrets(config: DictConfig) -> dict[str, str]:
    """{variable: value} of the validation judge's API keys (``reward.custom_reward_function.reward_kwargs``:
    ``judge_api_key_env`` and ``judge_endpoints[*].api_key_env``; ``rlpr.evaluation.validation.judge_secrets``), to be
    put in the Ray workers' environment. A literal key, or a named variable that is not set, is a ``ConfigError``."""
    from rlpr.evaluation.validation import judge_secrets

    reward_function = config.get("reward", {}).get("custom_reward_function") or {}
    try:
        return judge_secrets(reward_function.get("reward_kwargs") or {})
    except ValueError as err:
        raise config_check.ConfigError(f"reward.custom_reward_function.{err}") from None


def check_training_data(config: DictConfig, tokenizer: Any) -> list[str]:
    """Check the training rows (``rlpr.data.checks``); return the training files to use.

    Policy ``error`` raises, naming every bad row. Policy ``filter`` drops the bad rows and, if there were any,
    writes the kept rows to ``<trainer.default_local_dir>/rlpr_data/train_checked.parquet`` to train on.
    """
    from harness.rows import write_rows
    from rlpr.data.checks import check_files
    from rlpr.training.trainer import scoring_config_from

    files = config.data.train_files
    files = [files] if isinstance(files, str) else list(files)
    checked = check_files(
        files,
        tokenizer,
        config.data.max_prompt_length,
        config.rlpr.bad_prompt_policy,
        prompt_key=config.data.prompt_key,
        chat_template_kwargs=config.data.get("apply_chat_template_kwargs") or {},
        max_reference_length=scoring_config_from(config).max_scoring_length,
    )
    if not checked.bad:
        return files
    path = write_rows(checked.rows, Path(config.trainer.default_local_dir) / CHECKED_DATA_FILE)
    logger.warning("training on %s: %d rows kept, dropped %s", path, len(checked.rows), checked.counts)
    return [str(path)]


def rlpr_task_runner_class() -> type:
    """verl's classic task runner (``harness.task_runner``) with the RLPR config check, the training-data checks
    (``check_training_data``) and ``RLPRTrainer``. Run it in a Ray actor (``harness.task_runner.run_classic``)."""
    from harness.task_runner import classic_task_runner_class
    from rlpr.training.trainer import RLPRTrainer

    return classic_task_runner_class(RLPRTrainer, check_config, check_training_data, name="RLPRTaskRunner")


def run_rlpr(config: DictConfig, choices: Mapping[str, str | None] | None = None) -> None:
    """Check the config and make its paths absolute, then train through verl's ``run_ppo`` (it starts Ray, or joins a
    running cluster). The validation judge's API keys reach the Ray workers in Ray's runtime environment
    (``harness.task_runner.start_ray_with_secrets``), never through the config."""
    from harness.task_runner import run_classic

    check_config(config, choices)
    config_check.resolve_paths(config)
    print(f"RLPR checkpoints, rlpr_state.pt and the r' cache: {config.trainer.default_local_dir}")
    run_classic(config, rlpr_task_runner_class(), validation_judge_secrets(config))


def usage() -> str:
    """``python -m rlpr.main --help``: the recipes and how to use them (Hydra's own help would print the config)."""
    recipes = "\n".join(
        f"  {name}{'   (python -m rlpr.smoke runs it)' if name == SMOKE_RECIPE else ''}" for name in recipe_names()
    )
    return f"""usage: python -m rlpr.main [--config-name RECIPE] [key=value ...] [--cfg job]

Trains RLPR with verl's classic trainer. RECIPE (default {DEFAULT_RECIPE}) is a file of {CONFIG_DIR}:
{recipes}

  --cfg job                  print the composed config and exit (train nothing)
  --preflight                check the config, the GPUs and the logger's key, print nodes, GPUs per node and the
                             output folder, train nothing (the launchers run this first)
  key=value                  a Hydra override, e.g. rlpr.filter.beta=0.6 "data.train_files=$HOME/data/train.parquet"
  --hydra-help               Hydra's own flags

Paths may use ~ and $VARIABLES (quote them for Hydra); relative paths are taken from the current folder and made
absolute before Ray starts. Unknown keys and bad values are refused before anything starts. On several nodes the
package must be installed at the same path on every node (Ray ships no code), see the README, "Running on a cluster".
"""


@hydra.main(config_path=str(CONFIG_DIR), config_name=DEFAULT_RECIPE, version_base=None)
def _hydra_main(config: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    hydra_config = HydraConfig.get()
    if hydra_config.job.config_name == SMOKE_RECIPE:
        raise SystemExit(
            f"the {SMOKE_RECIPE} recipe runs with its CPU settings: use python -m rlpr.smoke [key=value ...]"
        )
    try:
        run_rlpr(config, dict(hydra_config.runtime.choices))
    except config_check.ConfigError as err:  # the message alone, not Hydra's "Error executing job" and a traceback
        raise SystemExit(f"python -m rlpr.main --config-name {hydra_config.job.config_name}: {err}") from None


def main() -> None:
    """The command line: our own ``--help`` and recipe-name check, then Hydra."""
    quiet_known_warnings()
    argv = sys.argv[1:]
    if "--help" in argv or "-h" in argv:
        print(usage())
        return
    if argv[:1] == ["--preflight"]:  # what a launcher runs first (harness.preflight)
        from harness.preflight import preflight_command

        preflight_command(argv[1:], CONFIG_DIR, DEFAULT_RECIPE, check_config)
        return
    name = config_check.config_name_argument(argv)
    custom_path = config_check.config_path_given(argv)
    if name is not None and not custom_path and name not in recipe_names():
        raise SystemExit(f"python -m rlpr.main: {config_check.nearest_recipe(name, recipe_names())}")
    _hydra_main()


if __name__ == "__main__":
    main()
