"""RLPR training entry point: ``python -m rlpr.main --config-name <recipe> key=value ...`` (Hydra).

The recipes are the YAML files of ``configs/rlpr/`` (``qwen2.5-7b-base``, ``llama3.1-8b-instruct``, ``gemma2-2b-it``,
``smoke_cpu``); each holds only its changes to verl's ``ppo_trainer`` config plus the ``rlpr:`` section. Hydra's own
flags work as usual: ``--help`` lists the config, ``--cfg job`` prints the composed config without training.

The flow follows verl's ``main_ppo`` with the classic trainer: check the config (``validate_config`` and the RLPR
rules below), start or join Ray, and run ``RLPRTaskRunner`` in a Ray actor. The runner checks the training rows
(``rlpr.data_checks``, policy ``rlpr.bad_prompt_policy``), builds the datasets and runs ``rlpr.trainer.RLPRTrainer``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from pprint import pprint

import hydra
import yaml
from omegaconf import DictConfig, OmegaConf

from rlpr.config_paths import recipe_config_dir

logger = logging.getLogger(__name__)

CONFIG_DIR = recipe_config_dir("rlpr")
DEFAULT_RECIPE = "qwen2.5-7b-base"
CHECKED_DATA_FILE = "rlpr_data/train_checked.parquet"


def recipe_names() -> list[str]:
    """The RLPR recipes that ``--config-name`` accepts."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def compose_recipe(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The config that ``python -m rlpr.main --config-name <name> <overrides>`` trains with (not validated)."""
    if name not in recipe_names():
        raise ValueError(f"unknown RLPR recipe {name!r}; expected one of {recipe_names()} (in {CONFIG_DIR})")
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name=name, overrides=list(overrides))


def legacy_reward_sections() -> list[str]:
    """Top-level sections of verl's legacy reward config (read only after ``migrate_legacy_reward_impl``)."""
    import verl.trainer.config as verl_config

    text = (Path(verl_config.__file__).parent / "legacy_reward_impl.yaml").read_text()
    return sorted(yaml.safe_load(text))


def _set_leaves(node: DictConfig, prefix: str) -> list[str]:
    found = []
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            found += _set_leaves(child, f"{prefix}{key}.")
        elif not child._is_none():
            found.append(f"{prefix}{key}")
    return found


def check_config(config: DictConfig) -> None:
    """Reject configs the RLPR trainer cannot honour, then run verl's ``validate_config``.

    RLPR needs the classic trainer (``trainer.use_v1=false``), takes rewards from ``reward.*`` only (verl ignores the
    legacy ``reward_model.*`` / ``custom_reward_function.*`` keys unless migrated), and needs an ``rlpr:`` section.
    """
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    from rlpr.trainer import check_trainer_supports

    if config.trainer.use_v1:
        raise ValueError("RLPR runs on verl's classic RayPPOTrainer: set trainer.use_v1=false")
    if "rlpr" not in config:
        raise ValueError("the config has no rlpr: section; start from a recipe in configs/rlpr/")
    legacy = [
        key
        for section in legacy_reward_sections()
        if section in config
        for key in _set_leaves(config[section], f"{section}.")
    ]
    if legacy:
        raise ValueError(f"legacy reward keys {legacy} are ignored by verl 0.9.1; set the reward.* keys instead")
    check_trainer_supports(config)
    validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))


def check_training_data(config: DictConfig, tokenizer) -> list[str]:
    """Check the training rows (``rlpr.data_checks``); return the training files to use.

    Policy ``error`` raises, naming every bad row. Policy ``filter`` drops the bad rows and, if there were any,
    writes the kept rows to ``<trainer.default_local_dir>/rlpr_data/train_checked.parquet`` to train on.
    """
    from rlpr.data_checks import check_files, write_rows

    files = config.data.train_files
    files = [files] if isinstance(files, str) else list(files)
    checked = check_files(
        files,
        tokenizer,
        config.data.max_prompt_length,
        config.rlpr.bad_prompt_policy,
        prompt_key=config.data.prompt_key,
        chat_template_kwargs=config.data.get("apply_chat_template_kwargs") or {},
    )
    if not checked.bad:
        return files
    path = write_rows(checked.rows, Path(config.trainer.default_local_dir) / CHECKED_DATA_FILE)
    logger.warning("training on %s: %d rows kept, dropped %s", path, len(checked.rows), checked.counts)
    return [str(path)]


def rlpr_task_runner_class() -> type:
    """verl's classic task runner (``verl.trainer.main_ppo_v0.TaskRunner``) with data checks and ``RLPRTrainer``.

    Built on first use, so that importing this module (``--help``, ``--cfg job``, ``compose_recipe``) does not import
    verl's trainer and workers. Run it in a Ray actor: ``ray.remote(rlpr_task_runner_class())``.
    """
    from verl.trainer.main_ppo_v0 import BaseTaskRunner

    class _RLPRTaskRunner(BaseTaskRunner):
        def run(self, config: DictConfig) -> None:
            from verl.trainer.ppo.utils import create_rl_dataset, create_rl_sampler
            from verl.utils.config import omega_conf_to_dataclass
            from verl.utils.dataset.rl_dataset import collate_fn

            from rlpr.trainer import RLPRTrainer

            print(f"RLPRTaskRunner hostname: {socket.gethostname()}, PID: {os.getpid()}")
            pprint(OmegaConf.to_container(config, resolve=True))
            OmegaConf.resolve(config)

            _, ray_worker_group_cls = self.add_actor_rollout_worker(config)
            self.add_critic_worker(config)
            self.add_reward_model_resource_pool(config)
            self.add_teacher_model_resource_pool(config)
            check_config(config)

            model_config = omega_conf_to_dataclass(config.actor_rollout_ref.model)
            tokenizer, processor = model_config.tokenizer, model_config.processor
            train_files = check_training_data(config, tokenizer)

            train_dataset = create_rl_dataset(
                train_files,
                config.data,
                tokenizer,
                processor,
                is_train=True,
                max_samples=config.data.get("train_max_samples", -1),
            )
            val_dataset = create_rl_dataset(
                config.data.val_files,
                config.data,
                tokenizer,
                processor,
                is_train=False,
                max_samples=config.data.get("val_max_samples", -1),
            )
            trainer = RLPRTrainer(
                config=config,
                tokenizer=tokenizer,
                processor=processor,
                role_worker_mapping=self.role_worker_mapping,
                resource_pool_manager=self.init_resource_pool_mgr(config),
                ray_worker_group_cls=ray_worker_group_cls,
                train_dataset=train_dataset,
                val_dataset=val_dataset,
                collate_fn=collate_fn,
                train_sampler=create_rl_sampler(config.data, train_dataset),
            )
            trainer.init_workers()
            trainer.fit()

    _RLPRTaskRunner.__name__ = _RLPRTaskRunner.__qualname__ = "RLPRTaskRunner"
    return _RLPRTaskRunner


def run_rlpr(config: DictConfig) -> None:
    """Check the config, then train through verl's ``run_ppo`` (it starts Ray, or joins a running cluster)."""
    import ray
    from verl.trainer.main_ppo import run_ppo
    from verl.utils.device import auto_set_device

    auto_set_device(config)
    check_config(config)
    run_ppo(config, task_runner_class=ray.remote(num_cpus=1)(rlpr_task_runner_class()))


@hydra.main(config_path=str(CONFIG_DIR), config_name=DEFAULT_RECIPE, version_base=None)
def main(config: DictConfig) -> None:
    run_rlpr(config)


if __name__ == "__main__":
    main()
