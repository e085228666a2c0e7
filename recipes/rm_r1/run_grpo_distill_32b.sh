#!/usr/bin/env bash
# RM-R1 stage 2 (GRPO) for DeepSeek-R1-Distill-Qwen-32B (no stage 1).
# Settings: configs/rm_r1/grpo_distill_32b.yaml; --help lists the variables that override them.
LAUNCH_CONFIG=grpo_distill_32b
LAUNCH_ABOUT="RM-R1 stage 2 (GRPO) for DeepSeek-R1-Distill-Qwen-32B (no stage 1)."
# shellcheck source=recipes/rm_r1/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
launch "$@"
