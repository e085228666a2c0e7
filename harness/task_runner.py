"""verl's classic task runner with the recipe's trainer class, config check and training-data check, for every entry
point that trains on the classic ``RayPPOTrainer`` (``rlpr.main``: ``RLPRTrainer``; ``rm_r1.judge_main``:
``JudgeRewardTrainer``).

verl 0.9.1's own ``verl.trainer.main_ppo_v0.TaskRunner.run`` hard-codes ``RayPPOTrainer`` (main_ppo_v0.py:218) and
checks the config with ``validate_config`` (main_ppo_v0.py:179-183); ``run_ppo`` accepts any task runner class
(verl/trainer/main_ppo.py:34, "For recipe to change TaskRunner"). The runner built here is that ``run`` with the
trainer class, the check and the training files made parameters.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from pprint import pprint
from typing import Any

from omegaconf import DictConfig, OmegaConf

ConfigCheck = Callable[[DictConfig], None]
TrainingFiles = Callable[[DictConfig, Any], "str | Sequence[str]"]


def verl_validate_config(config: DictConfig) -> None:
    """The config check of verl's ``TaskRunner.run`` (main_ppo_v0.py:179-183)."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))


def classic_task_runner_class(
    trainer_cls: type,
    check_config: ConfigCheck = verl_validate_config,
    training_files: TrainingFiles | None = None,
    name: str = "TaskRunner",
) -> type:
    """A subclass of verl's ``BaseTaskRunner`` whose ``run(config)`` does what verl's ``TaskRunner.run`` does
    (main_ppo_v0.py:151-234: register the workers and resource pools, check the config, build the tokenizer, the
    datasets and the trainer, ``init_workers()``, ``fit()``) with ``trainer_cls`` (``RayPPOTrainer`` or a subclass) in
    place of ``RayPPOTrainer``, ``check_config(config)`` in place of verl's check (default: that check; another one
    must include it) and the training files from ``training_files(config, tokenizer)`` (default
    ``data.train_files``). The class keeps ``trainer_cls`` as an attribute.

    Built on call, so that importing this module does not import verl's trainer and workers. Run it in a Ray actor
    (``run_classic``).
    """
    from verl.trainer.main_ppo_v0 import BaseTaskRunner

    class _ClassicTaskRunner(BaseTaskRunner):
        def prepare(self, config: DictConfig) -> type:
            """What ``run`` does before any file or model is read, in verl's order (main_ppo_v0.py:166-183): resolve
            the config in place, register the workers and resource pools, then ``check_config``. Returns the worker
            group class. Kept apart so that a test runs exactly this on every shipped recipe."""
            OmegaConf.resolve(config)
            _, ray_worker_group_cls = self.add_actor_rollout_worker(config)
            self.add_critic_worker(config)
            self.add_reward_model_resource_pool(config)
            self.add_teacher_model_resource_pool(config)
            check_config(config)
            return ray_worker_group_cls

        def run(self, config: DictConfig) -> None:
            from verl.trainer.ppo.utils import create_rl_dataset, create_rl_sampler
            from verl.utils.config import omega_conf_to_dataclass
            from verl.utils.dataset.rl_dataset import collate_fn

            print(f"{name} hostname: {socket.gethostname()}, PID: {os.getpid()}")
            pprint(OmegaConf.to_container(config, resolve=True))
            ray_worker_group_cls = self.prepare(config)

            model_config = omega_conf_to_dataclass(config.actor_rollout_ref.model)
            tokenizer, processor = model_config.tokenizer, model_config.processor
            train_files = config.data.train_files if training_files is None else training_files(config, tokenizer)

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
            trainer = self.trainer_cls(
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

    _ClassicTaskRunner.trainer_cls = trainer_cls
    _ClassicTaskRunner.__name__ = _ClassicTaskRunner.__qualname__ = name
    return _ClassicTaskRunner


def start_ray_with_secrets(config: DictConfig, secrets: Mapping[str, str]) -> None:
    """Start Ray as verl's ``run_ppo`` does (verl/trainer/main_ppo.py:57-74: verl's runtime environment merged with
    ``ray_kwargs.ray_init``), with ``secrets`` ({variable: value}, e.g. a judge's API key) added to the workers'
    environment variables, so that every worker, on any node, reads them; ``run_ppo`` then finds Ray started. The
    printed arguments mask the values. Nothing to do without secrets or with Ray already started (a running cluster:
    export the variables on its nodes)."""
    import ray
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

    if not secrets or ray.is_initialized():
        return
    ray_init = OmegaConf.to_container(config.ray_kwargs.get("ray_init", {}), resolve=True)
    runtime_env = OmegaConf.to_container(
        OmegaConf.merge(get_ppo_ray_runtime_env(config), ray_init.get("runtime_env") or {}), resolve=True
    )
    env_vars = runtime_env.setdefault("env_vars", {})
    shown = {**ray_init, "runtime_env": {**runtime_env, "env_vars": {**env_vars, **dict.fromkeys(secrets, "***")}}}
    print(f"ray init kwargs: {shown}")
    env_vars.update(secrets)
    ray.init(**{**ray_init, "runtime_env": runtime_env})


def run_classic(config: DictConfig, task_runner_cls: type, secrets: Mapping[str, str] | None = None) -> None:
    """Train through verl's ``run_ppo`` (it starts Ray or joins a running cluster, verl/trainer/main_ppo.py:57-74) with
    ``task_runner_cls`` in a Ray actor, after ``auto_set_device`` as verl's ``main`` does (main_ppo.py:174). With
    ``secrets`` ({variable: value}), Ray is started first with them in the workers' environment
    (``start_ray_with_secrets``), never in the config."""
    import ray
    from verl.trainer.main_ppo import run_ppo
    from verl.utils.device import auto_set_device

    auto_set_device(config)
    start_ray_with_secrets(config, secrets or {})
    run_ppo(config, task_runner_class=ray.remote(num_cpus=1)(task_runner_cls))
