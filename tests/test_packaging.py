"""pyproject's [gpu] extra is one consistent GPU environment with verl 0.9.1's own `vllm` and `fsdp` extras.

verl's HFModelConfig loads every model with attn_implementation="flash_attention_2" by default
(verl/workers/config/model.py), so a GPU install without flash-attn fails at the first model load. The pins are read
from the installed verl's metadata and from pyproject, never written here.
"""

from __future__ import annotations

from importlib.metadata import requires, version
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _project() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def verl_requirements(extra: str) -> list[Requirement]:
    """What ``verl[extra]`` requires, from the installed verl's metadata (markers evaluated for that extra)."""
    found = []
    for line in requires("verl") or []:
        req = Requirement(line)
        if req.marker is not None and req.marker.evaluate({"extra": extra}) and not req.marker.evaluate({"extra": ""}):
            req.marker = None
            found.append(req)
    return found


def brought_by(requirements: list[Requirement]) -> dict[str, set[str]]:
    """Every package the requirements bring through verl's extras (recursively), with the specifiers asked of it."""
    pins: dict[str, set[str]] = {}
    todo, seen = list(requirements), set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        pins.setdefault(name, set()).add(str(req.specifier))
        if name == "verl":
            for extra in sorted(req.extras - seen):
                seen.add(extra)
                todo += verl_requirements(extra)
    return pins


def test_gpu_extra_brings_flash_attn_at_verls_pin():
    gpu = [Requirement(r) for r in _project()["optional-dependencies"]["gpu"]]
    pins = brought_by(gpu)
    # verl's own pin of flash-attn (in the extra its `fsdp` extra pulls in)
    fsdp_pins = brought_by([Requirement("verl[fsdp]")])
    assert fsdp_pins.get("flash-attn"), "verl 0.9.1's fsdp extra no longer brings flash-attn"
    assert pins.get("flash-attn") == fsdp_pins["flash-attn"] and all(s.startswith("==") for s in pins["flash-attn"])


def test_gpu_extra_is_verls_vllm_and_fsdp_sets_with_one_version_each():
    gpu = [Requirement(r) for r in _project()["optional-dependencies"]["gpu"]]
    pins = brought_by(gpu)
    for extra in ("vllm", "fsdp"):
        for name, specifiers in brought_by([Requirement(f"verl[{extra}]")]).items():
            assert specifiers <= pins[name], (extra, name)
    exact = {name: {s for s in specs if s.startswith("==")} for name, specs in pins.items()}
    assert all(len(s) <= 1 for s in exact.values()), {n: s for n, s in exact.items() if len(s) > 1}
    # the same verl as the base dependency, which is the installed one
    assert pins["verl"] - {""} == {f"=={version('verl')}"}  # "": verl's extras asking for verl[verl-core]
    base = [Requirement(r) for r in _project()["dependencies"] if canonicalize_name(Requirement(r).name) == "verl"]
    assert {str(r.specifier) for r in base} == pins["verl"] - {""}
