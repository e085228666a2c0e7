"""The pure reward package stands alone: importing any ``rlpr.reward`` module loads neither the training glue
(``rlpr.training``) nor verl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# Imports every module of rlpr.reward (found by walking its folder, so a new module is covered) in this fresh
# interpreter, then prints the modules it imported and the ones it loaded.
PROBE = """
import importlib, json, pkgutil, sys
import rlpr.reward
names = ["rlpr.reward"] + [m.name for m in pkgutil.walk_packages(rlpr.reward.__path__, "rlpr.reward.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "loaded": sorted(sys.modules), "file": rlpr.reward.__file__}))
"""


def forbidden(loaded: list[str]) -> list[str]:
    """The loaded modules the pure reward package must not pull in: the training glue and anything of verl."""
    return [m for m in loaded if m.split(".")[0] == "verl" or m == "rlpr.training" or m.startswith("rlpr.training.")]


def test_importing_every_reward_module_loads_no_training_glue_and_no_verl():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(probe["file"]).resolve() == ROOT / "rlpr" / "reward" / "__init__.py"  # this checkout, not another
    assert {"rlpr.reward", "rlpr.reward.o_prime", "rlpr.reward.token_bytes"} <= set(probe["imported"])
    assert forbidden(probe["loaded"]) == []


def test_forbidden_names_the_training_glue_and_verl_only():
    loaded = ["rlpr", "rlpr.reward", "rlpr.trainingx", "rlpr.training", "rlpr.training.scoring", "verl", "verl.utils"]
    loaded += ["verlx", "torch"]
    assert forbidden(loaded) == ["rlpr.training", "rlpr.training.scoring", "verl", "verl.utils"]
