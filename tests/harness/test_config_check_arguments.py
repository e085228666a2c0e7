"""harness.config_check: reading Hydra's config name and path from an entry point's command line."""

import pytest

from harness import config_check


@pytest.mark.parametrize(
    ("argv", "name", "custom_path"),
    [
        ([], None, False),
        (["--config-name", "gemma2-2b-it", "rlpr.filter.beta=0.5"], "gemma2-2b-it", False),
        (["-cn", "grpo_instruct_7b"], "grpo_instruct_7b", False),
        (["--config-name=mine", "--config-path", "/home/me/recipes"], "mine", True),
        (["-cp", "/home/me/recipes", "-cn", "mine"], "mine", True),
        (["--config-path=/home/me/recipes", "--config-name", "mine"], "mine", True),
        (["trainer.default_local_dir=--config-path"], None, False),  # a value, not the flag
    ],
)
def test_the_config_name_and_a_custom_config_path_are_read_from_the_command_line(argv, name, custom_path):
    assert config_check.config_name_argument(argv) == name
    assert config_check.config_path_given(argv) is custom_path
