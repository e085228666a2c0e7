#!/usr/bin/env bash
# RLPR on Llama3.1-8B-Instruct. Settings: configs/rlpr/llama3.1-8b-instruct.yaml; --help lists the variables that override them.
LAUNCH_CONFIG=llama3.1-8b-instruct
LAUNCH_ABOUT="RLPR on Llama3.1-8B-Instruct."
# shellcheck source=recipes/rlpr/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
launch "$@"
