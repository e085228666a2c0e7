#!/usr/bin/env bash
# GRPO of Qwen2.5-7B-Instruct rewarded by a judge on an external OpenAI-compatible server (JUDGE_URL, JUDGE_MODEL).
# Settings: configs/judge_reward/external_judge.yaml; --help lists the variables that override them.
LAUNCH_CONFIG=external_judge
LAUNCH_ABOUT="GRPO of Qwen2.5-7B-Instruct rewarded by a judge on an external OpenAI-compatible server (JUDGE_URL)."
# shellcheck source=recipes/judge_reward/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
launch "$@"
