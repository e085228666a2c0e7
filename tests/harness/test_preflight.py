"""harness.preflight: the GPU and wandb-key checks a launcher runs before it starts anything; path resolution."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.config_check import resolve_paths
from harness.preflight import gpu_problem, wandb_problem


def _never(*_):
    raise AssertionError("not consulted")


@pytest.mark.parametrize(
    ("nnodes", "gpus", "ray_address", "per_node", "local", "cluster", "problem"),
    [
        (1, 8, None, False, 8, None, None),
        (1, 8, None, False, 0, None, "the run needs 8 GPUs (1 node(s) x 8"),
        (2, 8, None, False, 16, None, "2 nodes need a running Ray cluster"),
        (2, 8, "auto", False, None, 16, None),
        (2, 8, "auto", False, None, 8, "the Ray cluster at auto has 8"),
        (4, 8, None, True, 8, None, None),  # torchrun: each node brings its own 8
        (4, 8, None, True, 2, None, "this node needs 8 GPUs"),
    ],
)
def test_gpu_problem(nnodes, gpus, ray_address, per_node, local, cluster, problem):
    found = gpu_problem(
        nnodes,
        gpus,
        ray_address=ray_address,
        per_node=per_node,
        local_count=(lambda: local) if local is not None else _never,
        cluster_count=(lambda address: cluster) if cluster is not None else _never,
    )
    assert (found is None) if problem is None else (problem in found), found


def test_wandb_needs_a_key_only_when_it_logs(tmp_path):
    home = tmp_path
    assert wandb_problem(["console"], {}, home) is None
    assert "wandb login" in wandb_problem(["console", "wandb"], {}, home)
    assert wandb_problem(["wandb"], {"WANDB_API_KEY": "k"}, home) is None
    assert wandb_problem(["wandb"], {"WANDB_MODE": "offline"}, home) is None
    (home / ".netrc").write_text("machine example.org login a password b\n")
    assert "wandb login" in wandb_problem(["wandb"], {}, home)
    (home / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password 0123\n")
    assert wandb_problem(["wandb"], {}, home) is None


def test_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATA", "/srv/data")
    (tmp_path / "models" / "m").mkdir(parents=True)
    config = OmegaConf.create(
        {
            "data": {"train_files": "$DATA/t.parquet", "val_files": ["~/a.parquet", "/abs/b.parquet"]},
            "trainer": {"default_local_dir": "checkpoints/x", "resume_from_path": None},
            "actor_rollout_ref": {"model": {"path": "models/m"}},
            "cache": "${trainer.default_local_dir}/cache.json",
        }
    )
    changed = resolve_paths(config)
    assert config.data.train_files == "/srv/data/t.parquet"
    assert list(config.data.val_files) == [str(tmp_path / "home" / "a.parquet"), "/abs/b.parquet"]
    assert config.trainer.default_local_dir == str(tmp_path / "checkpoints" / "x")
    assert config.cache == os.path.join(tmp_path, "checkpoints", "x", "cache.json")
    assert config.actor_rollout_ref.model.path == str(tmp_path / "models" / "m")
    assert set(changed) == {
        "data.train_files",
        "data.val_files",
        "trainer.default_local_dir",
        "actor_rollout_ref.model.path",
    }
    # a hub id stays a hub id
    hub = OmegaConf.create({"actor_rollout_ref": {"model": {"path": "Qwen/Qwen2.5-7B"}}})
    assert resolve_paths(hub) == [] and hub.actor_rollout_ref.model.path == "Qwen/Qwen2.5-7B"
    assert Path(config.trainer.default_local_dir).is_absolute()
