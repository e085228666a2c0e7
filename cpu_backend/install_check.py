"""``python -m cpu_backend.install_check``: does everything verl's real path on CPU loads import here?

Run by ``scripts/install_cpu.sh`` as its last step (so the README's install command fails at once, naming what is
missing, rather than minutes later inside a Ray worker). In a child process with the plugin's environment
(``cpu_backend.real_stack.environment()``), it imports every module the path loads: verl with the plugin, Ray, the
FSDP engine, verl's vLLM rollout and vLLM's own server, engine and layer modules, and the project's entry points, and
prints the versions. Exit status 0 when all of them load.
"""

from __future__ import annotations

import os
import subprocess
import sys

# Every module the path imports in one of its processes (driver, task runner, FSDP worker, vLLM server and worker).
MODULES = (
    "torch",
    "transformers",
    "ray",
    "verl",
    "verl.trainer.main_ppo",
    "verl.trainer.ppo.ray_trainer",
    "verl.workers.engine_workers",
    "verl.workers.engine.fsdp.transformer_impl",
    "verl.workers.rollout.vllm_rollout",
    "verl.workers.rollout.vllm_rollout.vllm_async_server",
    "verl.experimental.agent_loop",
    "verl.experimental.reward_loop",
    "verl.checkpoint_engine",
    "vllm",
    "vllm.entrypoints.openai.api_server",
    "vllm.v1.engine.async_llm",
    "vllm.model_executor.layers.linear",
    "vllm.model_executor.models.qwen2",
    "rlpr.main",
    "rlpr.training.trainer",
    "rm_r1.main",
    "rm_r1.judge_main",
    "cpu_backend.real_stack",
)

_CHILD = """
import importlib, importlib.metadata as md
for name in {modules!r}:
    importlib.import_module(name)
from cpu_backend.verl_plugin import PINNED
import vllm.model_executor.layers.linear as linear
assert hasattr(linear.UnquantizedLinearMethod.process_weights_after_loading, "__wrapped__"), "vLLM CPU patch inactive"
print("loaded:", len({modules!r}), "modules;", ", ".join(f"{{d}} {{md.version(d)}}" for d in PINNED),
      "; verl sees vllm", md.version("vllm"))
"""


def main() -> int:
    from harness.reporting import quiet_known_warnings

    quiet_known_warnings(on_cpu=True)
    from cpu_backend.real_stack import environment

    env = {**os.environ, **environment()}
    result = subprocess.run([sys.executable, "-c", _CHILD.format(modules=MODULES)], env=env, text=True,
                            capture_output=True)  # fmt: skip
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        print(f"install check failed: {lines[-1] if lines else 'no output'}", file=sys.stderr)
        print("\n".join(lines[-20:]), file=sys.stderr)
        return 1
    print(result.stdout.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
