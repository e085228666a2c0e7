"""Build verl's classic ``RayPPOTrainer`` (or a subclass) on the in-process CPU backend (smoke runs and tests only).

``build_cpu_trainer`` constructs the trainer as verl's task runner would, but instead of ``init_workers()`` (Ray
resource pools, FSDP workers, vLLM servers) it attaches the in-process objects of this package: verl's own FSDP
engine worker as the actor (``engine_actor``) and HF ``generate()`` behind verl's agent loop as the rollout. The
trainer's own ``fit()`` then runs unchanged on CPU. Real training uses verl's Ray/vLLM workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import torch
from omegaconf import DictConfig
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase
from verl.single_controller.ray.base import ResourcePoolManager
from verl.trainer.distillation import is_distillation_enabled
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
from verl.trainer.ppo.utils import Role, need_critic, need_reference_policy

from cpu_backend.engine_actor import ENGINE_CPU_OVERRIDES, EngineActorWorkerGroup, check_engine_cpu_config
from cpu_backend.replicas import RolloutReplicas
from cpu_backend.rollout import HFGenerateClient, InProcessAgentLoopManager, InProcessCheckpointManager

__all__ = ["CPU_OVERRIDES", "build_cpu_trainer", "check_cpu_config", "compose_cpu_config"]

CPU_OVERRIDES: tuple[str, ...] = (
    "trainer.use_v1=False",
    "trainer.device=cpu",
    "trainer.nnodes=1",
    "trainer.n_gpus_per_node=1",
    "trainer.balance_batch=False",
    "trainer.logger=[console]",
    "data.dataloader_num_workers=0",
    "actor_rollout_ref.rollout.name=hf",
    "actor_rollout_ref.rollout.agent.num_workers=1",
    "reward.num_workers=1",
    *ENGINE_CPU_OVERRIDES,
)
"""Hydra overrides every CPU run needs: the classic trainer, one CPU "GPU", no batch balancing across ranks, no
dataloader worker processes, one in-process agent-loop worker (validation pads batches to that count), and what
verl's FSDP engine needs on CPU (``engine_actor.ENGINE_CPU_OVERRIDES``)."""

TrainerT = TypeVar("TrainerT", bound=RayPPOTrainer)


def compose_cpu_config(
    config_name: str = "ppo_trainer", overrides: Sequence[str] = (), config_dir: str | None = None
) -> DictConfig:
    """Compose a trainer config with Hydra's compose API: ``CPU_OVERRIDES`` first, then ``overrides`` (which win).

    Without ``config_dir`` the config comes from verl's own config package (``pkg://verl.trainer.config``); with it,
    ``config_name`` is a recipe YAML in that folder (its ``hydra.searchpath`` must reach verl's configs).
    """
    from hydra import compose, initialize_config_dir, initialize_config_module

    context = (
        initialize_config_dir(config_dir=config_dir, version_base=None)
        if config_dir is not None
        else initialize_config_module(config_module="verl.trainer.config", version_base=None)
    )
    with context:
        return compose(config_name=config_name, overrides=[*CPU_OVERRIDES, *overrides])


def check_cpu_config(config: DictConfig) -> None:
    """Raise ``ValueError`` naming the key when ``config`` asks for something the CPU backend cannot run."""
    problems = []
    if config.trainer.get("use_v1", False):
        problems.append("trainer.use_v1 must be False (the CPU backend drives the classic RayPPOTrainer)")
    if config.reward.reward_model.enable:
        problems.append("reward.reward_model.enable must be False (no model-based reward on the CPU backend)")
    if need_critic(config):
        problems.append("no critic on the CPU backend: use a critic-free algorithm.adv_estimator (e.g. grpo)")
    if is_distillation_enabled(config.get("distillation")):
        problems.append("distillation is not supported on the CPU backend")
    if config.actor_rollout_ref.rollout.multi_turn.enable:
        problems.append("actor_rollout_ref.rollout.multi_turn.enable must be False (single-turn generation only)")
    if problems:
        raise ValueError("config not runnable on the CPU backend:\n  " + "\n  ".join(problems))
    check_engine_cpu_config(config.actor_rollout_ref, with_reference=need_reference_policy(config))


def build_cpu_trainer(
    trainer_cls: type[TrainerT],
    config: DictConfig,
    tokenizer: PreTrainedTokenizerBase,
    *,
    with_rewards: bool = True,
    client_cls: type[HFGenerateClient] = HFGenerateClient,
    **trainer_kwargs: Any,
) -> TrainerT:
    """Construct ``trainer_cls`` (``RayPPOTrainer`` or a subclass) with in-process CPU workers attached.

    ``config.actor_rollout_ref.model.path`` must be a Hugging Face folder with the model AND its tokenizer (the agent
    loop and the reward loop load the tokenizer from there, as on GPU); ``tokenizer`` is the same tokenizer for the
    trainer's datasets. ``with_rewards=False`` skips verl's reward loop (no ``rm_scores``; for trainers that score
    responses themselves). ``client_cls``: the rollout's generate client (a subclass of ``HFGenerateClient``, e.g.
    one that batches requests). ``trainer_kwargs`` go to the constructor (datasets, collate_fn, subclass arguments).

    After construction the trainer has ``actor_rollout_wg`` (an ``EngineActorWorkerGroup``: verl's FSDP engine
    worker; also ``ref_policy_wg`` when a KL term is on), ``async_rollout_manager`` (``InProcessAgentLoopManager``
    over its own copy of the model, which sees the actor's weights only through ``checkpoint_manager.update_weights``,
    as vLLM does) and ``checkpoint_manager`` (``InProcessCheckpointManager``), ``reward_loop_manager = None``; call
    ``fit()``. The engine makes the CPU platform, a gloo process group and its environment variables process-wide.
    """
    check_cpu_config(config)
    trainer = trainer_cls(
        config=config,
        tokenizer=tokenizer,
        role_worker_mapping={Role.ActorRollout: EngineActorWorkerGroup},
        resource_pool_manager=ResourcePoolManager(resource_pool_spec={"cpu": [1]}, mapping={Role.ActorRollout: "cpu"}),
        device_name="cpu",
        **trainer_kwargs,
    )
    # What init_workers() would set; built after the trainer so actor.optim.total_training_steps is filled in.
    # One sleep/wake state for actor, rollout and checkpoint manager; init_workers() leaves the replicas asleep.
    replicas = RolloutReplicas()
    worker_group = EngineActorWorkerGroup(
        trainer.config.actor_rollout_ref, with_reference=trainer.use_reference_policy, replicas=replicas
    )
    trainer.actor_rollout_wg = worker_group
    if trainer.use_reference_policy:
        trainer.ref_policy_wg = worker_group
    trainer.reward_loop_manager = None
    trainer.teacher_model_manager = None
    trainer.distillation_config = None
    trainer.async_rollout_mode = True
    rollout_model = AutoModelForCausalLM.from_pretrained(
        trainer.config.actor_rollout_ref.model.path, dtype=torch.float32
    ).eval()
    client = client_cls(rollout_model, trainer.config.actor_rollout_ref.rollout)
    trainer.async_rollout_manager = InProcessAgentLoopManager(
        trainer.config, client, with_rewards=with_rewards, replicas=replicas
    )
    trainer.checkpoint_manager = InProcessCheckpointManager(client, replicas, sync_weights=worker_group.sync_weights_to)
    return trainer
