"""verl's platform interface for the CPU (one light module: torch and verl's platform layer only).

verl 0.9.1 registers no CPU platform: its platform layer knows ``nvidia``, ``huawei`` and ``amd`` and falls back to
``nvidia``, i.e. ``torch.cuda`` and NCCL. :class:`CpuPlatform` is registered through verl's own ``PlatformRegistry``.
Both CPU paths use it: the in-process backend (``cpu_backend.engine_actor``) and the plugin of verl's real path
(``cpu_backend.verl_plugin``), which is loaded in every Ray process and so imports nothing heavier than this.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import PlatformRegistry

__all__ = ["CpuPlatform", "register_fsdp_engine"]


def _cpu_device_module() -> types.ModuleType:
    """``torch.cpu`` plus the ``torch.cuda``-style calls verl makes on its device module (memory statistics read as 0,
    cache and seeding calls map to the CPU equivalents)."""
    module = types.ModuleType("verl_cpu_device")
    for name in dir(torch.cpu):
        if not name.startswith("__"):
            setattr(module, name, getattr(torch.cpu, name))
    zero = lambda *args, **kwargs: 0  # noqa: E731
    for name in ("max_memory_allocated", "max_memory_reserved", "memory_allocated", "memory_reserved"):
        setattr(module, name, zero)
    module.mem_get_info = lambda *args, **kwargs: (0, 0)
    module.reset_peak_memory_stats = lambda *args, **kwargs: None
    module.empty_cache = lambda: None
    module.get_device_name = lambda *args, **kwargs: "CPU"
    module.manual_seed = module.manual_seed_all = torch.manual_seed
    module.get_rng_state, module.set_rng_state = torch.get_rng_state, torch.set_rng_state
    return module


@PlatformRegistry.register(platform="cpu")
class CpuPlatform(PlatformBase):
    """verl's platform interface for the CPU: device ``cpu``, gloo collectives, no profiler, no IPC."""

    _device_module = _cpu_device_module()

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        return self._device_module

    def is_available(self) -> bool:
        return True

    def current_device(self) -> str:  # type: ignore[override]  # tensors go to .to("cpu")
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        pass

    def synchronize(self, device_index: int | None = None) -> None:
        pass

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        pass

    def empty_cache(self) -> None:
        pass

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str) -> Iterator[None]:
        yield

    def profiler_start(self) -> None:
        pass

    def profiler_stop(self) -> None:
        pass

    def ray_resource_name(self) -> str:
        return "CPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def register_fsdp_engine() -> None:
    """Register verl's FSDP engine for ``cpu`` too (verl registers it for cuda and npu only,
    verl/workers/engine/fsdp/transformer_impl.py:1143); idempotent. It imports verl's engines (peft, transformers'
    models): call it where an engine is built, not at import."""
    from verl.workers.engine import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    try:
        EngineRegistry.get_engine_cls(model_type="language_model", backend="fsdp2")
    except ValueError:  # not registered for this platform's device yet
        EngineRegistry.register(model_type="language_model", backend=["fsdp", "fsdp2"], device="cpu")(
            FSDPEngineWithLMHead
        )
