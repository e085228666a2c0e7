"""harness.config_paths: the recipes of a checkout, or the copy inside an installed wheel."""

import pytest

from harness import config_paths


def test_an_installed_wheel_uses_its_own_copy_of_the_configs(tmp_path, monkeypatch):
    package = tmp_path / "site-packages" / "harness"
    (package / "_configs" / "rlpr").mkdir(parents=True)
    monkeypatch.setattr(config_paths, "_PACKAGE_DIR", package)
    assert config_paths.recipe_config_dir("rlpr") == package / "_configs" / "rlpr"
    with pytest.raises(FileNotFoundError, match="no config folder .*known recipe folders: \\['rlpr'\\]"):
        config_paths.recipe_config_dir("rm_r1")
    monkeypatch.setattr(config_paths, "_PACKAGE_DIR", tmp_path / "nowhere" / "harness")
    with pytest.raises(FileNotFoundError, match="no recipe configs found"):
        config_paths.configs_root()
