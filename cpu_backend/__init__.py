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
* ``cpu_backend.warm_start.warm_start(...)``: a few seconds of supervised fitting (well-formed answers from a tiny
  model).
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use (PEP 562): ``cpu_backend.verl_plugin`` is imported in every Ray process of verl's real path
# and must not bring the in-process backend (transformers models, peft, datasets: ~180 MB per process) with it.
_EXPORTS = {
    "EngineActorWorkerGroup": "cpu_backend.engine_actor",
    "HFGenerateClient": "cpu_backend.rollout",
    "InProcessAgentLoopManager": "cpu_backend.rollout",
    "InProcessCheckpointManager": "cpu_backend.rollout",
    "CPU_OVERRIDES": "cpu_backend.trainer",
    "build_cpu_trainer": "cpu_backend.trainer",
    "check_cpu_config": "cpu_backend.trainer",
    "compose_cpu_config": "cpu_backend.trainer",
}

__all__ = [
    "CPU_OVERRIDES",
    "EngineActorWorkerGroup",
    "HFGenerateClient",
    "InProcessAgentLoopManager",
    "InProcessCheckpointManager",
    "build_cpu_trainer",
    "check_cpu_config",
    "compose_cpu_config",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cpu_backend' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
