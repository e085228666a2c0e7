"""In-process CPU backend for verl 0.9.1's classic ``RayPPOTrainer``: for smoke runs and tests only.

It replaces what ``init_workers()`` builds (Ray worker groups with FSDP actors, vLLM rollout servers, reward-loop
actors) with in-process objects over one small transformers model, so the trainer's real ``fit()`` runs on a laptop
CPU. Real training uses verl's Ray/vLLM workers; nothing here is meant for it.

* ``build_cpu_trainer(trainer_cls, config, tokenizer, with_rewards=True, **kwargs)``: the trainer, ready to ``fit()``.
* ``compose_cpu_config(config_name, overrides, config_dir)`` / ``CPU_OVERRIDES`` / ``check_cpu_config(config)``.
* ``CpuActorRolloutWorkerGroup``: ``compute_log_prob``, ``compute_ref_log_prob``, ``update_actor`` (verl's
  ``ppo_loss``), ``save_checkpoint`` / ``load_checkpoint``.
* ``InProcessAgentLoopManager`` + ``HFGenerateClient``: verl's agent loop and reward loop, with ``generate()``.
* ``InProcessCheckpointManager``: ``sleep_replicas()`` / ``update_weights(global_steps)``.
* ``warm_start(...)``: a few seconds of supervised fitting so a tiny model writes well-formed answers.
"""

from cpu_backend.actor import CpuActorRolloutWorkerGroup, sequence_log_probs
from cpu_backend.rollout import HFGenerateClient, InProcessAgentLoopManager, InProcessCheckpointManager
from cpu_backend.trainer import CPU_OVERRIDES, build_cpu_trainer, check_cpu_config, compose_cpu_config
from cpu_backend.warm_start import warm_start

__all__ = [
    "CPU_OVERRIDES",
    "CpuActorRolloutWorkerGroup",
    "HFGenerateClient",
    "InProcessAgentLoopManager",
    "InProcessCheckpointManager",
    "build_cpu_trainer",
    "check_cpu_config",
    "compose_cpu_config",
    "sequence_log_probs",
    "warm_start",
]
