#!/usr/bin/env bash
# RM-R1 stage 1 (distillation SFT) for Qwen2.5-7B-Instruct on teacher traces.
# Settings: configs/rm_r1/sft_instruct_7b.yaml; --help lists the variables that override them.
LAUNCH_CONFIG=sft_instruct_7b
LAUNCH_ABOUT="RM-R1 stage 1 (distillation SFT) for Qwen2.5-7B-Instruct on teacher traces."
# shellcheck source=recipes/rm_r1/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
launch "$@"
