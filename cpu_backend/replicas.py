"""Sleep/wake state of the stand-in rollout replicas (smoke runs and tests only).

On a GPU node the actor and the vLLM replicas share the devices, so verl never runs both at once: ``init_workers``
ends with the replicas asleep (verl/trainer/ppo/ray_trainer.py:981), ``fit`` puts them to sleep right after
generating (ray_trainer.py:1514) and ``update_weights`` wakes them (verl/workers/engine_workers.py:728-733: "before
update_weights: rollout should be in sleep mode; after update_weights: rollout should be in wake_up mode"). An actor
forward with the replicas awake competes with the KV cache for memory; a generation while they sleep runs on released
weights (level-2 sleep discards them, vllm_async_server.py:1307). The CPU backend shares one object of this class
between the actor worker group, the rollout and the checkpoint manager, and refuses both.
"""

from __future__ import annotations

__all__ = ["RolloutReplicas"]


class RolloutReplicas:
    """Whether the rollout replicas are awake; starts asleep, as ``init_workers`` leaves them."""

    def __init__(self) -> None:
        self.awake = False

    def sleep(self) -> None:
        self.awake = False

    def wake(self) -> None:
        self.awake = True

    def require_asleep(self, call: str) -> None:
        """Raise when an actor ``call`` (compute_log_prob, update_actor, ...) would run beside awake replicas."""
        if self.awake:
            raise RuntimeError(
                f"{call} ran while the rollout replicas are awake: verl runs the actor only between "
                "checkpoint_manager.sleep_replicas() and the next update_weights()"
            )

    def require_awake(self, call: str) -> None:
        """Raise when a generation ``call`` would run on sleeping replicas."""
        if not self.awake:
            raise RuntimeError(
                f"{call} ran while the rollout replicas are asleep: wake them with "
                "checkpoint_manager.update_weights() before generating"
            )
