#!/usr/bin/env bash
# RLPR on Qwen2.5-7B (base): the paper's main run. Settings: configs/rlpr/qwen2.5-7b-base.yaml; --help lists the variables that override them.
LAUNCH_CONFIG=qwen2.5-7b-base
LAUNCH_ABOUT="RLPR on Qwen2.5-7B (base): the paper's main run."
# shellcheck source=recipes/rlpr/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
launch "$@"
