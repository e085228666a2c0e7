#!/usr/bin/env bash
# RLPR on Gemma2-2B-it. Settings: configs/rlpr/gemma2-2b-it.yaml; --help lists the variables that override them.
LAUNCH_CONFIG=gemma2-2b-it
LAUNCH_ABOUT="RLPR on Gemma2-2B-it."
# shellcheck source=recipes/rlpr/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
launch "$@"
