"""In-process CPU backend for verl 0.9.1's classic ``RayPPOTrainer``: for smoke runs and tests only.

It replaces what ``init_workers()`` builds (Ray worker groups, vLLM rollout servers, reward-loop actors) with
in-process objects, so the trainer's real ``fit()`` runs on a laptop CPU: the actor (and reference) is verl's own FSDP
engine worker on a CPU platform; only the rollout (HF ``generate()`` instead of vLLM) and Ray placement are stood in.
Real training uses verl's Ray/vLLM workers; nothing here is meant for it.

* ``build_cpu_trainer(trainer_cls, config, tokenizer, with_rewards=True, **kwargs)``: the trainer, ready to ``fit()``.
* ``compose_cpu_config(config_name, overrides, config_dir)`` / ``CPU_OVERRIDES`` / ``check_cpu_config(config)``.
* ``EngineActorWorkerGroup``: verl's ``ActorRolloutRefWorker`` in process (``compute_log_prob``,
  ``compute_ref_log_prob``, ``update_actor``, ``save_checkpoint`` / ``load_checkpoint``, ``sync_weights_to``).
* ``InProcessAgentLoopManager`` + ``HFGenerateClient``: verl's agent loop and reward loop, with ``generate()``.
* ``InProcessCheckpointManager``: ``sleep_replicas()`` / ``update_weights(global_steps)`` (copies the actor's weights).
* ``warm_start(...)``: a few seconds of supervised fitting so a tiny model writes well-formed answers.
"""

from cpu_backend.engine_actor import EngineActorWorkerGroup
from cpu_backend.rollout import HFGenerateClient, InProcessAgentLoopManager, InProcessCheckpointManager
from cpu_backend.trainer import CPU_OVERRIDES, build_cpu_trainer, check_cpu_config, compose_cpu_config
from cpu_backend.warm_start import warm_start

__all__ = [
    "CPU_OVERRIDES",
    "EngineActorWorkerGroup",
    "HFGenerateClient",
    "InProcessAgentLoopManager",
    "InProcessCheckpointManager",
    "build_cpu_trainer",
    "check_cpu_config",
    "compose_cpu_config",
    "warm_start",
]
