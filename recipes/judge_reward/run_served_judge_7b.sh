#!/usr/bin/env bash
# GRPO of Qwen2.5-7B-Instruct rewarded by a 7B RM-R1 judge served by verl (4 GPUs policy, 4 GPUs judge).
# Settings: configs/judge_reward/served_judge_7b.yaml; --help lists the variables that override them.
LAUNCH_CONFIG=served_judge_7b
LAUNCH_ABOUT="GRPO of Qwen2.5-7B-Instruct rewarded by a 7B RM-R1 judge served by verl (4 GPUs policy, 4 GPUs judge)."
# shellcheck source=recipes/judge_reward/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
launch "$@"
