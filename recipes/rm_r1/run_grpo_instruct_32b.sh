#!/usr/bin/env bash
# RM-R1 stage 2 (GRPO) for Qwen2.5-32B-Instruct after stage 1 (run_sft_instruct_32b.sh).
# Settings: configs/rm_r1/grpo_instruct_32b.yaml; --help lists the variables that override them.
LAUNCH_CONFIG=grpo_instruct_32b
LAUNCH_ABOUT="RM-R1 stage 2 (GRPO) for Qwen2.5-32B-Instruct after stage 1 (run_sft_instruct_32b.sh)."
# shellcheck source=recipes/rm_r1/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
launch "$@"
